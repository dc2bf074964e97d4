"""A strict, deterministic simulator of OpenAI's Realtime API (WebSocket) and Azure's.

Written from the public reference (platform.openai.com/docs/api-reference/realtime):

* ``GET /v1/realtime?model=...`` upgraded to a WebSocket, the key as ``Authorization: Bearer``
  or, as browsers send it, the subprotocol ``openai-insecure-api-key.<key>`` (with
  ``realtime``). Azure: ``/openai/realtime?api-version=...&deployment=...`` with ``api-key``.
* A missing or wrong key is refused as OpenAI does: the upgrade is accepted, one ``error``
  event (``invalid_request_error`` / ``invalid_api_key``) is sent and the socket is closed
  with code 3000, reason ``invalid_request_error.invalid_api_key``.
* ``OpenAI-Beta: realtime=v1`` selects the beta interface (``response.text.delta``,
  ``response.audio.delta``, ``conversation.item.created``, ``session.modalities``); without
  it the GA interface (``response.output_text.delta``, ``response.output_audio.delta``,
  ``conversation.item.added``/``.done``, ``session.type`` required in ``session.update``).
* Client events: ``session.update``, ``conversation.item.create``,
  ``input_audio_buffer.append``/``commit``/``clear``, ``response.create``,
  ``response.cancel``. Anything else gets an ``error`` event naming the bad ``type``.
* ``max_output_tokens`` (GA; beta ``max_response_output_tokens``) in ``session.update`` or
  ``response.create``: 1..4,096 or ``"inf"``, else an error; an answer that would pass it is
  cut there (``status: "incomplete"``, reason ``max_output_tokens``). A commit under 100 ms
  of audio is refused (``input_audio_buffer_commit_empty``); with server VAD on (the
  default) a commit is answered without ``response.create``. One response at a time is
  generated while events are still read: ``response.cancel`` stops it (``status:
  "cancelled"``, usage of what was sent), with none active it is an error
  (``response_cancel_not_active``), and a second ``response.create`` meanwhile is refused
  (``conversation_already_has_active_response``).
* Answers: text "Echo: <last user text>", or "Heard <N> ms of audio" for audio input; audio
  output is base64 PCM16 (24 kHz mono), 2,400 bytes (50 ms) per audio token.

Usage in ``response.done`` is predictable: input text tokens are :func:`count_tokens` of
every text in the conversation (the instructions included), input audio tokens one per
100 ms of user audio (4,800 bytes) plus the audio tokens of earlier answers; the input of the
previous response counts as cached (text and audio apart), so turn two has cached tokens;
output text tokens are :func:`count_tokens` of the answer text (transcript for audio), audio
tokens twice that.

``app.state.realtime_sessions`` records each session's model, headers and events received;
``app.state.responses`` each ``response.done`` usage sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from unigate_sim.openai import count_tokens

INSECURE_KEY_PREFIX = "openai-insecure-api-key."
CLOSE_INVALID_KEY = 3000
BYTES_PER_INPUT_AUDIO_TOKEN = 4_800  # 100 ms of 24 kHz PCM16
BYTES_PER_OUTPUT_AUDIO_TOKEN = 2_400  # 50 ms
MIN_COMMIT_BYTES = 4_800  # the real API refuses a commit of under 100 ms of audio
CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)
MAX_OUTPUT_TOKENS = 4_096
_ids = itertools.count(1)


def _valid_limit(value: object) -> bool:
    if value == "inf":
        return True
    return (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_OUTPUT_TOKENS
    )


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):020d}"


def error_event(
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "error",
        "event_id": _id("event"),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


@dataclass
class Item:
    id: str
    role: str
    text: str = ""
    audio_bytes: int = 0
    # Output audio tokens of an assistant answer (input to later responses).
    audio_tokens: int = 0


@dataclass
class Session:
    model: str
    beta: bool
    instructions: str = ""
    modalities: list[str] = field(default_factory=list)
    server_vad: bool = True
    # GA max_output_tokens / beta max_response_output_tokens: 1..4096 or "inf".
    max_output: int | str = "inf"
    items: list[Item] = field(default_factory=list)
    buffer: bytearray = field(default_factory=bytearray)
    prev_input: tuple[int, int] = (0, 0)
    received: list[dict[str, Any]] = field(default_factory=list)
    # The response being generated (events are still read meanwhile) and its cancellation.
    active: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class RealtimeSimulator:
    def __init__(self, api_keys: set[str]) -> None:
        self.api_keys = set(api_keys)
        self.sessions: list[Session] = []
        self.responses: list[dict[str, Any]] = []
        # Seconds to wait before each text delta (a slow model, for tests that leave mid-way).
        self.delta_delay = 0.0
        # Close the socket (1011) after this many text deltas of a response (a provider lost
        # mid-answer); 0 = never.
        self.drop_after_deltas = 0

    # ---- connection ------------------------------------------------------------------
    def _key(self, ws: WebSocket, azure: bool) -> tuple[str, str | None]:
        """(key, subprotocol to accept)."""
        if azure:
            return ws.headers.get("api-key", "").strip(), None
        scheme, _, key = ws.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip(), None
        protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
        for p in protocols:
            if p.startswith(INSECURE_KEY_PREFIX):
                return p[len(INSECURE_KEY_PREFIX) :], "realtime" if "realtime" in protocols else p
        return "", None

    async def openai(self, ws: WebSocket) -> None:
        await self._serve(ws, azure=False)

    async def azure(self, ws: WebSocket) -> None:
        await self._serve(ws, azure=True)

    async def _serve(self, ws: WebSocket, *, azure: bool) -> None:
        key, subprotocol = self._key(ws, azure)
        await ws.accept(subprotocol=subprotocol)
        if key not in self.api_keys:
            message = (
                "Incorrect API key provided."
                if key
                else "You didn't provide an API key. You need to provide your API key in an"
                " Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            await self._send(ws, error_event(message, code="invalid_api_key"))
            await ws.close(CLOSE_INVALID_KEY, "invalid_request_error.invalid_api_key")
            return
        q = ws.query_params
        if azure:
            model = q.get("deployment", "")
            if not q.get("api-version"):
                await self._refuse(ws, "Missing required query parameter: 'api-version'.")
                return
        else:
            model = q.get("model", "")
        if not model:
            await self._refuse(ws, "Missing required parameter: 'model'.")
            return
        beta = ws.headers.get("openai-beta", "") == "realtime=v1"
        session = Session(
            model=model,
            beta=beta,
            modalities=["text", "audio"] if beta else ["audio"],
            headers={k: v for k, v in ws.headers.items() if k != "authorization"},
        )
        self.sessions.append(session)
        await self._send(
            ws,
            {"type": "session.created", "event_id": _id("event"), "session": self._dump(session)},
        )
        try:
            while True:
                raw = await ws.receive_text()
                await self._handle(ws, session, raw)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            if session.active is not None:
                session.active.cancel()

    async def _refuse(self, ws: WebSocket, message: str) -> None:
        await self._send(ws, error_event(message, code="missing_required_parameter"))
        await ws.close(1008, "invalid_request_error")

    @staticmethod
    async def _send(ws: WebSocket, event: dict[str, Any]) -> None:
        await ws.send_text(orjson.dumps(event).decode())

    def _dump(self, s: Session) -> dict[str, Any]:
        vad = {"type": "server_vad"} if s.server_vad else None
        body: dict[str, Any] = {
            "id": f"sess_{id(s):x}",
            "object": "realtime.session",
            "model": s.model,
            "instructions": s.instructions,
        }
        if s.beta:
            body |= {"modalities": s.modalities, "turn_detection": vad, "voice": "alloy"}
        else:
            body |= {
                "type": "realtime",
                "output_modalities": s.modalities,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "turn_detection": vad,
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"},
                },
            }
        return body

    # ---- client events ---------------------------------------------------------------
    async def _handle(self, ws: WebSocket, s: Session, raw: str) -> None:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self._send(
                ws,
                error_event("The server could not parse the event as JSON.", code="invalid_json"),
            )
            return
        if not isinstance(event, dict):
            await self._send(ws, error_event("Expected an object.", code="invalid_json"))
            return
        s.received.append(event)
        kind = event.get("type")
        eid = event.get("event_id")
        if kind not in CLIENT_EVENTS:
            await self._send(
                ws,
                error_event(
                    f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{t}'" for t in CLIENT_EVENTS)
                    + ".",
                    code="invalid_value",
                    param="type",
                    event_id=eid,
                ),
            )
            return
        if kind == "session.update":
            await self._session_update(ws, s, event)
        elif kind == "conversation.item.create":
            await self._item_create(ws, s, event)
        elif kind == "input_audio_buffer.append":
            audio = event.get("audio")
            try:
                if not isinstance(audio, str):
                    raise ValueError
                s.buffer += base64.b64decode(audio, validate=True)
            except (ValueError, binascii.Error):
                await self._send(
                    ws,
                    error_event(
                        "Invalid 'audio'. Expected base64-encoded audio.",
                        code="invalid_value",
                        param="audio",
                        event_id=eid,
                    ),
                )
        elif kind == "input_audio_buffer.clear":
            s.buffer.clear()
            await self._send(ws, {"type": "input_audio_buffer.cleared", "event_id": _id("event")})
        elif kind == "input_audio_buffer.commit":
            await self._commit(ws, s, eid)
        elif kind == "response.create":
            await self._start(ws, s, event.get("response") or {}, eid)
        elif kind == "response.cancel" and s.active is not None and not s.active.done():
            s.cancel_requested = True
        elif kind == "response.cancel":
            await self._send(
                ws,
                error_event(
                    "Cancellation failed: no active response found.",
                    code="response_cancel_not_active",
                    event_id=eid,
                ),
            )
        else:
            await self._send(
                ws,
                error_event(
                    f"The simulator does not implement '{kind}'.", code="unsupported", event_id=eid
                ),
            )

    async def _session_update(self, ws: WebSocket, s: Session, event: dict[str, Any]) -> None:
        eid = event.get("event_id")
        session = event.get("session")
        if not isinstance(session, dict):
            await self._send(
                ws,
                error_event(
                    "Missing required parameter: 'session'.",
                    code="missing_required_parameter",
                    param="session",
                    event_id=eid,
                ),
            )
            return
        if not s.beta and session.get("type") != "realtime":
            await self._send(
                ws,
                error_event(
                    "Missing required parameter: 'session.type'.",
                    code="missing_required_parameter",
                    param="session.type",
                    event_id=eid,
                ),
            )
            return
        field_name = "modalities" if s.beta else "output_modalities"
        if field_name in session:
            mods = session[field_name]
            allowed = (
                (["text"], ["audio", "text"], ["text", "audio"])
                if s.beta
                else (["text"], ["audio"])
            )
            if mods not in allowed:
                await self._send(
                    ws,
                    error_event(
                        f"Invalid modalities: {mods}. Supported combinations are: "
                        + ", ".join(str(a) for a in allowed)
                        + ".",
                        code="invalid_value",
                        param=f"session.{field_name}",
                        event_id=eid,
                    ),
                )
                return
            s.modalities = list(mods)
        limit_name = "max_response_output_tokens" if s.beta else "max_output_tokens"
        if limit_name in session:
            if not _valid_limit(session[limit_name]):
                await self._send(
                    ws,
                    error_event(
                        f"Invalid 'session.{limit_name}': expected an integer between 1 and"
                        f" {MAX_OUTPUT_TOKENS} or 'inf'.",
                        code="invalid_value",
                        param=f"session.{limit_name}",
                        event_id=eid,
                    ),
                )
                return
            s.max_output = session[limit_name]
        if isinstance(session.get("instructions"), str):
            s.instructions = session["instructions"]
        td_holder = session if s.beta else ((session.get("audio") or {}).get("input") or {})
        if "turn_detection" in td_holder:
            s.server_vad = td_holder["turn_detection"] is not None
        await self._send(
            ws, {"type": "session.updated", "event_id": _id("event"), "session": self._dump(s)}
        )

    async def _item_added(self, ws: WebSocket, s: Session, item: dict[str, Any]) -> None:
        previous = s.items[-2].id if len(s.items) > 1 else None
        if s.beta:
            await self._send(
                ws,
                {
                    "type": "conversation.item.created",
                    "event_id": _id("event"),
                    "previous_item_id": previous,
                    "item": item,
                },
            )
        else:
            for kind in ("conversation.item.added", "conversation.item.done"):
                await self._send(
                    ws,
                    {
                        "type": kind,
                        "event_id": _id("event"),
                        "previous_item_id": previous,
                        "item": item,
                    },
                )

    async def _item_create(self, ws: WebSocket, s: Session, event: dict[str, Any]) -> None:
        eid = event.get("event_id")
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "message":
            await self._send(
                ws,
                error_event(
                    "Invalid 'item': only message items are simulated.",
                    code="invalid_value",
                    param="item.type",
                    event_id=eid,
                ),
            )
            return
        role = item.get("role")
        content = item.get("content")
        if role not in ("user", "system", "assistant") or not isinstance(content, list):
            await self._send(
                ws,
                error_event(
                    "Invalid 'item': a message needs a role and a content list.",
                    code="invalid_value",
                    param="item",
                    event_id=eid,
                ),
            )
            return
        text, audio = [], 0
        for part in content:
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype in ("input_text", "text", "output_text") and isinstance(part.get("text"), str):
                text.append(part["text"])
            elif ptype == "input_audio" and isinstance(part.get("audio"), str):
                try:
                    audio += len(base64.b64decode(part["audio"], validate=True))
                except (ValueError, binascii.Error):
                    await self._send(
                        ws,
                        error_event(
                            "Invalid 'audio'. Expected base64-encoded audio.",
                            code="invalid_value",
                            param="item.content.audio",
                            event_id=eid,
                        ),
                    )
                    return
            else:
                await self._send(
                    ws,
                    error_event(
                        f"Invalid content part type: {ptype!r}.",
                        code="invalid_value",
                        param="item.content",
                        event_id=eid,
                    ),
                )
                return
        new = Item(item.get("id") or _id("item"), role, " ".join(text), audio)
        s.items.append(new)
        await self._item_added(
            ws,
            s,
            {
                "id": new.id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": role,
                "content": content,
            },
        )

    async def _commit(self, ws: WebSocket, s: Session, eid: object) -> None:
        if len(s.buffer) < MIN_COMMIT_BYTES:
            ms = len(s.buffer) * 1000 // 48_000
            await self._send(
                ws,
                error_event(
                    "Error committing input audio buffer: buffer too small. Expected at least"
                    f" 100ms of audio, but buffer only has {ms:.2f}ms of audio.",
                    code="input_audio_buffer_commit_empty",
                    event_id=str(eid) if eid else None,
                ),
            )
            return
        item = Item(_id("item"), "user", audio_bytes=len(s.buffer))
        s.buffer.clear()
        previous = s.items[-1].id if s.items else None
        s.items.append(item)
        await self._send(
            ws,
            {
                "type": "input_audio_buffer.committed",
                "event_id": _id("event"),
                "previous_item_id": previous,
                "item_id": item.id,
            },
        )
        await self._item_added(
            ws,
            s,
            {
                "id": item.id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
        )
        if s.server_vad:  # the server's turn detection answers a finished turn by itself
            await self._start(ws, s, {}, None)

    async def _start(self, ws: WebSocket, s: Session, options: dict[str, Any], eid: object) -> None:
        """Generate a response while events are still read (so it can be cancelled); one
        at a time, as the real API allows."""
        if s.active is not None and not s.active.done():
            await self._send(
                ws,
                error_event(
                    "Conversation already has an active response in progress.",
                    code="conversation_already_has_active_response",
                    event_id=str(eid) if eid else None,
                ),
            )
            return
        s.cancel_requested = False
        s.active = asyncio.create_task(self._respond(ws, s, options, eid))

    # ---- responses -------------------------------------------------------------------
    async def _respond(
        self, ws: WebSocket, s: Session, options: dict[str, Any], eid: object
    ) -> None:
        field_name = "modalities" if s.beta else "output_modalities"
        modalities = options.get(field_name, s.modalities)
        if not isinstance(modalities, list) or not set(modalities) <= {"text", "audio"}:
            await self._send(
                ws,
                error_event(
                    f"Invalid 'response.{field_name}'.",
                    code="invalid_value",
                    param=f"response.{field_name}",
                    event_id=str(eid) if eid else None,
                ),
            )
            return
        limit_name = "max_response_output_tokens" if s.beta else "max_output_tokens"
        limit = options.get(limit_name, s.max_output)
        if not _valid_limit(limit):
            await self._send(
                ws,
                error_event(
                    f"Invalid 'response.{limit_name}': expected an integer between 1 and"
                    f" {MAX_OUTPUT_TOKENS} or 'inf'.",
                    code="invalid_value",
                    param=f"response.{limit_name}",
                    event_id=str(eid) if eid else None,
                ),
            )
            return
        audio_out = "audio" in modalities
        last_user = next((i for i in reversed(s.items) if i.role == "user"), None)
        if last_user is None:
            reply = "Hello."
        elif last_user.audio_bytes and not last_user.text:
            reply = f"Heard {last_user.audio_bytes * 1000 // 48_000} ms of audio"
        else:
            reply = "Echo: " + last_user.text
        # Input: everything in the conversation so far, the instructions included.
        in_text = count_tokens(
            " ".join([s.instructions, *(i.text for i in s.items if i.text)]).strip()
        )
        in_audio = sum(
            math.ceil(i.audio_bytes / BYTES_PER_INPUT_AUDIO_TOKEN) + i.audio_tokens for i in s.items
        )
        cached_text, cached_audio = (
            min(v, c) for v, c in zip(s.prev_input, (in_text, in_audio), strict=True)
        )
        s.prev_input = (in_text, in_audio)
        status, details = "completed", None
        per_token = 3 if audio_out else 1  # a text token, and two audio tokens with it
        if isinstance(limit, int):
            while " " in reply and count_tokens(reply) * per_token > limit:
                reply = reply.rsplit(" ", 1)[0]
                status, details = (
                    "incomplete",
                    {"type": "incomplete", "reason": "max_output_tokens"},
                )
        out_text = count_tokens(reply)
        out_audio = 2 * out_text if audio_out else 0
        rid, item_id = _id("resp"), _id("item")
        response: dict[str, Any] = {
            "id": rid,
            "object": "realtime.response",
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "usage": None,
        }
        await self._send(
            ws, {"type": "response.created", "event_id": _id("event"), "response": response}
        )
        part_type = (
            ("audio" if s.beta else "output_audio")
            if audio_out
            else ("text" if s.beta else "output_text")
        )
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        base = {"response_id": rid, "item_id": item_id, "output_index": 0}
        await self._send(
            ws,
            {
                "type": "response.output_item.added",
                "event_id": _id("event"),
                "response_id": rid,
                "output_index": 0,
                "item": item,
            },
        )
        if not s.beta:
            await self._send(
                ws,
                {
                    "type": "conversation.item.added",
                    "event_id": _id("event"),
                    "previous_item_id": s.items[-1].id if s.items else None,
                    "item": item,
                },
            )
        await self._send(
            ws,
            {
                "type": "response.content_part.added",
                "event_id": _id("event"),
                **base,
                "content_index": 0,
                "part": {"type": part_type, "text" if not audio_out else "transcript": ""},
            },
        )
        prefix = "response." if s.beta else "response.output_"
        words = reply.split(" ")
        if audio_out:
            pcm = bytes((n * 37) & 0xFF for n in range(out_audio * BYTES_PER_OUTPUT_AUDIO_TOKEN))
            chunk = BYTES_PER_OUTPUT_AUDIO_TOKEN * 4
            for at in range(0, len(pcm), chunk):
                if self.delta_delay:
                    await asyncio.sleep(self.delta_delay)
                if s.cancel_requested:
                    reply, words, out_text = "", [], 0
                    out_audio = at // BYTES_PER_OUTPUT_AUDIO_TOKEN
                    status = "cancelled"
                    details = {"type": "cancelled", "reason": "client_cancelled"}
                    break
                await self._send(
                    ws,
                    {
                        "type": f"{prefix}audio.delta",
                        "event_id": _id("event"),
                        **base,
                        "content_index": 0,
                        "delta": base64.b64encode(pcm[at : at + chunk]).decode(),
                    },
                )
            for n, w in enumerate(words):
                await self._send(
                    ws,
                    {
                        "type": f"{prefix}audio_transcript.delta",
                        "event_id": _id("event"),
                        **base,
                        "content_index": 0,
                        "delta": w if n == 0 else " " + w,
                    },
                )
            await self._send(
                ws,
                {
                    "type": f"{prefix}audio.done",
                    "event_id": _id("event"),
                    **base,
                    "content_index": 0,
                },
            )
            await self._send(
                ws,
                {
                    "type": f"{prefix}audio_transcript.done",
                    "event_id": _id("event"),
                    **base,
                    "content_index": 0,
                    "transcript": reply,
                },
            )
            part = {"type": part_type, "transcript": reply}
        else:
            for n, w in enumerate(words):
                if self.delta_delay:
                    await asyncio.sleep(self.delta_delay)
                if self.drop_after_deltas and n == self.drop_after_deltas:
                    await ws.close(1011, "internal error")
                    raise WebSocketDisconnect(1011)
                if s.cancel_requested:
                    reply = " ".join(words[:n])
                    out_text, status = count_tokens(reply), "cancelled"
                    details = {"type": "cancelled", "reason": "client_cancelled"}
                    break
                await self._send(
                    ws,
                    {
                        "type": f"{prefix}text.delta",
                        "event_id": _id("event"),
                        **base,
                        "content_index": 0,
                        "delta": w if n == 0 else " " + w,
                    },
                )
            await self._send(
                ws,
                {
                    "type": f"{prefix}text.done",
                    "event_id": _id("event"),
                    **base,
                    "content_index": 0,
                    "text": reply,
                },
            )
            part = {"type": part_type, "text": reply}
        await self._send(
            ws,
            {
                "type": "response.content_part.done",
                "event_id": _id("event"),
                **base,
                "content_index": 0,
                "part": part,
            },
        )
        item = {**item, "status": "completed", "content": [part]}
        await self._send(
            ws,
            {
                "type": "response.output_item.done",
                "event_id": _id("event"),
                "response_id": rid,
                "output_index": 0,
                "item": item,
            },
        )
        if not s.beta:
            await self._send(
                ws,
                {
                    "type": "conversation.item.done",
                    "event_id": _id("event"),
                    "previous_item_id": None,
                    "item": item,
                },
            )
        s.items.append(Item(item_id, "assistant", reply, audio_tokens=out_audio))
        usage = {
            "total_tokens": in_text + in_audio + out_text + out_audio,
            "input_tokens": in_text + in_audio,
            "output_tokens": out_text + out_audio,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "image_tokens": 0,
                "cached_tokens": cached_text + cached_audio,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }
        self.responses.append(
            {"id": rid, "model": s.model, "usage": usage, "status": status, "limit": limit}
        )
        done = {
            **response,
            "status": status,
            "status_details": details,
            "output": [item],
            "usage": usage,
        }
        await self._send(ws, {"type": "response.done", "event_id": _id("event"), "response": done})


def create_realtime_app(api_keys: set[str]) -> Starlette:
    sim = RealtimeSimulator(api_keys)
    app = Starlette(
        routes=[
            WebSocketRoute("/v1/realtime", sim.openai),
            WebSocketRoute("/openai/realtime", sim.azure),
        ]
    )
    app.state.realtime = sim
    return app
