"""ERNIE model names and the Qianfan endpoint each is served at.

Qianfan serves every model at its own path below
``/rpc/2.0/ai_custom/v1/wenxinworkshop/`` (https://cloud.baidu.com/doc/WENXINWORKSHOP/s/clntwmv7t).
The table is One API's (``relay/adaptor/baidu/adaptor.go``), so channels migrated from One API
keep their model names; a name not in it is used lower-cased, One API's fallback, which is
also how an operator reaches a custom deployment by its endpoint name.
"""

from __future__ import annotations

from typing import Final

API_PREFIX: Final = "/rpc/2.0/ai_custom/v1/wenxinworkshop"

CHAT_ENDPOINTS: Final[dict[str, str]] = {
    "ERNIE-4.0": "completions_pro",
    "ERNIE-Bot-4": "completions_pro",
    "ERNIE-4.0-8K": "completions_pro",
    "ERNIE-Bot": "completions",
    "ERNIE-3.5-8K": "completions",
    "ERNIE-3.5-8K-0205": "ernie-3.5-8k-0205",
    "ERNIE-3.5-8K-1222": "ernie-3.5-8k-1222",
    "ERNIE-3.5-4K-0205": "ernie-3.5-4k-0205",
    "ERNIE-Bot-8K": "ernie_bot_8k",
    "ERNIE-Bot-turbo": "eb-instant",
    "ERNIE-Lite-8K-0922": "eb-instant",
    "ERNIE-Lite-8K-0308": "ernie-lite-8k",
    "ERNIE-Speed": "ernie_speed",
    "ERNIE-Speed-8K": "ernie_speed",
    "ERNIE-Speed-128K": "ernie-speed-128k",
    "ERNIE-Tiny-8K": "ernie-tiny-8k",
    "BLOOMZ-7B": "bloomz_7b1",
}

EMBEDDING_ENDPOINTS: Final[dict[str, str]] = {
    "Embedding-V1": "embedding-v1",
    "bge-large-zh": "bge_large_zh",
    "bge-large-en": "bge_large_en",
    "tao-8k": "tao_8k",
}


def endpoint_path(model: str, *, embeddings: bool) -> str:
    """The path (below the host) that serves ``model`` for chat or embeddings."""
    table = EMBEDDING_ENDPOINTS if embeddings else CHAT_ENDPOINTS
    kind = "embeddings" if embeddings else "chat"
    return f"{API_PREFIX}/{kind}/{table.get(model, model.lower())}"
