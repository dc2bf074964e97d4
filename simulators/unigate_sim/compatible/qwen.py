"""Qwen through DashScope's OpenAI-compatible mode
(https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope): paths under
``/compatible-mode/v1``. A stream reports usage only when ``stream_options.include_usage`` is
set, in a final ``choices: []`` chunk, as OpenAI does. Errors are OpenAI-shaped with a
``request_id`` beside ``error`` (401 ``invalid_api_key`` "Incorrect API key provided. ";
https://help.aliyun.com/zh/model-studio/error-code). Only ``qwen-vl-*`` models take images.
``enable_thinking``/``enable_search`` are DashScope's own accepted fields."""

from __future__ import annotations

import dataclasses

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import REQUEST_ID, openai_shape

PROFILE = Profile(
    name="qwen",
    prefixes=("/compatible-mode/v1",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("qwen-turbo", "qwen-plus", "qwen-max", "qwen-vl-plus"),
        "/embeddings": ("text-embedding-v3",),
    },
    render_error=openai_shape(
        codes={
            "auth": "invalid_api_key",
            "model_not_found": "model_not_found",
            "invalid_request": "invalid_parameter_error",
            "image_unsupported": "invalid_parameter_error",
        },
        top={"request_id": REQUEST_ID},
    ),
    messages={
        "invalid_url": "Requested resource not found: {path}",
        "auth": "Incorrect API key provided. ",
        "model_not_found": "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request": "{message}",
        "image_unsupported": "<400> InternalError.Algo.InvalidParameter: The input messages "
        "of model {model} must not contain image content",
    },
    vision_models=frozenset({"qwen-vl-plus"}),
    own_fields=frozenset({"enable_thinking", "enable_search", "thinking_budget"}),
)


#: Alibaba Cloud Model Studio (Bailian, One API's type 49): the same DashScope
#: OpenAI-compatible API and rules, One API's separate channel type for it.
BAILIAN = dataclasses.replace(PROFILE, name="bailian")
