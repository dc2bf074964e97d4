"""The web console: a single-page app served by the gateway from files in ``static/``.

``/`` is the page (and ``/oauth/github|lark|oidc``, where login providers send the browser
back), ``/console/*`` its assets (ES modules, vendored libraries) and the channel
form hints. The app routes inside the URL fragment (``/#/channels``), so it never claims
another path: ``/v1/*``, ``/api/*``, ``/dashboard/billing/*`` and the ops endpoints stay
exactly as they are, and an unknown path is still the API's OpenAI-shaped 404.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from unigate_gateway.console.channel_forms import channel_forms

STATIC = Path(__file__).parent / "static"

# Everything the page loads comes from this origin, no inline script, but Cloudflare
# Turnstile's widget (its script and its frame), which the sign-up, login and reset forms
# load only while the TurnstileCheckEnabled option is on.
_TURNSTILE = "https://challenges.cloudflare.com"
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'self'; script-src 'self' {_TURNSTILE}; frame-src {_TURNSTILE};"
        " style-src 'self' 'unsafe-inline';"
        " img-src 'self' data: https:; connect-src 'self'; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Always revalidated, so a new release's page is picked up at once (assets carry ETags).
    "Cache-Control": "no-cache",
}


def console_routes() -> list[BaseRoute]:
    index = STATIC / "index.html"
    forms = channel_forms()

    async def page(request: Request) -> Response:
        return FileResponse(index, headers=_PAGE_HEADERS)

    async def channel_types(request: Request) -> Response:
        return JSONResponse(forms, headers={"Cache-Control": "no-cache"})

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        # Where GitHub, Lark and OIDC providers send the browser back (One API's paths, so an
        # app registered for One API keeps its callback URL): the page finishes the login.
        *(
            Route(f"/oauth/{provider}", page, methods=["GET", "HEAD"])
            for provider in ("github", "lark", "oidc")
        ),
        Route("/console/channel-types.json", channel_types, methods=["GET"]),
        Mount("/console", StaticFiles(directory=STATIC), name="console"),
    ]
