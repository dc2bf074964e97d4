"""The value each option unigate reads has when nobody has set it, in the option's stored
form (text; JSON for the tables), so ``GET /api/option/`` lists every option as One API does
and the console's price settings open on the prices in force.

The price tables are the built-in ones (``unigate.pricing``, ``unigate.unit_prices``): a
ModelRatio option overrides them model by model, so saving the listed table back as it is
changes no price."""

from __future__ import annotations

import orjson

from unigate import content_log, pricing, unit_prices


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def option_defaults() -> dict[str, str]:
    prices = pricing.DEFAULT_PRICES
    return {
        # Site (public: /api/status, /api/notice, /api/about, /api/home_page_content).
        "SystemName": "unigate",
        "Logo": "",
        "Footer": "",
        "ChatLink": "",
        "Notice": "",
        "About": "",
        "HomePageContent": "",
        # Accounts.
        "RegisterEnabled": "false",
        "QuotaForNewUser": "0",
        # Relaying: empty = the gateway's RETRY_TIMES / auth's MAX_COMPLETION_RESERVE.
        "RetryTimes": "",
        "MaxOutputTokens": "",
        # Prices.
        "ModelRatio": _json({m: p[0] for m, p in prices.items()}),
        "CompletionRatio": _json({m: p[1] for m, p in prices.items()}),
        "CacheRatio": _json(pricing.DEFAULT_CACHED_RATIOS),
        "CreateCacheRatio": _json({m: w[0] for m, w in pricing.DEFAULT_CACHE_WRITE_RATIOS.items()}),
        "AudioRatio": _json(pricing.DEFAULT_AUDIO_RATIOS),
        "UnitPrice": unit_prices.defaults_json(),
        "GroupRatio": _json({"default": 1}),
        # Message Batch requests' price as a share of the standard one (Anthropic's 50 %).
        "MessageBatchRatio": str(pricing.DEFAULT_BATCH_RATIO),
        "GroupRateLimits": "{}",
        # Content logging (off): key ids and groups it is on for, the cap per body, and how
        # long billing keeps the bodies.
        "ContentLogTokens": "",
        "ContentLogGroups": "",
        "ContentLogMaxBytes": str(content_log.DEFAULT_MAX_BYTES),
        "ContentLogRetentionDays": str(content_log.DEFAULT_RETENTION_DAYS),
    }
