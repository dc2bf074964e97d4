"""Reading OpenAI ``chat.completion.chunk`` objects, for the stream writers that turn a
family's chat stream into another protocol's events (Messages, Responses, Gemini).

Every writer follows the first answer (choice 0) and takes from each of its deltas the same
pieces in the same order (reasoning, text, tool call deltas, the finish reason); only what
its protocol makes of a piece differs, so that is all a writer says.
"""

from __future__ import annotations

from typing import Any


class ChatChunkReader:
    """Feed OpenAI chunk objects; each piece of choice 0 goes to the writer's own method."""

    finish_reason: str | None

    def on_reasoning(self, text: str) -> bytes:
        """The frames for a piece of reasoning (``reasoning_content`` or ``reasoning``)."""
        raise NotImplementedError

    def on_text(self, text: str) -> bytes:
        """The frames for a piece of the answer's text."""
        raise NotImplementedError

    def on_tool_call(self, key: int, call: dict[str, Any], function: Any) -> bytes:
        """The frames for a tool call's delta: ``key`` its OpenAI index, ``function`` its
        ``function`` member as sent (name and a piece of the arguments)."""
        raise NotImplementedError

    def feed(self, chunk: Any) -> bytes:
        """The frames for one OpenAI ``chat.completion.chunk`` object."""
        if not isinstance(chunk, dict):
            return b""
        out = b""
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self.on_reasoning(reasoning)
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self.on_text(text)
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                key = call.get("index", 0)
                out += self.on_tool_call(
                    key if isinstance(key, int) else 0, call, call.get("function") or {}
                )
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out
