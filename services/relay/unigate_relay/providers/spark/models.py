"""Which Spark service a model name reaches: the URL path and the ``domain`` the request
frame must name for it.

The versions and their paths/domains are iFlytek's (https://www.xfyun.cn/doc/spark/Web.html
§1.2: Lite ``/v1.1/chat`` ``lite``, Pro ``/v3.1/chat`` ``generalv3``, Pro-128K
``/chat/pro-128k``, Max ``/v3.5/chat`` ``generalv3.5``, Max-32K ``/chat/max-32k``, 4.0 Ultra
``/v4.0/chat`` ``4.0Ultra``). The model names and how a version is found (from the name
``SparkDesk-<version>`` or ``Spark-Max`` first, else the channel's ``api_version``, else v1.1)
are One API's (``relay/adaptor/xunfei/domain.go``), so migrated channels keep working. A
channel's config may also pin ``domain`` and/or ``path`` outright (services not in the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_BASE_URL = "wss://spark-api.xf-yun.com"
DEFAULT_VERSION = "v1.1"


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    domain: str


class UnknownVersion(ValueError):
    """A model or channel names a Spark version this table does not know."""


VERSIONS: dict[str, Route] = {
    "v1.1": Route("/v1.1/chat", "lite"),
    "v2.1": Route("/v2.1/chat", "generalv2"),
    "v3.1": Route("/v3.1/chat", "generalv3"),
    "v3.1-128K": Route("/chat/pro-128k", "pro-128k"),
    "v3.5": Route("/v3.5/chat", "generalv3.5"),
    "v3.5-32K": Route("/chat/max-32k", "max-32k"),
    "v4.0": Route("/v4.0/chat", "4.0Ultra"),
}

# One API's product names for the versions.
_NAMED: dict[str, str] = {
    "Spark-Lite": "v1.1",
    "Spark-Pro": "v3.1",
    "Spark-Pro-128K": "v3.1-128K",
    "Spark-Max": "v3.5",
    "Spark-Max-32K": "v3.5-32K",
    "Spark-4.0-Ultra": "v4.0",
}
_BY_DOMAIN: dict[str, Route] = {route.domain: route for route in VERSIONS.values()}

# Domains that take a ``system`` message (iFlytek: "Spark 4.0Ultra/Max now support system");
# the others get it as a user turn acknowledged by the assistant (New API's convention).
SYSTEM_DOMAINS = frozenset({"generalv3.5", "max-32k", "4.0Ultra"})
# Domains that take ``payload.functions`` (One API sends them to generalv3* only; Pro-128K and
# Max-32K are the long-context variants of those).
FUNCTION_DOMAINS = frozenset({"generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra"})

MODELS: tuple[str, ...] = (
    "SparkDesk",
    *(f"SparkDesk-{version}" for version in VERSIONS),
    *_NAMED,
)


def _version_of(model: str) -> str | None:
    if model in _NAMED:
        return _NAMED[model]
    if model.startswith("SparkDesk-"):
        return model.removeprefix("SparkDesk-")
    return None


def route_for(model: str, config: dict[str, Any]) -> Route:
    """Where ``model`` (the upstream name) is served, after the channel config's overrides."""
    if model in _BY_DOMAIN:
        route = _BY_DOMAIN[model]
    else:
        version = _version_of(model) or str(config.get("api_version") or DEFAULT_VERSION)
        found = VERSIONS.get(version)
        if found is None and not (config.get("domain") and config.get("path")):
            raise UnknownVersion(f"Spark has no version `{version}` (model `{model}`).")
        route = found or Route("", "")
    path = str(config.get("path") or route.path)
    domain = str(config.get("domain") or route.domain)
    return Route(path if path.startswith("/") else "/" + path, domain)
