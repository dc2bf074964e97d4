"""OpenAI chat stream chunks as the Responses API's event sequence.

Per OpenAI's "Streaming responses" reference: ``response.created`` and
``response.in_progress`` (the response with no output yet), then each output item in turn —
``response.output_item.added``, its content (a message: ``content_part.added``,
``output_text.delta``…, ``output_text.done``, ``content_part.done``; a reasoning item:
``reasoning_summary_part.added``, ``reasoning_summary_text.delta``…, ``.done``,
``reasoning_summary_part.done``; a function call: ``function_call_arguments.delta``…,
``.done``), ``response.output_item.done`` — and last ``response.completed`` (or
``response.incomplete`` when the output limit stopped the model) with the whole response and
its usage. Every event carries a growing ``sequence_number`` and is framed with its
``event:`` line. An item's id is the same in every event naming it and in the final
response (the SDK's ``responses.stream`` checks that).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from unigate.v1 import common_pb2
from unigate_relay.providers.anthropic.wire import JSONObject
from unigate_relay.translate.chat_chunks import ChatChunkReader
from unigate_relay.translate.responses_response import (
    finished,
    function_call_item,
    message_item,
    reasoning_item,
)


class ResponsesStreamWriter(ChatChunkReader):
    """Feed OpenAI chunk objects; get Responses API event frames."""

    def __init__(self, response: JSONObject) -> None:
        # The skeleton (status in_progress, no output): completed in place as items finish.
        self.response = response
        self.started = False
        self.finish_reason: str | None = None
        self._sequence = 0
        # The open item: its kind ("reasoning", "message", "function_call") and key (the
        # OpenAI tool call index for function calls).
        self._open: tuple[str, int] | None = None
        self._item: JSONObject = {}
        self._text = ""

    def _event(self, payload: JSONObject) -> bytes:
        payload["sequence_number"] = self._sequence
        self._sequence += 1
        kind = str(payload["type"]).encode()
        return b"event: " + kind + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        self.started = True
        snapshot = copy.deepcopy(self.response)
        return self._event({"type": "response.created", "response": snapshot}) + self._event(
            {"type": "response.in_progress", "response": copy.deepcopy(snapshot)}
        )

    def begin(self) -> bytes:
        """The opening events the first time, nothing after."""
        return b"" if self.started else self.start()

    @property
    def _index(self) -> int:
        return len(self.response["output"])

    def _close(self) -> bytes:
        """Finish the open item: its closing events, then ``output_item.done``."""
        if self._open is None:
            return b""
        kind, _ = self._open
        item, text, index = self._item, self._text, self._index
        ids = {"item_id": item["id"], "output_index": index}
        out = b""
        if kind == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            item["content"] = [part]
            item["status"] = "completed"
            out += self._event(
                {
                    "type": "response.output_text.done",
                    **ids,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            )
            out += self._event(
                {"type": "response.content_part.done", **ids, "content_index": 0, "part": part}
            )
        elif kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            item["summary"] = [part]
            out += self._event(
                {
                    "type": "response.reasoning_summary_text.done",
                    **ids,
                    "summary_index": 0,
                    "text": text,
                }
            )
            out += self._event(
                {
                    "type": "response.reasoning_summary_part.done",
                    **ids,
                    "summary_index": 0,
                    "part": part,
                }
            )
        else:
            item["arguments"] = text
            item["status"] = "completed"
            out += self._event(
                {
                    "type": "response.function_call_arguments.done",
                    **ids,
                    "name": item["name"],
                    "arguments": text,
                }
            )
        out += self._event(
            {"type": "response.output_item.done", "output_index": index, "item": item}
        )
        self.response["output"].append(item)
        self._open, self._item, self._text = None, {}, ""
        return out

    def _open_item(self, kind: str, key: int, item: JSONObject) -> bytes:
        out = self._close()
        self._open, self._item, self._text = (kind, key), item, ""
        index = self._index
        added = copy.deepcopy(item)
        out += self._event(
            {"type": "response.output_item.added", "output_index": index, "item": added}
        )
        ids = {"item_id": item["id"], "output_index": index}
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            out += self._event(
                {"type": "response.content_part.added", **ids, "content_index": 0, "part": part}
            )
        elif kind == "reasoning":
            part = {"type": "summary_text", "text": ""}
            out += self._event(
                {
                    "type": "response.reasoning_summary_part.added",
                    **ids,
                    "summary_index": 0,
                    "part": part,
                }
            )
        return out

    def _delta(self, kind: str, delta: str) -> bytes:
        self._text += delta
        ids = {"item_id": self._item["id"], "output_index": self._index}
        if kind == "message":
            return self._event(
                {
                    "type": "response.output_text.delta",
                    **ids,
                    "content_index": 0,
                    "delta": delta,
                    "logprobs": [],
                }
            )
        if kind == "reasoning":
            return self._event(
                {
                    "type": "response.reasoning_summary_text.delta",
                    **ids,
                    "summary_index": 0,
                    "delta": delta,
                }
            )
        return self._event(
            {"type": "response.function_call_arguments.delta", **ids, "delta": delta}
        )

    def on_reasoning(self, text: str) -> bytes:
        out = b""
        if self._open != ("reasoning", 0):
            out += self._open_item("reasoning", 0, {**reasoning_item(""), "summary": []})
        return out + self._delta("reasoning", text)

    def on_text(self, text: str) -> bytes:
        out = b""
        if self._open != ("message", 0):
            item = {**message_item("", status="in_progress"), "content": []}
            out += self._open_item("message", 0, item)
        return out + self._delta("message", text)

    def on_tool_call(self, key: int, call: dict[str, Any], function: Any) -> bytes:
        out = b""
        if self._open != ("function_call", key):
            # OpenAI sends one call's arguments whole before the next call starts.
            item = function_call_item(
                str(call.get("id") or ""), str(function.get("name") or ""), ""
            )
            item["status"] = "in_progress"
            out += self._open_item("function_call", key, item)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._delta("function_call", arguments)
        return out

    def finish(self, usage: common_pb2.Usage) -> bytes:
        """Close the open item; ``response.completed`` (or ``.incomplete``) with the whole
        response and the provider's usage."""
        out = self.begin()
        out += self._close()
        finished(self.response, self.finish_reason, usage)
        kind = (
            "response.incomplete"
            if self.response["status"] == "incomplete"
            else ("response.completed")
        )
        return out + self._event({"type": kind, "response": self.response})
