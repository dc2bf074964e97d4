"""What the simulated Gemini model answers to a validated request, and how it is rendered.

Deterministic, like the OpenAI simulator: the answer is ``"Echo: " + <text of the last user
turn>`` (or of the function responses, when the conversation ends with them); with functions
declared it calls the first one (or the first allowed) when the mode is ANY (on every turn,
as Gemini must), or when the user asks about the weather, its arguments made up from the
schema. ``responseMimeType`` JSON
gives ``{"content": echo}`` or a value shaped by ``responseSchema``; ``stopSequences`` cut the
text, ``maxOutputTokens`` truncates it (``MAX_TOKENS``); ``candidateCount`` repeats the
candidate; a ``thinkingConfig`` with a budget other than 0 thinks ``"Thinking about: " +
text`` (counted in ``thoughtsTokenCount``, returned only with ``includeThoughts``), and its
function calls carry a ``thoughtSignature``. A prompt whose user text contains the word
:data:`BLOCK_WORD` is refused: ``promptFeedback.blockReason: SAFETY`` and no candidates.

Usage is counted with :func:`unigate_sim.openai.count_tokens` (o200k_base): every text, every
function call and response as JSON, and :data:`MEDIA_PART_TOKENS` per image or file part
(Gemini's flat 258 tokens for an image up to 384 px).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from unigate_sim.gemini.errors import invalid
from unigate_sim.gemini.validate import declared_functions
from unigate_sim.openai.tokens import count_tokens, token_pieces, truncate_tokens

BLOCK_WORD: Final = "kill"
MEDIA_PART_TOKENS: Final = 258
_BLOCK_RE: Final = re.compile(rf"\b{BLOCK_WORD}\b", re.IGNORECASE)
_WEATHER_RE: Final = re.compile(r"\bweather\b", re.IGNORECASE)
_SIGNING_KEY: Final = secrets.token_bytes(16)
_SAFETY_RATINGS: Final = [
    {"category": c, "probability": "NEGLIGIBLE"}
    for c in (
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    )
]


def signature_for(name: str, args: Any) -> str:
    """The thought signature the simulator attaches to a function call it makes."""
    digest = hashlib.sha256(
        _SIGNING_KEY + name.encode() + orjson.dumps(args, option=orjson.OPT_SORT_KEYS)
    )
    return base64.b64encode(digest.digest()).decode()


def check_signatures(request: dict[str, Any], model: str) -> None:
    """Thought signatures sent back must be ones the simulator issued; Gemini 3 models need
    them on every function call of the history
    (https://ai.google.dev/gemini-api/docs/thought-signatures)."""
    for content in request["contents"]:
        if content.get("role") != "model":
            continue
        for part in content["parts"]:
            call = part.get("functionCall")
            if call is None:
                continue
            signature = part.get("thoughtSignature")
            if signature is None and model.startswith("gemini-3"):
                raise invalid(
                    "Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly, and missing thought_signature may "
                    "lead to degraded model performance."
                )
            if signature is not None and signature != signature_for(
                call["name"], call.get("args", {})
            ):
                raise invalid("Thought signature is not valid.")


def _parts_text(parts: list[dict[str, Any]]) -> str:
    texts = []
    for part in parts:
        if "text" in part and not part.get("thought"):
            texts.append(part["text"])
        elif "functionResponse" in part:
            response = part["functionResponse"].get("response") or {}
            if set(response) == {"content"} and isinstance(response["content"], str):
                texts.append(response["content"])
            else:
                texts.append(orjson.dumps(response).decode())
    return " ".join(texts)


def prompt_tokens(request: dict[str, Any]) -> int:
    """``promptTokenCount`` of a validated request."""
    contents = list(request["contents"])
    if "systemInstruction" in request:
        contents.append(request["systemInstruction"])
    total = 0
    for content in contents:
        for part in content["parts"]:
            if "text" in part:
                total += count_tokens(part["text"])
            elif "functionCall" in part:
                total += count_tokens(orjson.dumps(part["functionCall"]).decode())
            elif "functionResponse" in part:
                total += count_tokens(orjson.dumps(part["functionResponse"]).decode())
            else:
                total += MEDIA_PART_TOKENS
    for declaration in declared_functions(request):
        total += count_tokens(orjson.dumps(declaration).decode())
    return total


def _example(schema: Any, text: str, depth: int = 0) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return _example(schema["anyOf"][0], text, depth + 1)
    kind = str(schema.get("type") or "").upper()
    if kind == "OBJECT" or "properties" in schema:
        properties = schema.get("properties") or {}
        required = schema.get("required")
        return {
            k: _example(v, text, depth + 1)
            for k, v in properties.items()
            if required is None or k in required
        }
    if kind == "ARRAY":
        return [_example(schema.get("items"), text, depth + 1)]
    return {"INTEGER": 1, "NUMBER": 1, "BOOLEAN": True, "NULL": None}.get(kind, text)


@dataclass(slots=True)
class Candidate:
    """One candidate's answer."""

    text: str | None = None
    call: dict[str, Any] | None = None
    signature: str | None = None
    finish: str = "STOP"

    def tokens(self) -> int:
        if self.call is not None:
            return count_tokens(orjson.dumps(self.call).decode())
        return count_tokens(self.text or "")


@dataclass(slots=True)
class Answer:
    """The whole answer to a request, before rendering."""

    model: str
    prompt_tokens: int
    candidates: list[Candidate] = field(default_factory=list)
    thought: str | None = None
    thoughts_tokens: int = 0
    blocked: bool = False
    response_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def usage(self, final: bool = True) -> dict[str, Any]:
        if not final:
            return {"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens}
        generated = sum(c.tokens() for c in self.candidates)
        usage: dict[str, Any] = {"promptTokenCount": self.prompt_tokens}
        if self.candidates:
            usage["candidatesTokenCount"] = generated
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        usage["totalTokenCount"] = self.prompt_tokens + generated + self.thoughts_tokens
        return usage


def plan(request: dict[str, Any], model: str) -> Answer:
    """Decide the answer to a validated request."""
    answer = Answer(model=model, prompt_tokens=prompt_tokens(request))
    contents = request["contents"]
    user_text = " ".join(
        _parts_text(c["parts"]) for c in contents if c.get("role", "user") == "user"
    )
    if _BLOCK_RE.search(user_text):
        answer.blocked = True
        return answer
    last = contents[-1]
    answered = any("functionResponse" in p for p in last["parts"])
    text = _parts_text(last["parts"]) if last.get("role", "user") == "user" else ""
    config = request.get("generationConfig") or {}
    thinking = config.get("thinkingConfig")
    thinks = isinstance(thinking, dict) and thinking.get("thinkingBudget", -1) != 0
    if thinks and isinstance(thinking, dict):
        thought = "Thinking about: " + text
        answer.thoughts_tokens = count_tokens(thought)
        if thinking.get("includeThoughts"):
            answer.thought = thought
    candidate = _candidate(request, text, answered, thinks)
    answer.candidates = [candidate] * int(config.get("candidateCount") or 1)
    return answer


def _candidate(request: dict[str, Any], text: str, answered: bool, thinks: bool) -> Candidate:
    functions = declared_functions(request)
    calling = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    # Mode ANY calls a function on every turn, also right after function responses.
    if functions and (mode == "ANY" or (mode != "NONE" and not answered)):
        allowed = calling.get("allowedFunctionNames")
        if allowed:
            functions = [f for f in functions if f["name"] in allowed]
        if mode == "ANY" or _WEATHER_RE.search(text):
            function = functions[0]
            args = _example(function.get("parameters"), text) if "parameters" in function else {}
            call = {"name": function["name"], "args": args or {}}
            return Candidate(
                call=call, signature=signature_for(call["name"], call["args"]) if thinks else None
            )
    config = request.get("generationConfig") or {}
    content = "Echo: " + text
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema")
        content = orjson.dumps(
            _example(schema, content) if schema else {"content": content}
        ).decode()
    stops = [s for s in config.get("stopSequences") or [] if s and s in content]
    if stops:
        content = content[: min(content.find(s) for s in stops)]
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int):
        content, cut = truncate_tokens(content, limit)
        if cut:
            return Candidate(text=content, finish="MAX_TOKENS")
    return Candidate(text=content)


def _parts(answer: Answer, candidate: Candidate) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if answer.thought is not None:
        parts.append({"text": answer.thought, "thought": True})
    if candidate.call is not None:
        part: dict[str, Any] = {"functionCall": candidate.call}
        if candidate.signature:
            part["thoughtSignature"] = candidate.signature
        parts.append(part)
    elif candidate.text:
        parts.append({"text": candidate.text})
    return parts


def _envelope(answer: Answer, candidates: list[dict[str, Any]], final: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if answer.blocked:
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS}
    else:
        body["candidates"] = candidates
    body["usageMetadata"] = answer.usage(final)
    body["modelVersion"] = answer.model
    body["responseId"] = answer.response_id
    return body


def render(answer: Answer) -> dict[str, Any]:
    """The whole ``GenerateContentResponse``."""
    candidates = []
    for i, candidate in enumerate(answer.candidates):
        content: dict[str, Any] = {"role": "model"}
        parts = _parts(answer, candidate)
        if parts:
            content["parts"] = parts
        candidates.append(
            {
                "content": content,
                "finishReason": candidate.finish,
                "index": i,
                "safetyRatings": _SAFETY_RATINGS,
            }
        )
    return _envelope(answer, candidates, True)


def render_events(answer: Answer, tokens_per_event: int = 3) -> list[dict[str, Any]]:
    """The stream's events: the thought first, then text a few tokens at a time (a call in
    one piece), the last event with ``finishReason`` and the full usage."""
    if answer.blocked:
        return [_envelope(answer, [], True)]
    per_candidate: list[list[list[dict[str, Any]]]] = []
    for candidate in answer.candidates:
        steps: list[list[dict[str, Any]]] = []
        if answer.thought is not None:
            steps.append([{"text": answer.thought, "thought": True}])
        if candidate.call is not None:
            steps.append(_parts(Answer(answer.model, 0), candidate))
        else:
            pieces = token_pieces(candidate.text or "")
            for start in range(0, len(pieces), tokens_per_event):
                steps.append([{"text": "".join(pieces[start : start + tokens_per_event])}])
        per_candidate.append(steps or [[]])
    events = []
    rounds = max(len(steps) for steps in per_candidate)
    for r in range(rounds):
        final = r == rounds - 1
        candidates = []
        for i, steps in enumerate(per_candidate):
            if r >= len(steps) and not final:
                continue
            entry: dict[str, Any] = {
                "content": {"role": "model", "parts": steps[r] if r < len(steps) else []},
                "index": i,
            }
            if final:
                entry["finishReason"] = answer.candidates[i].finish
                entry["safetyRatings"] = _SAFETY_RATINGS
            candidates.append(entry)
        events.append(_envelope(answer, candidates, final))
    return events


def sse_frame(event: dict[str, Any]) -> bytes:
    """One ``alt=sse`` event; Google ends each with CRLF CRLF."""
    return b"data: " + orjson.dumps(event) + b"\r\n\r\n"


def embedding_values(model: str, text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    seed = hashlib.sha256(f"{model}\x00{text}".encode()).digest()
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        raw += [(b - 127.5) / 127.5 for b in block]
        counter += 1
    values = raw[:dimensions]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]
