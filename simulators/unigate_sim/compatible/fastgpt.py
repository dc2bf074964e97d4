"""FastGPT (https://doc.fastgpt.io, "对话接口"; labring/FastGPT): an app's chat at
``/api/v1/chat/completions`` with an app key (``Authorization: Bearer fastgpt-...``).

The app's workflow decides: ``model``, ``temperature``, tools and every other OpenAI field
are ignored — only ``messages``, ``stream`` and FastGPT's own ``chatId``, ``detail``,
``variables`` and ``responseChatItemId`` are read, so any model name is accepted. FastGPT
"does not return the tokens actually used": an answer's ``usage`` is always
``{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}``, its ``model`` is "", and
a stream's chunks (``{"id": "", "object": "", "created": 0, ...}``) carry no usage, asked or
not; ``detail: true`` adds the per-module ``responseData`` (where the real token count is) to
an answer (the ``event:``-tagged frames of a detail stream are not simulated).

Refusals (packages/service/common/response): HTTP 500 with ``{"code", "statusText",
"message", "data": null}`` — 514 ``unAuthApiKey`` "Api Key 不合法" for a wrong key.
"""

from __future__ import annotations

from typing import Any

from unigate_sim.compatible.core import CompatibleSimulator, Profile
from unigate_sim.compatible.errors import fastgpt_shape
from unigate_sim.openai.json_types import JSONObject

#: What FastGPT's placeholder usage says, whatever was used.
PLACEHOLDER_USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}
_OWN = frozenset({"chatId", "detail", "variables", "responseChatItemId"})
#: The model that answers whatever the request names (the app's own, for the OpenAI core).
APP_MODEL = "fastgpt-app"


def _answer(sim: CompatibleSimulator, request: JSONObject, data: JSONObject) -> JSONObject:
    used: Any = data.get("usage") or {}
    if request.get("detail") is True:
        data["responseData"] = [
            {
                "moduleName": "AI Chat",
                "moduleType": "chatNode",
                "model": APP_MODEL,
                "tokens": used.get("total_tokens", 0),
                "query": "",
            }
        ]
    data["usage"] = dict(PLACEHOLDER_USAGE)
    data["model"] = ""
    return data


def _chunks(
    sim: CompatibleSimulator, request: JSONObject, chunks: list[JSONObject]
) -> list[JSONObject]:
    for chunk in chunks:
        chunk.update({"id": "", "object": "", "created": 0, "model": ""})
    return chunks


PROFILE = Profile(
    name="fastgpt",
    prefixes=("/api/v1",),
    endpoints=frozenset({"/chat/completions"}),
    models={"/chat/completions": (APP_MODEL,)},
    render_error=fastgpt_shape(),
    messages={
        "invalid_url": "404: This page could not be found.",
        "auth": "Api Key 不合法",
        "model_not_found": "",
        "invalid_request": "{message}",
        "image_unsupported": "",
    },
    stream_usage="never",
    answer_hook=_answer,
    stream_hook=_chunks,
    own_fields=_OWN,
    reads_only=frozenset({"messages", "stream"}) | _OWN,
)
