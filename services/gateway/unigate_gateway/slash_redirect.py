"""The trailing-slash redirect (``/api/user`` → ``/api/user/``) with a relative ``Location``.

Starlette's own builds an absolute URL from the request's ``Host`` header, so anyone who
can set that header (every client, when nothing in front rewrites it) chooses where the
redirect points. A relative reference (RFC 9110 §10.2.2) needs no host at all.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send


def relative_slash_redirects(router: Router) -> None:
    """Replace ``router``'s slash redirect with one whose ``Location`` is a path."""
    router.redirect_slashes = False
    not_found = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        location = _toggled_location(router, scope) if scope["type"] == "http" else None
        if location is None:
            await not_found(scope, receive, send)
            return
        await RedirectResponse(location)(scope, receive, send)

    router.default = default


def _toggled_location(router: Router, scope: Scope) -> str | None:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    # The path inside a mounted app (Starlette keeps the full path in scope["path"]).
    if (path[len(root) :] if root and path.startswith(root) else path) in ("", "/"):
        return None
    toggled = path.rstrip("/") if path.endswith("/") else path + "/"
    # "//host/..." would be a network-path reference: another origin.
    if not toggled.startswith("/") or toggled.startswith("//"):
        return None
    redirect_scope = {**scope, "path": toggled}
    if not any(route.matches(redirect_scope)[0] is not Match.NONE for route in router.routes):
        return None
    query: bytes = scope.get("query_string", b"")
    location = quote(toggled, safe="/:@!$&'()*+,;=-._~")
    return location + ("?" + query.decode("latin-1") if query else "")
