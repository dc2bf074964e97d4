"""What auth keeps with a reservation for the ledger's sake.

A request whose gateway dies never publishes its usage event; billing's sweeper then writes
the row itself. To write it as the gateway would have (the client's model, the key's name and
group, the prices in force when the request was authorized) it needs what only Authorize
knew, so auth stores it, serialized, in the reservation's hash.
"""

from __future__ import annotations

from unigate.v1 import auth_pb2, events_pb2
from unigate_auth.store import TokenRecord


def reservation_context(
    req: auth_pb2.AuthorizeRequest, token: TokenRecord, pricing: auth_pb2.Pricing
) -> bytes:
    return events_pb2.ReservationContext(
        request_id=req.request_id,
        token_name=token.name,
        group=token.group,
        model=req.model,
        endpoint=req.endpoint,
        stream=req.stream,
        client_ip=req.client_ip,
        pricing=pricing,
    ).SerializeToString()
