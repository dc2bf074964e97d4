"""Prices in One API's terms.

Quota units: 500,000 = 1 USD. A model ratio of 1 means 0.002 USD per 1K prompt tokens, i.e. one
quota unit per prompt token; ``completion_ratio`` multiplies the price of output tokens,
``cached_ratio`` that of prompt-cache reads, and ``cache_write_5m_ratio`` /
``cache_write_1h_ratio`` that of prompt-cache writes (5-minute and 1-hour entries). The group
ratio multiplies everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

QUOTA_PER_USD = 500_000
# One API prices "ratio 1" at 0.002 USD / 1K tokens.
USD_PER_MTOK_AT_RATIO_1 = 2.0

DEFAULT_MODEL_RATIO = 1.0
DEFAULT_COMPLETION_RATIO = 1.0
DEFAULT_CACHED_RATIO = 0.5
# A prompt-cache write costs what plain input does unless the provider charges more for it.
DEFAULT_CACHE_WRITE_RATIO = 1.0


# Anthropic's Message Batches cost half the standard price, input and output alike (its
# pricing page: "Batch processing ... 50% discount"). The MessageBatchRatio option overrides
# it; the ratio multiplies the model ratio of every request of a batch (batch_price).
DEFAULT_BATCH_RATIO = 0.5


# Providers that price in RMB are converted at this rate.
RMB_PER_USD = 7.2


def _r(usd_per_mtok: float) -> float:
    return usd_per_mtok / USD_PER_MTOK_AT_RATIO_1


def _rmb(input_rmb_per_mtok: float, output_rmb_per_mtok: float) -> tuple[float, float]:
    """(model ratio, completion ratio) of a model priced in RMB per 1M tokens."""
    ratio = _r(input_rmb_per_mtok / RMB_PER_USD)
    completion = output_rmb_per_mtok / input_rmb_per_mtok if input_rmb_per_mtok else 1.0
    return ratio, completion


# (input USD per 1M tokens as a ratio, completion ratio). Public list prices; operators
# override them with the ModelRatio / CompletionRatio options.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (_r(2.5), 4.0),
    "gpt-4o-mini": (_r(0.15), 4.0),
    "gpt-4.1": (_r(2.0), 4.0),
    "gpt-4.1-mini": (_r(0.4), 4.0),
    "gpt-4.1-nano": (_r(0.1), 4.0),
    "gpt-4-turbo": (_r(10.0), 3.0),
    "gpt-3.5-turbo": (_r(0.5), 3.0),
    "o1": (_r(15.0), 4.0),
    "o3-mini": (_r(1.1), 4.0),
    "o4-mini": (_r(1.1), 4.0),
    "text-embedding-3-small": (_r(0.02), 1.0),
    "text-embedding-3-large": (_r(0.13), 1.0),
    "text-embedding-ada-002": (_r(0.1), 1.0),
    "claude-3-5-haiku-20241022": (_r(0.8), 5.0),
    "claude-3-5-sonnet-20241022": (_r(3.0), 5.0),
    "claude-3-7-sonnet-20250219": (_r(3.0), 5.0),
    "claude-sonnet-4-20250514": (_r(3.0), 5.0),
    "claude-opus-4-20250514": (_r(15.0), 5.0),
    # Anthropic's list prices (output 5x input, as One API's ratios); cache reads cost 0.1x
    # input (DEFAULT_CACHED_RATIOS), cache writes 1.25x (5-minute) or 2x (1-hour)
    # (DEFAULT_CACHE_WRITE_RATIOS).
    "claude-3-haiku-20240307": (_r(0.25), 5.0),
    "claude-3-opus-20240229": (_r(15.0), 5.0),
    "claude-3-5-sonnet-20240620": (_r(3.0), 5.0),
    "claude-opus-4-1-20250805": (_r(15.0), 5.0),
    "claude-sonnet-4-5-20250929": (_r(3.0), 5.0),
    "claude-haiku-4-5-20251001": (_r(1.0), 5.0),
    "claude-opus-4-5-20251101": (_r(5.0), 5.0),
    "gemini-1.5-flash": (_r(0.075), 4.0),
    "gemini-1.5-pro": (_r(1.25), 4.0),
    "gemini-2.0-flash": (_r(0.1), 4.0),
    "gemini-2.5-flash": (_r(0.3), 8.33),
    "gemini-2.5-pro": (_r(1.25), 8.0),
    # Gemini API list prices (USD per 1M, prompts up to 200K; thinking billed as output):
    # 2.0 Flash-Lite 0.075/0.30, 2.5 Flash-Lite 0.10/0.40, 2.0-flash-001 as 2.0 Flash.
    # Embeddings: gemini-embedding-001 0.15; text-embedding-004/005 (Vertex 0.025 per 1M
    # characters, about 0.1 per 1M tokens at 4 characters a token).
    "gemini-2.0-flash-001": (_r(0.1), 4.0),
    "gemini-2.0-flash-lite": (_r(0.075), 4.0),
    "gemini-2.5-flash-lite": (_r(0.1), 4.0),
    "gemini-embedding-001": (_r(0.15), 1.0),
    "text-embedding-004": (_r(0.1), 1.0),
    "text-embedding-005": (_r(0.1), 1.0),
    "deepseek-chat": (_r(0.27), 4.0),
    "deepseek-reasoner": (_r(0.55), 4.0),
    "mistral-large-latest": (_r(2.0), 3.0),
    "mistral-small-latest": (_r(0.2), 3.0),
    "gpt-3.5-turbo-instruct": (_r(1.5), 4 / 3),
    # OpenAI-like providers (list prices per 1M tokens; RMB converted at RMB_PER_USD = 7.2).
    # Moonshot: 2/10, 5/20, 10/30 RMB.
    "moonshot-v1-8k": _rmb(2.0, 10.0),
    "moonshot-v1-32k": _rmb(5.0, 20.0),
    "moonshot-v1-128k": _rmb(10.0, 30.0),
    # Zhipu: glm-4-plus 5 RMB, glm-4-air 0.5 RMB (input = output); glm-4-flash is free.
    "glm-4-plus": _rmb(5.0, 5.0),
    "glm-4-air": _rmb(0.5, 0.5),
    "glm-4-flash": (0.0, 1.0),
    # Qwen (DashScope, mainland): turbo 0.3/0.6, plus 0.8/2, max 2.4/9.6 RMB.
    "qwen-turbo": _rmb(0.3, 0.6),
    "qwen-plus": _rmb(0.8, 2.0),
    "qwen-max": _rmb(2.4, 9.6),
    # Groq (USD).
    "llama-3.3-70b-versatile": (_r(0.59), 0.79 / 0.59),
    "llama-3.1-8b-instant": (_r(0.05), 0.08 / 0.05),
    # xAI (USD).
    "grok-2": (_r(2.0), 5.0),
    "grok-3": (_r(3.0), 5.0),
    "grok-3-mini": (_r(0.3), 0.5 / 0.3),
    # StepFun 5/20 RMB; Lingyi yi-lightning 0.99 RMB (input = output).
    "step-1-8k": _rmb(5.0, 20.0),
    "yi-lightning": _rmb(0.99, 0.99),
    # Baidu ERNIE (Qianfan list prices, RMB per 1M): 4.0 30/90, 3.5 0.8/2; Speed and Lite
    # are free; Embedding-V1 0.5.
    "ERNIE-4.0-8K": _rmb(30.0, 90.0),
    "ERNIE-3.5-8K": _rmb(0.8, 2.0),
    "ERNIE-Speed-128K": (0.0, 1.0),
    "ERNIE-Speed-8K": (0.0, 1.0),
    "ERNIE-Lite-8K-0308": (0.0, 1.0),
    "Embedding-V1": _rmb(0.5, 0.5),
    # Tencent Hunyuan (RMB per 1M): lite free, standard 0.8/2, pro 30/100, turbo 15/50,
    # functioncall 4/8.
    "hunyuan-lite": (0.0, 1.0),
    "hunyuan-standard": _rmb(0.8, 2.0),
    "hunyuan-pro": _rmb(30.0, 100.0),
    "hunyuan-turbo": _rmb(15.0, 50.0),
    "hunyuan-functioncall": _rmb(4.0, 8.0),
    # iFlytek Spark: One API's ratio for every version (0.018 RMB / 1K tokens, in and out).
    **{
        model: (1.2858, 1.0)
        for model in (
            "SparkDesk",
            "SparkDesk-v1.1",
            "SparkDesk-v2.1",
            "SparkDesk-v3.1",
            "SparkDesk-v3.1-128K",
            "SparkDesk-v3.5",
            "SparkDesk-v3.5-32K",
            "SparkDesk-v4.0",
        )
    },
    # Cohere (USD list prices). Rerank is priced per search unit (unit_prices).
    "command-a-03-2025": (_r(2.5), 4.0),
    "command-r-plus-08-2024": (_r(2.5), 4.0),
    "command-r-plus": (_r(2.5), 4.0),
    "command-r-08-2024": (_r(0.15), 4.0),
    "command-r": (_r(0.15), 4.0),
    "command-r7b-12-2024": (_r(0.0375), 4.0),
    "embed-v4.0": (_r(0.12), 1.0),
    "embed-english-v3.0": (_r(0.1), 1.0),
    "embed-multilingual-v3.0": (_r(0.1), 1.0),
    # Moderations are free.
    "omni-moderation-latest": (0.0, 1.0),
    "text-moderation-latest": (0.0, 1.0),
    # Speech (tts-1, tts-1-hd, gpt-4o-mini-tts), whisper-1, DALL-E and Cohere rerank are
    # priced per character, second, image and search unit (unit_prices). The models below
    # report token usage and are billed as their provider bills it: gpt-4o-transcribe 2.50
    # USD per 1M text in, 6 per 1M audio in (DEFAULT_AUDIO_RATIOS), 10 out; the mini 1.25 /
    # 3 / 5; gpt-image-1 5 per 1M text in, 40 per 1M image out.
    "gpt-4o-transcribe": (_r(2.5), 4.0),
    "gpt-4o-mini-transcribe": (_r(1.25), 4.0),
    "gpt-image-1": (_r(5.0), 8.0),
    # The Realtime API's models (USD per 1M text in / out; audio in DEFAULT_AUDIO_RATIOS and
    # out in DEFAULT_AUDIO_COMPLETION_RATIOS, cached input in DEFAULT_CACHED_RATIOS):
    # gpt-realtime 4 / 16, audio 32 / 64, cached 0.40; gpt-realtime-mini 0.60 / 2.40, audio
    # 10 / 20, cached 0.06; gpt-4o-realtime-preview 5 / 20, audio 40 / 80, cached 2.50;
    # gpt-4o-mini-realtime-preview 0.60 / 2.40, audio 10 / 20, cached 0.30.
    "gpt-realtime": (_r(4.0), 4.0),
    "gpt-realtime-mini": (_r(0.6), 4.0),
    "gpt-4o-realtime-preview": (_r(5.0), 4.0),
    "gpt-4o-mini-realtime-preview": (_r(0.6), 4.0),
}

# Audio input tokens (Usage.audio_tokens, part of the prompt) as a multiple of the input
# price, where the provider prices them apart; the AudioRatio option overrides them.
DEFAULT_AUDIO_RATIO = 1.0
DEFAULT_AUDIO_RATIOS: dict[str, float] = {
    "gpt-4o-transcribe": 6.0 / 2.5,
    "gpt-4o-mini-transcribe": 3.0 / 1.25,
    "gpt-realtime": 32.0 / 4.0,
    "gpt-realtime-mini": 10.0 / 0.6,
    "gpt-4o-realtime-preview": 40.0 / 5.0,
    "gpt-4o-mini-realtime-preview": 10.0 / 0.6,
}

# Audio output tokens (Usage.audio_completion_tokens, part of the completion) as a multiple
# of the AUDIO input price (New API's AudioCompletionRatio, which the option of that name
# overrides): every realtime model bills audio out at twice audio in.
DEFAULT_AUDIO_COMPLETION_RATIO = 1.0
DEFAULT_AUDIO_COMPLETION_RATIOS: dict[str, float] = {
    "gpt-realtime": 2.0,
    "gpt-realtime-mini": 2.0,
    "gpt-4o-realtime-preview": 2.0,
    "gpt-4o-mini-realtime-preview": 2.0,
}


# Models whose cached input is priced other than DEFAULT_CACHED_RATIO (list prices, cached
# input / input): Anthropic bills prompt-cache reads at 0.1x; OpenAI's GPT-4.1 family and
# o4-mini at 0.25x (gpt-4o, o1 and o3-mini keep 0.5x); DeepSeek 0.07 of 0.27 (chat) and 0.14
# of 0.55 (reasoner) USD per 1M; Gemini's implicit caching at 0.25x. The CacheRatio option
# overrides any of them per model.
DEFAULT_CACHED_RATIOS: dict[str, float] = {
    **{model: 0.1 for model in DEFAULT_PRICES if model.startswith("claude-")},
    **{model: 0.25 for model in ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini")},
    # Realtime: cached text and cached audio cost the same (see DEFAULT_PRICES).
    "gpt-realtime": 0.1,
    "gpt-realtime-mini": 0.1,
    "deepseek-chat": 0.07 / 0.27,
    "deepseek-reasoner": 0.14 / 0.55,
    **{
        model: 0.25
        for model in DEFAULT_PRICES
        if model.startswith("gemini-") and "embedding" not in model
    },
}

# Providers that charge more for a prompt-cache write than for plain input, as (5-minute,
# 1-hour) ratios: Anthropic bills a write to the default 5-minute cache at 1.25x the input
# price and one to the 1-hour cache at 2x ("Prompt caching", pricing). The CreateCacheRatio
# option overrides the 5-minute ratio per model.
DEFAULT_CACHE_WRITE_RATIOS: dict[str, tuple[float, float]] = {
    model: (1.25, 2.0) for model in DEFAULT_PRICES if model.startswith("claude-")
}


@dataclass(frozen=True, slots=True)
class Price:
    model_ratio: float
    completion_ratio: float
    group_ratio: float = 1.0
    cached_ratio: float = DEFAULT_CACHED_RATIO
    cache_write_5m_ratio: float = DEFAULT_CACHE_WRITE_RATIO
    cache_write_1h_ratio: float = DEFAULT_CACHE_WRITE_RATIO
    audio_ratio: float = DEFAULT_AUDIO_RATIO
    audio_completion_ratio: float = DEFAULT_AUDIO_COMPLETION_RATIO


def price_for(
    model: str,
    group_ratio: float = 1.0,
    model_ratios: dict[str, float] | None = None,
    completion_ratios: dict[str, float] | None = None,
    cached_ratios: dict[str, float] | None = None,
    cache_write_ratios: dict[str, float] | None = None,
    audio_ratios: dict[str, float] | None = None,
    audio_completion_ratios: dict[str, float] | None = None,
) -> Price:
    """The price of ``model`` from operator overrides (the ModelRatio, CompletionRatio,
    CacheRatio, CreateCacheRatio and AudioRatio options, by model), else the defaults, else
    ratio 1."""
    default = DEFAULT_PRICES.get(model, (DEFAULT_MODEL_RATIO, DEFAULT_COMPLETION_RATIO))
    mr = (model_ratios or {}).get(model, default[0])
    cr = (completion_ratios or {}).get(model, default[1])
    cached = (cached_ratios or {}).get(
        model, DEFAULT_CACHED_RATIOS.get(model, DEFAULT_CACHED_RATIO)
    )
    write_5m, write_1h = DEFAULT_CACHE_WRITE_RATIOS.get(
        model, (DEFAULT_CACHE_WRITE_RATIO, DEFAULT_CACHE_WRITE_RATIO)
    )
    write_5m = (cache_write_ratios or {}).get(model, write_5m)
    return Price(
        model_ratio=mr,
        completion_ratio=cr,
        group_ratio=group_ratio,
        cached_ratio=cached,
        cache_write_5m_ratio=write_5m,
        cache_write_1h_ratio=write_1h,
        audio_ratio=(audio_ratios or {}).get(
            model, DEFAULT_AUDIO_RATIOS.get(model, DEFAULT_AUDIO_RATIO)
        ),
        audio_completion_ratio=(audio_completion_ratios or {}).get(
            model, DEFAULT_AUDIO_COMPLETION_RATIOS.get(model, DEFAULT_AUDIO_COMPLETION_RATIO)
        ),
    )


def batch_price(price: Price, batch_ratio: float) -> Price:
    """The price of a request made through a Message Batch: the model ratio times the batch
    ratio (cache reads and writes, output and group keep their multiples of it)."""
    return replace(price, model_ratio=price.model_ratio * batch_ratio)


def quota_for(
    price: Price,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    *,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    audio_tokens: int = 0,
    audio_completion_tokens: int = 0,
) -> int:
    """Cost of a call in quota units, rounded up; never 0 for a paid model that was used.

    Cache reads and writes are parts of ``prompt_tokens``, each billed at its own ratio
    instead of the input price; the rest of the prompt is plain input. Reads, then 1-hour
    writes, then 5-minute writes are bounded by what is left of the prompt, so a usage that
    claims more than its prompt never bills more than the prompt at those prices. Audio
    input tokens, the rest of the prompt, are billed at the audio ratio; audio output tokens,
    part of the completion, at the audio ratio times the audio completion ratio.
    """
    room = max(prompt_tokens, 0)
    cached = min(max(cached_tokens, 0), room)
    write_1h = min(max(cache_write_1h_tokens, 0), room - cached)
    write_5m = min(max(cache_write_5m_tokens, 0), room - cached - write_1h)
    audio = min(max(audio_tokens, 0), room - cached - write_1h - write_5m)
    audio_out = min(max(audio_completion_tokens, 0), max(completion_tokens, 0))
    weighted = (
        (prompt_tokens - cached - write_1h - write_5m - audio)
        + audio * price.audio_ratio
        + cached * price.cached_ratio
        + write_5m * price.cache_write_5m_ratio
        + write_1h * price.cache_write_1h_ratio
        + (completion_tokens - audio_out) * price.completion_ratio
        + audio_out * price.audio_ratio * price.audio_completion_ratio
    )
    quota = math.ceil(weighted * price.model_ratio * price.group_ratio - 1e-9)
    if quota <= 0 and price.model_ratio > 0 and (prompt_tokens or completion_tokens):
        return 1
    return max(quota, 0)
