"""SiliconFlow (https://docs.siliconflow.cn/cn/api-reference/chat-completions): paths under
``/v1`` (chat, embeddings, rerank, images); models are ``org/name`` ids. Errors are
``{"code": <int>, "message", "data": null}`` — 20012 "Model does not exist. Please check it
carefully." (400), 20015 for bad parameters — and a wrong key is a plain-text 401 "Invalid
token". Stream usage when asked, OpenAI's way. Only ``*-VL-*`` models take images."""

from __future__ import annotations

import orjson

from unigate_sim.compatible.core import CompatibleSimulator, Profile, ProviderError
from unigate_sim.openai.json_types import JSONObject

_CODES = {"model_not_found": 20012, "invalid_url": 20404}
VISION = "Qwen/Qwen2-VL-72B-Instruct"


def _render(error: ProviderError) -> tuple[int, bytes]:
    if error.kind == "auth":
        return 401, b'"Invalid token"'
    body = {"code": _CODES.get(error.kind, 20015), "message": error.message, "data": None}
    return error.status, orjson.dumps(body)


def _balance(sim: CompatibleSimulator) -> JSONObject:
    """``GET /v1/user/info`` (docs.siliconflow.cn/cn/api-reference/userinfo/get-user-info):
    balances are strings; ``state.balance`` sets totalBalance (default 88.88)."""
    total = float(getattr(sim.state, "balance", 88.88))
    return {
        "code": 20000,
        "message": "OK",
        "status": True,
        "data": {
            "id": "userid",
            "name": "",
            "image": "",
            "email": "",
            "isAdmin": False,
            "balance": "0.00",
            "status": "normal",
            "introduction": "",
            "role": "",
            "chargeBalance": f"{total:.2f}",
            "totalBalance": f"{total:.2f}",
        },
    }


PROFILE = Profile(
    name="siliconflow",
    prefixes=("/v1",),
    endpoints=frozenset(
        {"/chat/completions", "/embeddings", "/rerank", "/images/generations", "/models"}
    ),
    models={
        "/chat/completions": ("deepseek-ai/DeepSeek-V3", "Qwen/Qwen2.5-72B-Instruct", VISION),
        "/embeddings": ("BAAI/bge-m3",),
        "/rerank": ("BAAI/bge-reranker-v2-m3",),
        "/images/generations": ("black-forest-labs/FLUX.1-schnell",),
    },
    render_error=_render,
    messages={
        "invalid_url": "Not Found",
        "auth": "Invalid token",
        "model_not_found": "Model does not exist. Please check it carefully.",
        "invalid_request": "{message}",
        "image_unsupported": "The model {model} does not support image input.",
    },
    statuses={"model_not_found": 400},
    vision_models=frozenset({VISION}),
    account={"/v1/user/info": _balance},
)
