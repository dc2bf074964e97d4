"""A strict simulator of Azure OpenAI's data-plane inference API, built on the OpenAI one.

:func:`create_azure_app` wraps :func:`unigate_sim.openai.create_app`. It serves Azure's two
layouts and nothing else:

* classic: ``/openai/deployments/{deployment}/{endpoint}?api-version={version}`` for chat
  completions, completions, embeddings, image generations and the three audio endpoints, and
  the Responses API at ``/openai/responses?api-version={version}`` (deployment in the body's
  ``model``; preview versions from :data:`RESPONSES_SINCE` only);
* v1: ``/openai/v1/{endpoint}`` for all of those plus ``/openai/v1/responses``, the deployment
  in the body's ``model`` (JSON, or the multipart form's ``model`` field), and no
  ``api-version`` (or one of :data:`V1_API_VERSIONS`).

It checks a request the way Azure does, in this order:

* any other path, or no ``api-version`` on the classic layout: 404 ``{"error": {"code":
  "404", "message": "Resource not found"}}``; a version not in :data:`API_VERSIONS` (classic),
  a version that predates the Responses API on ``/openai/responses``, or a dated version on
  v1: 400 ``BadRequest`` "API version not supported";
* the key must come in the ``api-key`` header: no key is a 401, a wrong key is Azure's 401
  "Access denied due to invalid subscription key or wrong API endpoint", and a key sent as
  ``Authorization: Bearer`` is read as an Entra ID token and refused (401);
* an unknown deployment (in the path, or named by the body's ``model`` outside the deployment
  paths) is a 404 ``DeploymentNotFound``; no ``model`` there is a 400. The deployment decides
  the model: the body's ``model`` is replaced by the deployment's model (JSON and multipart)
  before the OpenAI simulator serves the request, which then validates the body as OpenAI
  does (the Responses API with the OpenAI simulator's own implementation and usage);
* ``stream_options`` is refused (400, "Unrecognized request argument supplied") on versions
  older than :data:`STREAM_OPTIONS_SINCE`, as Azure did before it supported the option;
* a chat or legacy completion prompt that contains the word "kill" (the OpenAI simulator's
  moderation rule) is refused with Azure's 400 ``content_filter`` error.

Answers carry Azure's content filtering annotations: ``prompt_filter_results`` and per-choice
``content_filter_results`` on chat and legacy completions, both on each generated image. A
stream begins with Azure's annotation-only chunk (``choices`` empty, ``id`` and ``model``
empty), and every choice of a content chunk is annotated.

``app.state`` is the wrapped OpenAI simulator's (``calls``, ``fail_next``, ``faults``,
``api_keys``) plus ``deployments`` (name → model, mutable; any model the OpenAI
simulator knows) and ``azure_calls``: one
``{"method", "path", "deployment", "api_version", "body"}`` per request that passed the
checks above, ``api_version`` being "" when none was sent and ``body`` the parsed JSON as
sent (None otherwise). Streams are rendered
whole and then sent, so faults that pace or cut a stream are not supported here.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from email import policy
from email.parser import BytesParser
from typing import Any, Final
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette

from unigate_sim.asgi_io import (
    Receive,
    Scope,
    Send,
    call_whole,
    json_or_none,
    read_all,
    send_json,
    send_whole,
)
from unigate_sim.openai.app import create_app
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import DEFAULT_MODELS
from unigate_sim.openai.sse import DONE_FRAME, data_frame
from unigate_sim.openai.tokens import message_text

#: The data-plane inference versions served (GA, then previews; older previews are retired).
API_VERSIONS: Final = frozenset(
    {
        "2022-12-01",
        "2023-05-15",
        "2024-02-01",
        "2024-06-01",
        "2024-10-21",
        "2024-08-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-02-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
#: The first version (by date) that accepts ``stream_options``.
STREAM_OPTIONS_SINCE: Final = "2024-09-01"
#: The first version (by date) serving ``/openai/responses`` (previews only).
RESPONSES_SINCE: Final = "2025-03-01"
#: What the v1 layout accepts as ``api-version`` besides none (its preview opt-in values).
V1_API_VERSIONS: Final = frozenset({"preview", "latest"})

#: Deployment name → the model it serves. Azure names GPT-3.5 without its dot.
DEFAULT_DEPLOYMENTS: Final[Mapping[str, str]] = {
    "gpt-4o": "gpt-4o",
    "gpt-4o-mini": "gpt-4o-mini",
    "gpt-35-turbo": "gpt-3.5-turbo",
    "gpt-35-turbo-instruct": "gpt-3.5-turbo-instruct",
    "text-embedding-3-small": "text-embedding-3-small",
    "dall-e-3": "dall-e-3",
    "tts": "tts-1",
    "whisper": "whisper-1",
}

# Azure endpoint (after the deployment) → the OpenAI simulator's route.
_ENDPOINTS: Final = {
    "/chat/completions": "/v1/chat/completions",
    "/completions": "/v1/completions",
    "/embeddings": "/v1/embeddings",
    "/images/generations": "/v1/images/generations",
    "/audio/speech": "/v1/audio/speech",
    "/audio/transcriptions": "/v1/audio/transcriptions",
    "/audio/translations": "/v1/audio/translations",
    "/responses": "/v1/responses",
}
# Under /openai/deployments/{deployment} (the Responses API is not there).
_DEPLOYMENT_ENDPOINTS: Final = frozenset(_ENDPOINTS) - {"/responses"}
_FILTERED_ENDPOINTS: Final = frozenset({"/chat/completions", "/completions"})
_PATH = re.compile(r"^/openai/deployments/([^/]+)(/.+)$")
_V1_PREFIX: Final = "/openai/v1"
_CLASSIC_RESPONSES: Final = "/openai/responses"
_FLAG = re.compile(r"\bkill\b", re.IGNORECASE)

_NOT_FOUND: Final = {"error": {"code": "404", "message": "Resource not found"}}
_BAD_VERSION: Final = {"error": {"code": "BadRequest", "message": "API version not supported"}}
_MISSING_KEY: Final = {
    "error": {
        "code": "401",
        "message": "Access denied due to missing subscription key. Make sure to include "
        "subscription key when making requests to an API.",
    }
}
_WRONG_KEY: Final = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make "
        "sure to provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
    }
}
_BAD_TOKEN: Final = {
    "error": {
        "code": "401",
        "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.",
    }
}
_NO_MODEL: Final = {
    "error": {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }
}
_NO_DEPLOYMENT: Final = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the "
        "deployment within the last 5 minutes, please wait a moment and try again.",
    }
}
CONTENT_FILTER_MESSAGE: Final = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)


def _categories(flagged: bool = False) -> JSONObject:
    safe = {"filtered": False, "severity": "safe"}
    return {
        "hate": safe,
        "self_harm": safe,
        "sexual": safe,
        "violence": {"filtered": True, "severity": "medium"} if flagged else safe,
    }


def prompt_filter_results() -> list[JSONObject]:
    """The prompt annotation of an answer that passed the filter."""
    results = {**_categories(), "jailbreak": {"filtered": False, "detected": False}}
    return [{"prompt_index": 0, "content_filter_results": results}]


def completion_filter_results() -> JSONObject:
    """The annotation of one generated choice."""
    return {
        **_categories(),
        "protected_material_code": {"filtered": False, "detected": False},
        "protected_material_text": {"filtered": False, "detected": False},
    }


def content_filter_error() -> JSONObject:
    """Azure's 400 for a prompt its content filter blocked."""
    return {
        "error": {
            "message": CONTENT_FILTER_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    **_categories(flagged=True),
                    "jailbreak": {"filtered": False, "detected": False},
                },
            },
        }
    }


def _prompt_text(endpoint: str, request: JSONObject) -> str:
    if endpoint == "/chat/completions":
        messages = request.get("messages")
        if isinstance(messages, list):
            return " ".join(message_text(m) for m in messages if isinstance(m, dict))
        return ""
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        return " ".join(p for p in prompt if isinstance(p, str))
    return prompt if isinstance(prompt, str) else ""


def _version_date(version: str) -> str:
    return version[:10]


def _route(path: str) -> tuple[str | None, str] | None:
    """(deployment named in the path or None, endpoint) of a path Azure serves, else None."""
    if path.startswith(_V1_PREFIX + "/"):
        endpoint = path[len(_V1_PREFIX) :]
        return (None, endpoint) if endpoint in _ENDPOINTS else None
    if path == _CLASSIC_RESPONSES:
        return None, "/responses"
    match = _PATH.match(path)
    if match is None or match.group(2) not in _DEPLOYMENT_ENDPOINTS:
        return None
    return match.group(1), match.group(2)


def _version_serves(version: str, *, v1: bool, endpoint: str) -> bool:
    if v1:
        # The v1 API takes no dated version: none, or its preview opt-in.
        return not version or version in V1_API_VERSIONS
    if version not in API_VERSIONS:
        return False
    if endpoint == "/responses":
        return "preview" in version and _version_date(version) >= RESPONSES_SINCE
    return True


def _body_model(request: Any, body: bytes, content_type: str) -> str:
    """The ``model`` a JSON body or multipart form names ("" when none)."""
    if isinstance(request, dict):
        model = request.get("model")
        return model if isinstance(model, str) else ""
    if not content_type.startswith("multipart/form-data"):
        return ""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return ""
    for item in message.iter_parts():
        if item.get_param("name", header="content-disposition") == "model":
            payload = item.get_payload(decode=True)
            return payload.decode().strip() if isinstance(payload, bytes) else ""
    return ""


class AzureSimulator:
    """ASGI app: Azure's paths, checks and annotations around an OpenAI simulator."""

    def __init__(self, inner: Starlette, deployments: Mapping[str, str]) -> None:
        self.inner = inner
        self.state = inner.state
        self.state.deployments = dict(deployments)
        azure_calls: list[JSONObject] = []
        self.state.azure_calls = azure_calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/images/"):
            # Lifespan, and the generated images' URLs (Azure's blob storage stand-in).
            await self.inner(scope, receive, send)
            return
        route = _route(scope["path"]) if scope["method"] == "POST" else None
        if route is None:
            await send_json(send, 404, _NOT_FOUND)
            return
        deployment, endpoint = route
        v1 = scope["path"].startswith(_V1_PREFIX + "/")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        version = (query.get("api-version") or [""])[0]
        if not v1 and not version:
            await send_json(send, 404, _NOT_FOUND)
            return
        if not _version_serves(version, v1=v1, endpoint=endpoint):
            await send_json(send, 400, _BAD_VERSION)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._authenticate(headers)
        if refusal is not None:
            await send_json(send, 401, refusal)
            return
        body = b""
        content_type = headers.get("content-type", "")
        request: Any = None
        if deployment is None:
            # Outside the deployment paths the body names the deployment.
            body = await read_all(receive)
            request = json_or_none(body) if "json" in content_type else None
            named = _body_model(request, body, content_type)
            if not named:
                await send_json(send, 400, _NO_MODEL)
                return
            deployment = named
        model = self.state.deployments.get(deployment)
        if model is None:
            await send_json(send, 404, _NO_DEPLOYMENT)
            return
        if route[0] is not None:
            body = await read_all(receive)
            request = json_or_none(body) if "json" in content_type else None
        self.state.azure_calls.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "deployment": deployment,
                "api_version": version,
                "body": request,
            }
        )
        if isinstance(request, dict):
            if (
                "stream_options" in request
                and not v1
                and _version_date(version) < STREAM_OPTIONS_SINCE
            ):
                error = {
                    "error": {
                        "message": "Unrecognized request argument supplied: stream_options",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
                await send_json(send, 400, error)
                return
            if endpoint in _FILTERED_ENDPOINTS and _FLAG.search(_prompt_text(endpoint, request)):
                await send_json(send, 400, content_filter_error())
                return
            body = orjson.dumps({**request, "model": model})
        elif content_type.startswith("multipart/form-data"):
            body, content_type = _form_with_model(body, content_type, model)
        await self._serve_inner(scope, send, endpoint, headers, content_type, body, request)

    def _authenticate(self, headers: Mapping[str, str]) -> JSONObject | None:
        key = headers.get("api-key", "").strip()
        if key:
            return None if key in self.state.api_keys else _WRONG_KEY
        if headers.get("authorization", "").lower().startswith("bearer "):
            return _BAD_TOKEN
        return _MISSING_KEY

    async def _serve_inner(
        self,
        scope: Scope,
        send: Send,
        endpoint: str,
        headers: Mapping[str, str],
        content_type: str,
        body: bytes,
        request: Any,
    ) -> None:
        inner_path = _ENDPOINTS[endpoint]
        # The key was checked above; the OpenAI simulator wants it as a bearer token.
        inner_key = next(iter(self.state.api_keys))
        inner_headers = [
            (k.encode(), v.encode())
            for k, v in headers.items()
            if k not in ("api-key", "authorization", "content-length", "content-type")
        ]
        inner_headers += [
            (b"authorization", f"Bearer {inner_key}".encode()),
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        inner_scope = {
            **scope,
            "path": inner_path,
            "raw_path": inner_path.encode(),
            "query_string": b"",
            "headers": inner_headers,
        }
        status, out_headers, answer = await call_whole(self.inner, inner_scope, body)
        out_headers.append((b"apim-request-id", str(uuid.uuid4()).encode()))
        if status == 200 and isinstance(request, dict):
            answer = _annotate(endpoint, request, answer)
        await send_whole(send, status, out_headers, answer)


def _annotate(endpoint: str, request: JSONObject, answer: bytes) -> bytes:
    if endpoint == "/images/generations":
        data = orjson.loads(answer)
        for item in data.get("data") or []:
            item["content_filter_results"] = _categories()
            item["prompt_filter_results"] = {
                **_categories(),
                "jailbreak": {"filtered": False, "detected": False},
            }
        return orjson.dumps(data)
    if endpoint not in _FILTERED_ENDPOINTS:
        return answer
    if request.get("stream") is True:
        frames = [f for f in answer.split(b"\n\n") if f.startswith(b"data: {")]
        chunks: list[JSONObject] = [orjson.loads(f[len(b"data: ") :]) for f in frames]
        return b"".join(data_frame(c) for c in _annotated_stream(request, chunks)) + DONE_FRAME
    data = orjson.loads(answer)
    data["prompt_filter_results"] = prompt_filter_results()
    for choice in data.get("choices") or []:
        choice["content_filter_results"] = completion_filter_results()
    return orjson.dumps(data)


def _annotated_stream(request: JSONObject, chunks: list[JSONObject]) -> list[JSONObject]:
    """Azure's framing: the prompt annotation first, in a chunk of its own with no choices."""
    first: JSONObject = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    }
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        first["usage"] = None
    out = [first]
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta")
            # The role delta carries an empty annotation, as Azure sends it.
            opening = isinstance(delta, dict) and "role" in delta
            choice["content_filter_results"] = {} if opening else completion_filter_results()
        out.append(chunk)
    return out


def _form_with_model(body: bytes, content_type: str, model: str) -> tuple[bytes, str]:
    """The multipart form in ``body`` with its ``model`` field (if any) replaced by ``model``."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return body, content_type
    boundary = "azure-sim-" + secrets.token_hex(8)
    out = bytearray()

    def part(disposition: str, data: bytes, part_type: str | None) -> None:
        out.extend(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if part_type:
            out.extend(f"Content-Type: {part_type}\r\n".encode())
        out.extend(b"\r\n" + data + b"\r\n")

    for item in message.iter_parts():
        name = item.get_param("name", header="content-disposition")
        if not isinstance(name, str) or name == "model":
            continue
        payload = item.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = item.get_filename()
        if filename is None:
            part(f'form-data; name="{name}"', data, None)
        else:
            disposition = f'form-data; name="{name}"; filename="{filename}"'
            part(disposition, data, item.get_content_type())
    part('form-data; name="model"', model.encode(), None)
    out.extend(f"--{boundary}--\r\n".encode())
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def create_azure_app(
    api_keys: set[str], deployments: Mapping[str, str] | None = None
) -> AzureSimulator:
    """An Azure OpenAI resource accepting ``api_keys``, with ``deployments`` (name → model;
    default :data:`DEFAULT_DEPLOYMENTS`)."""
    served = dict(deployments if deployments is not None else DEFAULT_DEPLOYMENTS)
    # Every OpenAI model too, so a deployment added while the simulator runs can serve any.
    inner = create_app(api_keys, list(dict.fromkeys([*served.values(), *DEFAULT_MODELS])))
    return AzureSimulator(inner, served)
