"""The OpenAI resellers One API lists as channel types of their own (its
``relay/channeltype``: API2D, CloseAI, OpenAI-SB, OpenAIMax, OhMyGPT, AI.LS, AIProxy, API2GPT,
AIGC2D): each serves OpenAI's own API (its ``/v1`` layout, Bearer keys, OpenAI's answers and
errors) at the base URL One API gives it, so a channel migrated from One API keeps working
under its type. The wire is OpenAI's: the spec only names the host.

Five of them publish the account's balance, each its own way; where and how is One API's
``controller/channel-billing.go`` (the only public description of these services' account
APIs): CloseAI, API2GPT and AIGC2D answer OpenAI's old ``/dashboard/billing/credit_grants``
at the host, OpenAI-SB its ``/sb-api/user/status?api_key=``, AIProxy its
``/api/report/getUserOverview`` on aiproxy.io with the key in an ``Api-Key`` header."""

from unigate_relay.providers.compatible.spec import ENDPOINT_PATHS, CompatibleSpec
from unigate_relay.providers.declaration import BalanceApi, ChannelDeclaration, declare_spec

# (One API's type, name, default base URL from One API's channeltype/url.go).
_RESELLERS = (
    (2, "API2D", "https://oa.api2d.net"),
    (4, "CloseAI", "https://api.closeai-proxy.xyz"),
    (5, "OpenAI-SB", "https://api.openai-sb.com"),
    (6, "OpenAIMax", "https://api.openaimax.com"),
    (7, "OhMyGPT", "https://api.ohmygpt.com"),
    (9, "AI.LS", "https://api.caipacity.com"),
    (10, "AIProxy", "https://api.aiproxy.io"),
    (12, "API2GPT", "https://api.api2gpt.com"),
    (13, "AIGC2D", "https://api.aigc2d.com"),
)

SPECS: tuple[CompatibleSpec, ...] = tuple(
    CompatibleSpec(
        channel_type=type_id,
        name=name,
        default_base_url=base_url,
        path_prefix="/v1",
        endpoints=frozenset(ENDPOINT_PATHS),
        default_models=("gpt-4o-mini", "gpt-4o"),
    )
    for type_id, name, base_url in _RESELLERS
)

_CREDIT_GRANTS = "/dashboard/billing/credit_grants"
# By type: the balance API, where the reseller has one (host-rooted: a /v1 base is trimmed).
_BALANCES: dict[int, BalanceApi] = {
    4: BalanceApi("credit_grants", _CREDIT_GRANTS, strip_v1=True),
    5: BalanceApi("openai_sb", "/sb-api/user/status", strip_v1=True, key_query="api_key"),
    10: BalanceApi(
        "aiproxy",
        "/api/report/getUserOverview",
        strip_v1=True,
        host="https://aiproxy.io",
        key_header="Api-Key",
    ),
    12: BalanceApi("api2gpt", _CREDIT_GRANTS, strip_v1=True),
    13: BalanceApi("credit_grants", _CREDIT_GRANTS, strip_v1=True),
}

CHANNELS: tuple[ChannelDeclaration, ...] = tuple(
    declare_spec(
        spec,
        key_hint="sk-...",
        gen_ai_system="openai",
        balance=_BALANCES.get(spec.channel_type),
    )
    for spec in SPECS
)
