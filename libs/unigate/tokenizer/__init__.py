"""Offline token counting with OpenAI's own encodings, for providers that report no usage.

``count_text`` counts a string for a model; ``prompt_tokens`` counts a request body by
OpenAI's published rules (per-message overhead, tool definitions, image tiles). Rows counted
this way are marked estimated in the ledger.
"""

from unigate.tokenizer.bundled import warm_up
from unigate.tokenizer.counting import (
    count_text,
    encoding_for_model,
    prompt_tokens,
    request_prompt_tokens,
)

__all__ = ["count_text", "encoding_for_model", "prompt_tokens", "request_prompt_tokens", "warm_up"]
