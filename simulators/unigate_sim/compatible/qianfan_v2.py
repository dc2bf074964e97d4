"""Baidu Qianfan's OpenAI-compatible v2 API (POST
``https://qianfan.baidubce.com/v2/chat/completions``, ``Authorization: Bearer <API key>``).
Errors are ``{"error": {"code", "message", "type"}, "id"}``: a wrong key is 401
``invalid_iam_token`` "IAM Certification failed" (the answer Qianfan v2 gives a legacy
access token or an unknown key), a bad parameter 400 ``invalid_argument``. A stream reports
usage in a final ``choices: []`` chunk when ``stream_options.include_usage`` asks, as
OpenAI's does. Its ERNIE text models take no images."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import openai_shape

PROFILE = Profile(
    name="qianfan_v2",
    prefixes=("/v2",),
    endpoints=frozenset({"/chat/completions"}),
    models={
        "/chat/completions": (
            "ernie-4.0-turbo-8k",
            "ernie-3.5-8k",
            "ernie-speed-128k",
            "deepseek-v3",
        )
    },
    render_error=openai_shape(
        codes={
            "auth": "invalid_iam_token",
            "model_not_found": "invalid_model",
            "invalid_request": "invalid_argument",
            "image_unsupported": "invalid_argument",
            "invalid_url": "not_found",
        },
        top={"id": "as-simulated0000"},
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "IAM Certification failed",
        "model_not_found": "model {model} is not supported",
        "invalid_request": "{message}",
        "image_unsupported": "model {model} does not support image input",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset(),
)
