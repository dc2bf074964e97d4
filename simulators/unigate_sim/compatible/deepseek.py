"""DeepSeek (https://api-docs.deepseek.com): paths ``/chat/completions`` and
``/v1/chat/completions``; usage carries ``prompt_cache_hit_tokens`` /
``prompt_cache_miss_tokens`` (no ``prompt_tokens_details``). A request whose messages before the
last were sent before is a cache hit for those messages' tokens (``count_prompt_tokens(prefix) -
REPLY_PRIMING_TOKENS``). ``deepseek-reasoner`` answers with ``reasoning_content`` (``"Reasoning
about: <last user text>"``) before the content, streamed as its own deltas, counted in
``completion_tokens`` and ``completion_tokens_details.reasoning_tokens``. Text-only: an
``image_url`` part fails to deserialize (https://api-docs.deepseek.com/quick_start/error_codes:
400 invalid format, 422 invalid parameters); an unknown model is 400 "Model Not Exist"; a wrong
key is 401 "Authentication Fails". JSON mode only (api-docs.deepseek.com/guides/json_mode):
``response_format`` ``json_schema`` is 400 "This response_format type is unavailable now";
``json_object`` needs "json" in the prompt (the OpenAI simulator's own rule)."""

from __future__ import annotations

import orjson

from unigate_sim.compatible.core import CompatibleSimulator, Profile, ProviderError
from unigate_sim.compatible.errors import openai_shape
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.tokens import (
    REPLY_PRIMING_TOKENS,
    count_prompt_tokens,
    count_tokens,
    message_text,
    token_pieces,
)

REASONER = "deepseek-reasoner"


def reasoning_text(messages: list[JSONObject]) -> str:
    """What the simulated deepseek-reasoner "thinks" before answering."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return "Reasoning about: " + (message_text(last) if last is not None else "")


def _messages(request: JSONObject) -> list[JSONObject]:
    return [m for m in request.get("messages") or [] if isinstance(m, dict)]


def _reasoning(request: JSONObject) -> str:
    return reasoning_text(_messages(request)) if request.get("model") == REASONER else ""


def _usage(sim: CompatibleSimulator, request: JSONObject, usage: JSONObject) -> JSONObject:
    prefix = _messages(request)[:-1]
    key = orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS)
    seen: set[bytes] = sim.state.seen_prefixes
    hit = count_prompt_tokens(prefix) - REPLY_PRIMING_TOKENS if prefix and key in seen else 0
    if prefix:
        seen.add(key)
    n_value = request.get("n")
    n = n_value if isinstance(n_value, int) else 1
    reasoning = _reasoning(request)
    reasoning_tokens = count_tokens(reasoning) * n if reasoning else 0
    prompt = int(usage["prompt_tokens"])
    completion = int(usage["completion_tokens"]) + reasoning_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": prompt - hit,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def _answer(sim: CompatibleSimulator, request: JSONObject, data: JSONObject) -> JSONObject:
    reasoning = _reasoning(request)
    if reasoning:
        for choice in data.get("choices") or []:
            choice["message"]["reasoning_content"] = reasoning
    return data


def _stream(
    sim: CompatibleSimulator, request: JSONObject, chunks: list[JSONObject]
) -> list[JSONObject]:
    reasoning = _reasoning(request)
    out: list[JSONObject] = []
    for chunk in chunks:
        out.append(chunk)
        choices = chunk.get("choices") or []
        if reasoning and choices and choices[0].get("delta", {}).get("role") == "assistant":
            # The thinking streams right after the role delta, before any content.
            choices[0]["delta"]["reasoning_content"] = ""
            for piece in token_pieces(reasoning):
                choice = {**choices[0], "delta": {"content": None, "reasoning_content": piece}}
                out.append({**chunk, "choices": [choice]})
    return out


def _check(endpoint: str, request: JSONObject) -> ProviderError | None:
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return PROFILE.error(
            "invalid_request", message="This response_format type is unavailable now"
        )
    return None


def _balance(sim: CompatibleSimulator) -> JSONObject:
    """``GET /user/balance`` (api-docs.deepseek.com/api/get-user-balance): amounts are strings.
    ``state.balance`` sets the total (default 110.00 CNY, the reference's example)."""
    total = float(getattr(sim.state, "balance", 110.0))
    return {
        "is_available": total > 0,
        "balance_infos": [
            {
                "currency": "CNY",
                "total_balance": f"{total:.2f}",
                "granted_balance": "0.00",
                "topped_up_balance": f"{total:.2f}",
            }
        ],
    }


PROFILE = Profile(
    name="deepseek",
    prefixes=("", "/v1"),
    endpoints=frozenset({"/chat/completions", "/models"}),
    models={"/chat/completions": ("deepseek-chat", "deepseek-reasoner")},
    render_error=openai_shape({"auth": "authentication_error"}, {"auth": "invalid_request_error"}),
    messages={
        "invalid_url": "Not Found",
        "auth": "Authentication Fails, Your api key: {key} is invalid",
        "model_not_found": "Model Not Exist",
        "invalid_request": "{message}",
        "image_unsupported": (
            "Failed to deserialize the JSON body into the target type: messages[0]: "
            "unknown variant `image_url`, expected `text`"
        ),
    },
    statuses={"model_not_found": 400, "image_unsupported": 422},
    vision_models=frozenset(),
    answer_hook=_answer,
    stream_hook=_stream,
    usage_hook=_usage,
    check_body=_check,
    account={"/user/balance": _balance},
)
