"""Mistral (https://docs.mistral.ai/api/): paths under ``/v1``. Bodies are validated by
pydantic with extra fields forbidden: any field outside its schema, ``stream_options``
included, is 422 ``extra_forbidden`` "Extra inputs are not permitted"
(mistralai/platform-docs-public#7, dnakov/anon-kode#53). A stream reports usage on the chunk
carrying ``finish_reason`` without being asked. Tool call ids are 9 alphanumeric characters,
and a tool message naming another id is refused. A wrong key is 401 ``{"message":
"Unauthorized"}``; an unknown model 400 ``invalid_model``."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from unigate_sim.compatible.core import CompatibleSimulator, Profile, ProviderError
from unigate_sim.compatible.errors import REQUEST_ID
from unigate_sim.openai.json_types import JSONObject

_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
_EMBEDDING_FIELDS = frozenset(
    {"model", "input", "encoding_format", "output_dimension", "output_dtype"}
)
_TOOL_ID = re.compile(r"^[a-zA-Z0-9]{9}$")


def extra_forbidden(loc: list[Any], value: Any) -> JSONObject:
    """One pydantic ``extra_forbidden`` entry, as Mistral lists them in ``message.detail``."""
    return {
        "type": "extra_forbidden",
        "loc": ["body", *loc],
        "msg": "Extra inputs are not permitted",
        "input": value,
    }


def _check(endpoint: str, request: JSONObject) -> ProviderError | None:
    allowed = _CHAT_FIELDS if endpoint == "/chat/completions" else _EMBEDDING_FIELDS
    extra = [extra_forbidden([k], v) for k, v in request.items() if k not in allowed]
    if extra:
        return ProviderError(422, "invalid_request", orjson.dumps(extra).decode(), None)
    for message in request.get("messages") or []:
        tool_id = message.get("tool_call_id") if isinstance(message, dict) else None
        if isinstance(tool_id, str) and not _TOOL_ID.match(tool_id):
            text = f"Tool call id was {tool_id} but must be a-z, A-Z, 0-9, with a length of 9."
            return ProviderError(400, "invalid_request", text, None)
    return None


def _render(error: ProviderError) -> tuple[int, bytes]:
    if error.kind == "auth":
        return 401, orjson.dumps({"message": "Unauthorized", "request_id": REQUEST_ID})
    if error.kind == "invalid_url":
        return 404, orjson.dumps({"detail": "Not Found"})
    if error.status == 422 and error.message.startswith("[{"):
        detail = orjson.loads(error.message)
        body: JSONObject = {
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        return 422, orjson.dumps(body)
    kind = "invalid_model" if error.kind == "model_not_found" else "invalid_request_error"
    code = "1500" if error.kind == "model_not_found" else None
    body = {"object": "error", "message": error.message, "type": kind, "param": None, "code": code}
    return error.status, orjson.dumps(body)


def tool_id(original: str) -> str:
    """Mistral's form of a tool call id: 9 alphanumerics, derived from the simulator's id."""
    return hashlib.sha256(original.encode()).hexdigest()[:9]


def _answer(sim: CompatibleSimulator, request: JSONObject, data: JSONObject) -> JSONObject:
    for choice in data.get("choices") or []:
        for call in choice.get("message", {}).get("tool_calls") or []:
            call["id"] = tool_id(call["id"])
    return data


def _stream(
    sim: CompatibleSimulator, request: JSONObject, chunks: list[JSONObject]
) -> list[JSONObject]:
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            for call in choice.get("delta", {}).get("tool_calls") or []:
                if "id" in call:
                    call["id"] = tool_id(call["id"])
    return chunks


PROFILE = Profile(
    name="mistral",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": (
            "mistral-large-latest",
            "mistral-small-latest",
            "open-mistral-nemo",
            "pixtral-12b-2409",
        ),
        "/embeddings": ("mistral-embed",),
    },
    render_error=_render,
    messages={
        "invalid_url": "Not Found",
        "auth": "Unauthorized",
        "model_not_found": "Invalid model: {model}",
        "invalid_request": "{message}",
        "image_unsupported": "Image input is not supported for model {model}",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset({"pixtral-12b-2409", "mistral-small-latest"}),
    stream_usage="last_chunk",
    check_body=_check,
    answer_hook=_answer,
    stream_hook=_stream,
    own_fields=frozenset({"random_seed", "safe_prompt", "prompt_mode"}),
)
