"""A strict simulator of DeepL's ``POST /v2/translate``.

Reference: DeepL API "Translate text" and "Errors": ``Authorization: DeepL-Auth-Key <key>``
(an unknown key: 403 ``{"message": "Authorization failure, check auth_key"}``; a Free key,
ending in ``:fx``, sent to the Pro host: 403 "Wrong endpoint. Use https://api-free.deepl.com");
a JSON body with ``text`` (a non-empty array of strings, required) and ``target_lang``
(required, one of DeepL's target languages); ``show_billed_characters`` adds
``billed_characters`` to each translation; 400 ``{"message": ...}`` for a bad parameter, 456
"Quota exceeded" once the key's character quota is spent, 429 when told to throttle. The
"translation" is ``[<TARGET>] <text>``, with ``detected_source_language`` ``EN``.

``create_deepl_app(keys, pro=True, quota=None)``; ``state.calls`` — per request ``{"path",
"headers", "body", "status", "billed"}``; ``state.fail_next`` — ``(status, message)`` pairs.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TARGET_LANGS: Final = frozenset(
    [
        "AR",
        "BG",
        "CS",
        "DA",
        "DE",
        "EL",
        "EN",
        "EN-GB",
        "EN-US",
        "ES",
        "ET",
        "FI",
        "FR",
        "HU",
        "ID",
        "IT",
        "JA",
        "KO",
        "LT",
        "LV",
        "NB",
        "NL",
        "PL",
        "PT",
        "PT-BR",
        "PT-PT",
        "RO",
        "RU",
        "SK",
        "SL",
        "SV",
        "TR",
        "UK",
        "ZH",
        "ZH-HANS",
        "ZH-HANT",
    ]
)


def _message(status: int, message: str) -> Response:
    return Response(orjson.dumps({"message": message}), status, media_type="application/json")


def _checked(body: Any) -> tuple[list[str], str]:
    if not isinstance(body, dict):
        raise ValueError("Invalid request: expected a JSON object.")
    text = body.get("text")
    if text is None:
        raise ValueError("Parameter 'text' not specified.")
    if not isinstance(text, list) or not text or not all(isinstance(t, str) for t in text):
        raise ValueError("Invalid value for 'text': expected a non-empty array of strings.")
    target = body.get("target_lang")
    if not isinstance(target, str) or not target:
        raise ValueError("Parameter 'target_lang' not specified.")
    if target.upper() not in TARGET_LANGS:
        raise ValueError("Value for 'target_lang' not supported.")
    return text, target.upper()


async def _translate(request: Request) -> Response:
    state = request.app.state
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme != "DeepL-Auth-Key" or key not in state.keys:
        return _message(403, "Authorization failure, check auth_key")
    if key.endswith(":fx") and state.pro:
        return _message(403, "Wrong endpoint. Use https://api-free.deepl.com")
    record: dict[str, Any] = {
        "path": request.url.path,
        "headers": dict(request.headers),
        "status": 0,
        "billed": None,
    }
    state.calls.append(record)
    response = await _answer(request, record)
    record["status"] = response.status_code
    return response


async def _answer(request: Request, record: dict[str, Any]) -> Response:
    state = request.app.state
    if not request.headers.get("content-type", "").startswith("application/json"):
        return _message(415, "Unsupported Media Type")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _message(400, "Invalid request: the body is not valid JSON.")
    record["body"] = body
    if state.fail_next:
        return _message(*state.fail_next.pop(0))
    try:
        texts, target = _checked(body)
    except ValueError as exc:
        return _message(400, str(exc))
    billed = [len(t) for t in texts]
    if state.quota is not None and state.used + sum(billed) > state.quota:
        return _message(456, "Quota exceeded")
    state.used += sum(billed)
    record["billed"] = sum(billed)
    show = body.get("show_billed_characters") is True
    translations = [
        {
            "detected_source_language": "EN",
            "text": f"[{target}] {text}",
            **({"billed_characters": count} if show else {}),
        }
        for text, count in zip(texts, billed, strict=True)
    ]
    return Response(orjson.dumps({"translations": translations}), media_type="application/json")


async def _unknown(request: Request, exc: Exception) -> Response:
    return _message(404, "Not found")


def create_deepl_app(keys: set[str], *, pro: bool = True, quota: int | None = None) -> Starlette:
    app = Starlette(
        routes=[Route("/v2/translate", _translate, methods=["POST"])],
        exception_handlers={404: _unknown, 405: _unknown},
    )
    app.state.keys = set(keys)
    app.state.pro = pro
    app.state.quota = quota
    app.state.used = 0
    app.state.calls = []
    app.state.fail_next = []
    return app


__all__ = ["TARGET_LANGS", "create_deepl_app"]
