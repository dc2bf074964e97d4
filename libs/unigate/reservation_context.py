"""What is kept with a reservation for the ledger's sake.

A request whose gateway dies never publishes its usage event; billing's sweeper then writes
the row itself. To write it as the gateway would have (the client's model, the key's name and
group, the prices in force when the request was authorized) it needs what only the decision
knew, so it is stored, serialized, in the reservation's hash: by auth for a reservation it
books for one request, by the gateway when it binds a spare reservation to a request.
"""

from __future__ import annotations

from unigate.v1 import auth_pb2, events_pb2


def reservation_context(
    req: auth_pb2.AuthorizeRequest, token_name: str, group: str, pricing: auth_pb2.Pricing
) -> bytes:
    return events_pb2.ReservationContext(
        request_id=req.request_id,
        token_name=token_name,
        group=group,
        model=req.model,
        endpoint=req.endpoint,
        stream=req.stream,
        client_ip=req.client_ip,
        pricing=pricing,
    ).SerializeToString()
