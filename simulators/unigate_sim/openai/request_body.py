"""Reading a request's JSON body, and the checks every endpoint makes of it first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request

from unigate_sim.openai.errors import bad_request
from unigate_sim.openai.forms import form_summary, is_multipart, read_form
from unigate_sim.openai.json_types import JSONObject
from unigate_sim.openai.models import ModelSpec, resolve_model
from unigate_sim.openai.value_checks import as_str, reject_unrecognized

_PARSE_ERROR_MESSAGE: Final = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please "
    "contact us through our help center at help.openai.com.)"
)


@dataclass(frozen=True, slots=True)
class Body:
    """A request body as received: its parsed JSON (None when absent or invalid)."""

    value: Any
    parsed: bool
    json_content_type: bool
    #: The parsed form of a ``multipart/form-data`` body (whose ``value`` summarises it).
    form: FormData | None = None


async def read_body(request: Request) -> Body:
    """The request's body, parsed when it is JSON or multipart form data."""
    if is_multipart(request):
        form = await read_form(request)
        if form is None:
            return Body(None, False, False)
        return Body(form_summary(form), True, False, form)
    content_type = request.headers.get("content-type", "")
    is_json = content_type.split(";", 1)[0].strip().lower() == "application/json"
    raw = await request.body()
    if not raw:
        return Body(None, False, is_json)
    try:
        return Body(orjson.loads(raw), True, is_json)
    except orjson.JSONDecodeError:
        return Body(None, False, is_json)


def json_payload(body: Body) -> JSONObject:
    """The body as a JSON object, or OpenAI's parse error (also for non-JSON content)."""
    if not body.parsed or not body.json_content_type or not isinstance(body.value, dict):
        raise bad_request(_PARSE_ERROR_MESSAGE)
    return body.value


def requested_model(
    payload: JSONObject, parameters: frozenset[str], models: Sequence[str]
) -> tuple[str, ModelSpec]:
    """The model a request names and its spec, checked in OpenAI's order.

    First the ``model`` parameter must be given, then every top-level argument must be one
    of ``parameters``, and only then must the model be among those served.
    """
    value = payload.get("model")
    if value is None or value == "":
        raise bad_request("you must provide a model parameter")
    model = as_str(value, "model")
    reject_unrecognized(payload, parameters)
    return model, resolve_model(model, models)
