"""Validation of a legacy ``POST /v1/completions`` body into a :class:`CompletionRequest`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from unigate_sim.openai.chat_request import stop_sequences, stream_flags, validate_sampling
from unigate_sim.openai.errors import OpenAIError, bad_request, missing
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import ModelSpec
from unigate_sim.openai.request_body import requested_model
from unigate_sim.openai.tokens import count_tokens
from unigate_sim.openai.value_checks import as_bool, as_int, as_str

_COMPLETION_PARAMETERS: Final = frozenset(
    {
        "model",
        "prompt",
        "best_of",
        "echo",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_tokens",
        "n",
        "presence_penalty",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "suffix",
        "temperature",
        "top_p",
        "user",
    }
)
#: What the legacy endpoint generates when ``max_tokens`` is not given.
DEFAULT_MAX_TOKENS: Final = 16
_MAX_N: Final = 128
_INVALID_PROMPT_MESSAGE: Final = (
    "'$.prompt' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: its text (token ids are shown as numbers) and its token count."""

    text: str
    tokens: int


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated legacy completion request: what the answer depends on."""

    model: str
    prompts: list[Prompt]
    stream: bool
    include_usage: bool
    n: int
    max_tokens: int
    stop: tuple[str, ...]
    echo: bool
    #: How many alternatives each token's logprobs list; None when logprobs are not asked.
    logprobs: int | None

    @property
    def prompt_tokens(self) -> int:
        return sum(prompt.tokens for prompt in self.prompts)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _token_prompt(tokens: list[int]) -> Prompt:
    return Prompt(" ".join(map(str, tokens)), len(tokens))


def _prompts(value: Any) -> list[Prompt]:
    """A string, strings, one array of token ids, or arrays of token ids."""
    if isinstance(value, str):
        return [Prompt(value, count_tokens(value))]
    if not isinstance(value, list) or not value:
        raise bad_request(_INVALID_PROMPT_MESSAGE)
    if all(isinstance(item, str) for item in value):
        return [Prompt(item, count_tokens(item)) for item in value]
    if all(_is_token(item) for item in value):
        return [_token_prompt(value)]
    if all(isinstance(item, list) and item and all(map(_is_token, item)) for item in value):
        return [_token_prompt(item) for item in value]
    raise bad_request(_INVALID_PROMPT_MESSAGE)


def _check_context(spec: ModelSpec, prompts: Sequence[Prompt], max_tokens: int) -> None:
    for prompt in prompts:
        requested = prompt.tokens + max_tokens
        if requested > spec.context_window:
            raise bad_request(
                f"This model's maximum context length is {spec.context_window} tokens, however "
                f"you requested {requested} tokens ({prompt.tokens} in your prompt; "
                f"{max_tokens} for the completion). Please reduce your prompt; or completion "
                "length.",
                None,
                "context_length_exceeded",
            )


def parse_completion_request(payload: JSONObject, models: Sequence[str]) -> CompletionRequest:
    """Validate a ``POST /v1/completions`` body as OpenAI does."""
    model, spec = requested_model(payload, _COMPLETION_PARAMETERS, models)
    if spec.kind == "chat":
        raise OpenAIError(
            404,
            "This is a chat model and not supported in the v1/completions endpoint. "
            "Did you mean to use v1/chat/completions?",
            param="model",
        )
    if spec.kind != "completion":
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    if "prompt" not in payload:
        raise missing("prompt")
    prompts = _prompts(payload["prompt"])
    stream, include_usage = stream_flags(payload)
    n = 1 if payload.get("n") is None else as_int(payload["n"], "n", 1, _MAX_N)
    if payload.get("best_of") is not None:
        as_int(payload["best_of"], "best_of", 1, 20)
    raw_max = payload.get("max_tokens")
    max_tokens = DEFAULT_MAX_TOKENS if raw_max is None else as_int(raw_max, "max_tokens", 0)
    stop = stop_sequences(payload)
    validate_sampling(payload)
    echo = payload.get("echo") is not None and as_bool(payload["echo"], "echo")
    if payload.get("suffix") is not None:
        as_str(payload["suffix"], "suffix")
    raw_logprobs = payload.get("logprobs")
    logprobs = None if raw_logprobs is None else as_int(raw_logprobs, "logprobs", 0, 5)
    _check_context(spec, prompts, max_tokens)
    return CompletionRequest(
        model=model,
        prompts=prompts,
        stream=stream,
        include_usage=include_usage,
        n=n,
        max_tokens=max_tokens,
        stop=stop,
        echo=echo,
        logprobs=logprobs,
    )
