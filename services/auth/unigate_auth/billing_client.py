"""Auth's calls to billing: redemption codes, whose exactly-once claim billing owns.

AdminService (``Redeem``, ``CreateRedemptions``) has checked the user; these functions only
carry the request over mTLS (auth's identity; ``rpc_acl`` lets auth alone call them). A code
billing refuses comes back as INVALID_ARGUMENT and is raised as ``BillingRefused`` with billing's
message, so the caller sees exactly what it saw when auth ran the claim itself.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

from unigate.v1 import billing_pb2, billing_pb2_grpc

T = TypeVar("T")


class BillingRefused(ValueError):
    """Billing refused a code or batch; the message is billing's, meant for the caller."""


# A redeem or a batch of codes is one short transaction in billing; past this, the caller
# gets an error rather than a request hanging on a stuck billing.
RPC_TIMEOUT_SECONDS = 10.0


class BillingClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = billing_pb2_grpc.BillingServiceStub(channel)

    async def redeem(self, code: str, user_id: int) -> int:
        """Adds the code's quota to the user once; returns the quota added."""
        reply = await _refusal_as_admin_error(
            self._stub.RedeemCode(
                billing_pb2.RedeemCodeRequest(code=code, user_id=user_id),
                timeout=RPC_TIMEOUT_SECONDS,
            )
        )
        return reply.quota

    async def create_redemptions(
        self, name: str, quota: int, count: int, created_by: int
    ) -> list[str]:
        reply = await _refusal_as_admin_error(
            self._stub.CreateRedemptions(
                billing_pb2.CreateRedemptionsRequest(
                    name=name, quota=quota, count=count, created_by=created_by
                ),
                timeout=RPC_TIMEOUT_SECONDS,
            )
        )
        return list(reply.codes)


async def _refusal_as_admin_error(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise BillingRefused(exc.details() or "refused by billing") from None
        raise
