"""Bedrock's runtime API for Anthropic models on the wire.

Reference: AWS "InvokeModel" / "InvokeModelWithResponseStream" (``POST /model/{modelId}/invoke``
and ``/invoke-with-response-stream`` on ``bedrock-runtime.{region}.amazonaws.com``), and
"Anthropic Claude Messages API" in the Bedrock user guide: the body is Anthropic's Messages
body with ``anthropic_version: "bedrock-2023-05-31"``, the model named by the path (so no
``model``) and streaming chosen by the path (so no ``stream``). Model ids are Bedrock's
"Supported foundation models" list (One API's ``awsModelIDMap`` maps the same names).
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import quote

import orjson

from unigate_relay.providers.anthropic.wire import JSONObject

BEDROCK_VERSION: Final = "bedrock-2023-05-31"
SERVICE: Final = "bedrock"
DEFAULT_REGION: Final = "us-east-1"
EVENT_STREAM_TYPE: Final = "application/vnd.amazon.eventstream"

#: Claude's own model names → Bedrock's model ids.
MODEL_IDS: Final[dict[str, str]] = {
    "claude-instant-1.2": "anthropic.claude-instant-v1",
    "claude-2.0": "anthropic.claude-v2",
    "claude-2.1": "anthropic.claude-v2:1",
    "claude-3-haiku-20240307": "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-sonnet-20240229": "anthropic.claude-3-sonnet-20240229-v1:0",
    "claude-3-opus-20240229": "anthropic.claude-3-opus-20240229-v1:0",
    "claude-3-5-sonnet-20240620": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "claude-3-5-haiku-20241022": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-7-sonnet-20250219": "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "claude-sonnet-4-20250514": "anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-opus-4-20250514": "anthropic.claude-opus-4-20250514-v1:0",
}

#: One API's names of the Llama models on Bedrock (its aws/llama3 adaptor) → Bedrock's ids;
#: every other family is named by its Bedrock id (through the model mapping or ``model_ids``).
CONVERSE_MODEL_IDS: Final[dict[str, str]] = {
    "llama3-8b-8192": "meta.llama3-8b-instruct-v1:0",
    "llama3-70b-8192": "meta.llama3-70b-instruct-v1:0",
}

# "us.anthropic.claude-...-v1:0" (a cross-region inference profile) or an ARN's last part.
_ID_PARTS: Final = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.(.+?)(?:-v\d+(?::\d+)?)?$")


def model_id(model: str, config: JSONObject) -> str:
    """The Bedrock model id for the channel's upstream model.

    The channel's config ``{"model_ids": {name: id}}`` wins; a name that already is a Bedrock
    id (``anthropic.…``, an inference profile ``us.anthropic.…`` or an ARN, e.g. from the
    model mapping) goes as it is; otherwise the table of Claude names.
    """
    configured = config.get("model_ids")
    if isinstance(configured, dict) and isinstance(configured.get(model), str):
        return str(configured[model])
    if model.startswith("arn:") or "anthropic." in model:
        return model
    return MODEL_IDS.get(model) or CONVERSE_MODEL_IDS.get(model, model)


def is_claude(model_id: str) -> bool:
    """Whether the model is Anthropic's, served through InvokeModel with the Messages body;
    every other family Bedrock hosts goes through the Converse API."""
    return "anthropic." in model_id.rsplit("/", 1)[-1] or any(
        model_id.endswith(known) for known in MODEL_IDS.values()
    )


def claude_name(model_id: str) -> str:
    """Claude's own name for a Bedrock id (the output limits are known by it)."""
    for name, known in MODEL_IDS.items():
        if model_id.endswith(known):
            return name
    match = _ID_PARTS.match(model_id.rsplit("/", 1)[-1])
    return match.group(1) if match else model_id


def region_of(config: JSONObject) -> str:
    region = config.get("region")
    return region if isinstance(region, str) and region else DEFAULT_REGION


def channel_config(config_json: str) -> JSONObject:
    """The channel's config object (empty when unset or not an object)."""
    if not config_json:
        return {}
    try:
        value: Any = orjson.loads(config_json)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def invoke_url(base_url: str, region: str, model: str, *, stream: bool) -> str:
    """The already-encoded URL of the invocation; the model id is percent-encoded in the path
    (its ``:`` too, as the AWS SDKs send it, so the signed path is the sent path)."""
    action = "invoke-with-response-stream" if stream else "invoke"
    return _model_url(base_url, region, model, action)


def converse_url(base_url: str, region: str, model: str, *, stream: bool) -> str:
    """The already-encoded URL of a Converse (or ConverseStream) call."""
    return _model_url(base_url, region, model, "converse-stream" if stream else "converse")


def _model_url(base_url: str, region: str, model: str, action: str) -> str:
    base = (base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
    return f"{base}/model/{quote(model, safe='')}/{action}"


def bedrock_body(messages_request: JSONObject) -> JSONObject:
    """A Messages request as Bedrock takes it: the version in the body, no model, no stream."""
    body = {k: v for k, v in messages_request.items() if k not in ("model", "stream")}
    return {"anthropic_version": BEDROCK_VERSION, **body}
