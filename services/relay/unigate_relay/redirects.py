"""Provider redirects: followed within the channel's origin only.

aiohttp follows redirects anywhere and, crossing origins, strips only ``Authorization``:
``x-api-key``, ``api-key``, ``x-goog-api-key`` and signed headers would go along to whatever
host a provider (or whoever controls its DNS or a misconfigured proxy) names. This client
middleware runs for every hop of a redirect chain (aiohttp applies session middlewares per
request sent), so a chain can never leave the origin it started at: a redirect to another
origin is refused before it is followed, and the call fails as a provider fault.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class CrossOriginRedirect(aiohttp.ClientError):
    """A provider answered with a redirect to another origin; it was not followed."""


async def same_origin_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    response = await handler(request)
    if response.status not in REDIRECT_STATUSES:
        return response
    location = response.headers.get("Location") or response.headers.get("URI")
    if location is None:
        return response
    try:
        target = request.url.join(URL(location))
        same = target.origin() == request.url.origin()
    except ValueError:
        same = False
    if not same:
        response.close()
        raise CrossOriginRedirect(f"redirect to another origin refused ({request.url.origin()})")
    return response
