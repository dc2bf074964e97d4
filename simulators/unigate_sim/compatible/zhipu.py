"""Zhipu GLM v4 (https://open.bigmodel.cn/dev/api/error-code/error-code-v4): paths under
``/api/paas/v4``; errors are ``{"error": {"code", "message"}}`` with Zhipu's numeric string
codes (1000 authentication failed, 1211 unknown model, 1210 bad parameters), in Chinese."""

from __future__ import annotations

from unigate_sim.compatible.core import Profile
from unigate_sim.compatible.errors import code_and_message

PROFILE = Profile(
    name="zhipu",
    prefixes=("/api/paas/v4",),
    endpoints=frozenset({"/chat/completions", "/embeddings", "/models"}),
    models={
        "/chat/completions": ("glm-4-plus", "glm-4-flash", "glm-4-air", "glm-4v-flash"),
        "/embeddings": ("embedding-3",),
    },
    render_error=code_and_message(
        {"invalid_url": "404", "auth": "1000", "model_not_found": "1211"}
    ),
    messages={
        "invalid_url": "Not Found",
        "auth": "\u8eab\u4efd\u9a8c\u8bc1\u5931\u8d25\u3002",  # "authentication failed."
        "model_not_found": "\u6a21\u578b\u4e0d\u5b58\u5728\uff0c\u8bf7\u68c0\u67e5\u6a21\u578b"
        "\u4ee3\u7801\u3002",  # "the model does not exist, check the model code."
        "invalid_request": "{message}",
        "image_unsupported": "{model} \u4e0d\u652f\u6301\u56fe\u7247\u8f93\u5165",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset({"glm-4v-flash"}),
)
