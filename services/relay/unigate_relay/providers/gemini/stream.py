"""Gemini's ``streamGenerateContent?alt=sse`` → OpenAI ``chat.completion.chunk`` frames.

Each Gemini event is a whole ``GenerateContentResponse`` holding the new parts of each
candidate; the last one of a candidate carries its ``finishReason``, and ``usageMetadata``
(cumulative) rides on the events, complete on the last. A refused prompt is one event with
``promptFeedback.blockReason`` and no candidates. The stream just ends (no ``[DONE]``), so a
stream is complete only once every candidate has finished.
Reference: https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from unigate.v1 import common_pb2
from unigate_relay.providers.gemini.response import (
    Message,
    blocked,
    candidate_index,
    finish_reason,
    read_parts,
    usage_from,
)
from unigate_relay.providers.openai_shapes import DONE_FRAME, chunk_frame


@dataclass(slots=True)
class _Choice:
    started: bool = False
    tool_calls: int = 0
    finished: bool = False


class StreamTranslator:
    """Turns parsed Gemini stream events into OpenAI SSE frames for one response."""

    def __init__(self, *, id: str, model: str, include_usage: bool) -> None:
        self.id = id
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.usage: common_pb2.Usage | None = None
        self.error: dict[str, Any] | None = None
        self.produced = False  # any text, thought or call yet (the first token)
        self.text: list[str] = []
        self._choices: dict[int, _Choice] = {}
        self._blocked = False

    @property
    def finished(self) -> bool:
        """Whether the answer is complete (a blocked prompt, or every candidate finished)."""
        if self._blocked:
            return True
        return bool(self._choices) and all(c.finished for c in self._choices.values())

    def _frame(self, index: int, delta: dict[str, Any] | None, reason: str | None) -> bytes:
        return chunk_frame(
            id=self.id,
            model=self.model,
            created=self.created,
            delta=delta,
            finish_reason=reason,
            index=index,
        )

    def feed(self, event: Any) -> list[bytes]:
        """The frames for one Gemini event (a parsed JSON object)."""
        if not isinstance(event, dict):
            return []
        if isinstance(event.get("error"), dict):
            self.error = event["error"]
            return []
        usage = usage_from(event.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        frames: list[bytes] = []
        if blocked(event) and not event.get("candidates"):
            self._blocked = True
            frames.append(self._frame(0, {"role": "assistant", "content": ""}, None))
            frames.append(self._frame(0, {}, "content_filter"))
            return frames
        for position, candidate in enumerate(event.get("candidates") or []):
            if isinstance(candidate, dict):
                frames += self._candidate(candidate_index(candidate, position), candidate)
        return frames

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[bytes]:
        choice = self._choices.setdefault(index, _Choice())
        message = Message()
        read_parts((candidate.get("content") or {}).get("parts"), message)
        delta: dict[str, Any] = {}
        if message.reasoning:
            delta["reasoning_content"] = message.reasoning
        if message.content:
            delta["content"] = message.content
            self.text.append(message.content)
        if message.reasoning:
            self.text.append(message.reasoning)
        if message.tool_calls:
            delta["tool_calls"] = [
                {"index": choice.tool_calls + i, **call}
                for i, call in enumerate(message.tool_calls)
            ]
            choice.tool_calls += len(message.tool_calls)
        frames: list[bytes] = []
        if delta:
            self.produced = True
        if delta or not choice.started:
            if not choice.started:
                delta = {"role": "assistant", **delta}
                delta.setdefault("content", "")
                choice.started = True
            frames.append(self._frame(index, delta, None))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason and not choice.finished:
            choice.finished = True
            frames.append(self._frame(index, {}, finish_reason(reason, choice.tool_calls > 0)))
        return frames

    def closing_frames(self, usage: common_pb2.Usage) -> list[bytes]:
        """What ends the client's stream: the usage chunk if asked for, then ``[DONE]``."""
        frames = []
        if self.include_usage:
            frames.append(
                chunk_frame(id=self.id, model=self.model, created=self.created, usage=usage)
            )
        frames.append(DONE_FRAME)
        return frames
