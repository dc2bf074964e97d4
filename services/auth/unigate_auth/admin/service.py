"""The AdminService gRPC servicer (``protos/unigate/v1/admin.proto``), composed of one mixin
per entity; each owns its RPCs and its SQL:

- ``users`` — login, logout, the caller's own account, user management;
- ``signup`` — registration, mailed verification codes and reset links, Turnstile;
  ``invitations`` — invitation codes and sign-up rewards; ``topups`` — admin top-ups;
- ``tokens`` — API keys; ``quota_rpcs`` — root's quota adjustments;
- ``channels`` / ``channel_rpcs`` — the channel table (all of auth's channel SQL) and its RPCs;
- ``redemptions`` — codes; ``options`` — settings and groups; ``status`` — the public status;
- ``oauth_rpcs`` — external logins and bindings (GitHub, Lark, OIDC, WeChat).

Every RPC declares its least role with ``rpc.rpc`` (or ``rpc.public``), which resolves the
caller and turns refusals into gRPC status codes. Writes that change what routing or
admission sees (channels, keys, users, options) are broadcast on NATS (``unigate.bus``) so
every auth drops its caches at once; a channel change also bumps ``config_version`` so
relays refetch it.
"""

from __future__ import annotations

from unigate.v1 import admin_pb2_grpc
from unigate_auth.admin.channel_rpcs import ChannelRpcs
from unigate_auth.admin.invitations import InvitationRpcs
from unigate_auth.admin.oauth_rpcs import OAuthRpcs
from unigate_auth.admin.options import OptionRpcs
from unigate_auth.admin.quota_rpcs import QuotaRpcs
from unigate_auth.admin.redemptions import RedemptionRpcs
from unigate_auth.admin.signup import SignupRpcs
from unigate_auth.admin.status import StatusRpcs
from unigate_auth.admin.tokens import TokenRpcs
from unigate_auth.admin.users import UserRpcs


class AdminService(
    UserRpcs,
    SignupRpcs,
    InvitationRpcs,
    TokenRpcs,
    QuotaRpcs,
    ChannelRpcs,
    RedemptionRpcs,
    OptionRpcs,
    StatusRpcs,
    OAuthRpcs,
    admin_pb2_grpc.AdminServiceServicer,
):
    """Registered once on auth's gRPC server; its constructor is ``AdminBase``'s."""
