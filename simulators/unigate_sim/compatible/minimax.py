"""MiniMax's OpenAI-compatible API (``https://api.minimax.io/v1``; China:
``https://api.minimaxi.com/v1``): ``/v1/chat/completions`` with a Bearer key. Its errors
are ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with MiniMax's numeric
code at the end of the message; a missing or wrong key is 401
``authorized_error`` "login fail: Please carry the API secret key in the 'Authorization' field
of the request header (1004)" (NousResearch/hermes-agent#2094), a bad parameter 400 (2013,
"invalid params"). A stream's finishing chunk carries ``usage`` whether asked or not. Its text
models take no images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import typed_error

PROFILE = Profile(
    name="minimax",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("MiniMax-M2", "MiniMax-M1", "MiniMax-Text-01")},
    render_error=typed_error({"auth": "authorized_error", "invalid_url": "not_found_error"}),
    messages={
        "invalid_url": "404 page not found",
        "auth": "login fail: Please carry the API secret key in the 'Authorization' field of "
        "the request header (1004)",
        "model_not_found": "invalid params, unknown model '{model}' (2013)",
        "invalid_request": "invalid params, {message} (2013)",
        "image_unsupported": "invalid params, model {model} does not support image input (2013)",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset(),
    stream_usage="last_chunk",
)
