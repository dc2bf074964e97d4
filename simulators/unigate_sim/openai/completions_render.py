"""The legacy completion answer: ``"Echo: " + prompt`` as a ``text_completion`` object, or as
a stream of ``text_completion`` server-sent events ending with ``[DONE]``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from unigate_sim.openai.chat_reply import apply_stop
from unigate_sim.openai.completions_request import CompletionRequest, Prompt
from unigate_sim.openai.ids import random_id
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.sse import DONE_FRAME, data_frame
from unigate_sim.openai.tokens import count_tokens, token_pieces, truncate_tokens


@dataclass(frozen=True, slots=True)
class TextChoice:
    """What the simulated model writes after one prompt."""

    prompt: str
    text: str
    finish_reason: str

    @property
    def tokens(self) -> int:
        return count_tokens(self.text)


def plan_text(request: CompletionRequest, prompt: Prompt) -> TextChoice:
    """``"Echo: " + prompt``, cut at a stop sequence and at ``max_tokens``."""
    text = apply_stop("Echo: " + prompt.text, request.stop)
    if request.max_tokens == 0:
        return TextChoice(prompt.text, "", "length")
    text, truncated = truncate_tokens(text, request.max_tokens)
    return TextChoice(prompt.text, text, "length" if truncated else "stop")


def _logprobs(choice: TextChoice, request: CompletionRequest, pieces: list[str]) -> JSONObject:
    """The legacy logprobs block: the simulated model is always certain of its tokens."""
    top = request.logprobs or 0
    offset = 0 if request.echo else len(choice.prompt)
    offsets: list[int] = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    return {
        "tokens": pieces,
        "token_logprobs": [0.0 for _ in pieces],
        "top_logprobs": [
            {piece: 0.0, **{f"<alt{rank}>": -10.0 * rank for rank in range(1, top)}}
            for piece in pieces
        ]
        if top
        else None,
        "text_offset": offsets,
    }


def _choices(request: CompletionRequest) -> list[TextChoice]:
    """One choice per prompt and per ``n``, in the order OpenAI indexes them."""
    return [plan_text(request, prompt) for prompt in request.prompts for _ in range(request.n)]


def _usage(request: CompletionRequest, choices: list[TextChoice]) -> JSONObject:
    completion_tokens = sum(choice.tokens for choice in choices)
    return {
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": request.prompt_tokens + completion_tokens,
    }


def _header(request: CompletionRequest) -> JSONObject:
    return {
        "id": random_id("cmpl-", 29),
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.model,
    }


def render_text_completion(request: CompletionRequest) -> JSONObject:
    """The ``text_completion`` object answered to a non-streaming request."""
    choices = _choices(request)
    rendered: list[JSONObject] = []
    for index, choice in enumerate(choices):
        text = (choice.prompt if request.echo else "") + choice.text
        logprobs = None
        if request.logprobs is not None:
            logprobs = _logprobs(choice, request, token_pieces(text))
        rendered.append(
            {
                "text": text,
                "index": index,
                "logprobs": logprobs,
                "finish_reason": choice.finish_reason,
            }
        )
    return {**_header(request), "choices": rendered, "usage": _usage(request, choices)}


def render_text_stream(request: CompletionRequest) -> list[bytes]:
    """The server-sent event frames of a streaming request: one token per chunk, then a
    chunk with the finish reason, the usage chunk when asked for, and ``[DONE]``."""
    header = _header(request)
    choices = _choices(request)
    frames: list[bytes] = []

    def frame(index: int, text: str, logprobs: JSONObject | None, finish: str | None) -> None:
        choice = {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
        chunk: JSONObject = {**header, "choices": [choice]}
        if request.include_usage:
            chunk["usage"] = None
        frames.append(data_frame(chunk))

    for index, choice in enumerate(choices):
        text = (choice.prompt if request.echo else "") + choice.text
        pieces = token_pieces(text)
        block = _logprobs(choice, request, pieces) if request.logprobs is not None else None
        for position, piece in enumerate(pieces):
            logprobs = None
            if block is not None:
                logprobs = {
                    key: None if values is None else values[position : position + 1]
                    for key, values in block.items()
                }
            frame(index, piece, logprobs, None)
        frame(index, "", None, choice.finish_reason)
    if request.include_usage:
        frames.append(data_frame({**header, "choices": [], "usage": _usage(request, choices)}))
    frames.append(DONE_FRAME)
    return frames
