"""iFlytek Spark's OpenAI-compatible HTTP API (its "Spark http调用文档": POST
``https://spark-api-open.xf-yun.com/v1/chat/completions``, ``Authorization: Bearer
<APIPassword>``; models ``lite``, ``generalv3``, ``pro-128k``, ``generalv3.5``, ``max-32k``,
``4.0Ultra``). Every answer, streamed or not, carries Spark's own ``code`` (0), ``message``
("Success") and ``sid`` beside OpenAI's fields; an error is OpenAI-shaped with type
``api_error`` and null ``param``/``code`` (the reference's example: "invalid user" for a
key it does not know). A stream's finishing frame carries ``usage`` whether asked or not.
Its text models take no images."""

from __future__ import annotations

from unigate_sim.compatible.core import CompatibleSimulator, Profile
from unigate_sim.compatible.errors import openai_shape
from unigate_sim.openai.json_types import JSONObject

#: Spark's session id format (``cha000b0003@dx...``), fixed for the simulator.
SID = "cha000b0003@dx1905cd86d6bb86d552"


def _answer(_sim: CompatibleSimulator, _request: JSONObject, answer: JSONObject) -> JSONObject:
    return {"code": 0, "message": "Success", "sid": SID, **answer}


def _stream(
    _sim: CompatibleSimulator, _request: JSONObject, chunks: list[JSONObject]
) -> list[JSONObject]:
    return [{"code": 0, "message": "Success", "sid": SID, **chunk} for chunk in chunks]


PROFILE = Profile(
    name="spark",
    prefixes=("/v1",),
    endpoints=frozenset({"/chat/completions"}),
    models={
        "/chat/completions": ("lite", "generalv3", "pro-128k", "generalv3.5", "max-32k", "4.0Ultra")
    },
    render_error=openai_shape({kind: "api_error" for kind in ("auth", "invalid_request")}),
    messages={
        "invalid_url": "Not Found",
        "auth": "invalid user",
        "model_not_found": "invalid model: {model}",
        "invalid_request": "{message}",
        "image_unsupported": "image input is not supported by {model}",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset(),
    stream_usage="last_chunk",
    answer_hook=_answer,
    stream_hook=_stream,
)
