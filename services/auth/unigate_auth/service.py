"""The AuthService gRPC implementation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import grpc
import orjson
from redis.exceptions import RedisError

from unigate import content_log, errors, reservation
from unigate.alerts import Alert, Notifier
from unigate.channel_types import channel_type
from unigate.crypto import decrypt_secret
from unigate.grpc_mux import AUTHORIZE, AUTHORIZE_WIRE, MuxServer
from unigate.health import ChannelHealth, HealthSnapshot
from unigate.keys import hash_api_key, key_fingerprint, mask_key
from unigate.logs import request_id_var
from unigate.output_bound import GENERATING
from unigate.pricing import DEFAULT_BATCH_RATIO, Price, batch_price, price_for
from unigate.quota import BATCH_HOLDER, QuotaStore, RateWindow, ReserveOutcome, ReserveResult
from unigate.reservation_context import reservation_context
from unigate.routing import Ability, draw_order, effective_weights
from unigate.subnets import ip_allowed
from unigate.unit_prices import UnitPrice, parse_unit_prices, unit_price_for, unit_quota
from unigate.v1 import auth_pb2, auth_pb2_grpc
from unigate_auth import metrics
from unigate_auth.admin.channels import ChannelRecord, split_keys
from unigate_auth.backlog import Backlog
from unigate_auth.balances import BalanceKeeper
from unigate_auth.cache import TTLCache
from unigate_auth.channel_tester import MonitorOptions, Notify
from unigate_auth.message_batches import MessageBatches
from unigate_auth.ratelimit import Limits, refusal, report, windows_for
from unigate_auth.settings import AuthSettings
from unigate_auth.store import AuthStore, TokenRecord

log = logging.getLogger(__name__)

TOKEN_ENABLED, TOKEN_DISABLED, TOKEN_EXPIRED, TOKEN_EXHAUSTED = 1, 2, 3, 4
USER_ENABLED = 1
_NEGATIVE_TTL = 1.0
# A tripped breaker should steer traffic away within a few requests' time (at 1,000 req/s a
# quarter second let ~100 more through to a failing channel); reading health for every
# request would double the Redis round trips of Authorize. 20 reads a second cost nothing.
_HEALTH_TTL = 0.05
# The channel proxy: admins' keys (One API's RoleAdminUser), OpenAI-protocol channels.
_ROLE_ADMIN = 10
_PROXY_FAMILY = "openai"
CHANNEL_ENABLED = 1
# More would only hold a failing request open longer: every channel of a model is tried.
_MAX_RETRY_TIMES = 10


@dataclass(slots=True)
class Options:
    model_ratio: dict[str, float] = field(default_factory=dict)
    completion_ratio: dict[str, float] = field(default_factory=dict)
    # New API's names: prompt-cache reads and (5-minute) writes, as multiples of the input price.
    cache_ratio: dict[str, float] = field(default_factory=dict)
    create_cache_ratio: dict[str, float] = field(default_factory=dict)
    # Audio input tokens as multiples of the input price (New API's AudioRatio), and prices
    # per unit other than tokens (seconds, characters, images, search units).
    audio_ratio: dict[str, float] = field(default_factory=dict)
    # Audio output tokens as multiples of the audio input price (New API's AudioCompletionRatio).
    audio_completion_ratio: dict[str, float] = field(default_factory=dict)
    unit_price: dict[str, UnitPrice] = field(default_factory=dict)
    group_ratio: dict[str, float] = field(default_factory=lambda: {"default": 1.0})
    # {"vip": {"rpm": 600, "tpm": 100000}}: per-user defaults by group.
    group_rate_limits: dict[str, Limits] = field(default_factory=dict)
    # The RetryTimes option; None leaves each gateway's RETRY_TIMES in force.
    retry_times: int | None = None
    # The MaxOutputTokens option: per-request output ceiling; None leaves
    # MAX_COMPLETION_RESERVE in force.
    max_output_tokens: int | None = None
    # Content logging (unigate.content_log): the raw ContentLogTokens / ContentLogGroups
    # options, and the cap per body.
    content_log_tokens: str = ""
    content_log_groups: str = ""
    content_log_max_bytes: int = content_log.DEFAULT_MAX_BYTES
    # The MessageBatchRatio option: Message Batch requests' price as a share of the standard.
    message_batch_ratio: float = DEFAULT_BATCH_RATIO


def _int_option(raw: str | None, name: str, low: int, high: int) -> int | None:
    """A whole-number option as One API stores it (a decimal string), within [low, high];
    unset or unusable: None."""
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        log.warning("option %s is not a whole number: %r; ignored", name, raw)
        return None
    return min(max(value, low), high)


def _retry_times_option(raw: str | None) -> int | None:
    return _int_option(raw, "RetryTimes", 0, _MAX_RETRY_TIMES)


def _rate_limits_option(raw: str | None) -> dict[str, Limits]:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
        return {
            str(group): Limits(rpm=int(v.get("rpm", 0)), tpm=int(v.get("tpm", 0)))
            for group, v in value.items()
        }
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        log.error("option GroupRateLimits is not a JSON object of {rpm, tpm}; ignoring it")
        return {}


def _json_option(raw: str | None, name: str) -> dict[str, float]:
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
        return {str(k): float(v) for k, v in value.items()}
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        log.error("option %s is not a JSON object of numbers; ignoring it", name)
        return {}


def _unit_price_option(raw: str | None) -> dict[str, UnitPrice]:
    try:
        return parse_unit_prices(raw)
    except ValueError as exc:
        log.error("option UnitPrice ignored: %s", exc)
        return {}


def _ratio_option(raw: str | None, name: str, default: float) -> float:
    """A positive number option (a decimal string); unset or unusable: ``default``."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        log.error("option %s is not a positive number: %r; using %s", name, raw, default)
        return default
    return value


def _pricing_of(price: Price, unit: tuple[str, Fraction] | None = None) -> auth_pb2.Pricing:
    """The prices a request is billed at, as they travel with it to the ledger."""
    return auth_pb2.Pricing(
        model_ratio=price.model_ratio,
        completion_ratio=price.completion_ratio,
        group_ratio=price.group_ratio,
        cached_ratio=price.cached_ratio,
        cache_write_5m_ratio=price.cache_write_5m_ratio,
        cache_write_1h_ratio=price.cache_write_1h_ratio,
        audio_ratio=price.audio_ratio,
        audio_completion_ratio=price.audio_completion_ratio,
        unit=unit[0] if unit else "",
        unit_price=str(unit[1]) if unit else "",
    )


def _deny(err: errors.ClientFacingError) -> auth_pb2.AuthorizeResponse:
    return auth_pb2.AuthorizeResponse(allowed=False, error=err.to_proto())


def spares_allowed(
    req: auth_pb2.AuthorizeRequest,
    token: TokenRecord,
    windows: tuple[RateWindow, ...],
    unit: object,
    want: reservation.Plan,
    result: ReserveResult,
    abilities: list[Ability],
    snapshot: HealthSnapshot,
    now_ms: int,
) -> bool:
    """Whether a request's key may be served from spare reservations at its gateway:
    a text-generating request priced per token, reserved in full from a known balance; no
    rate limit on the key or its user (their windows count every request in Redis, shared by
    all gateways, so those keys are authorized per request); every candidate channel healthy
    (the gateway draws among them by weight, and a cooling or half-open channel needs auth's
    ordering and probe lease). The gateway checks the key's expiry and subnets itself."""
    return (
        result.amount == want.amount
        and result.left > 0
        and key_takes_spares(req, token, windows, unit, abilities, snapshot, now_ms)
    )


def key_takes_spares(
    req: auth_pb2.AuthorizeRequest,
    token: TokenRecord,
    windows: tuple[RateWindow, ...],
    unit: object,
    abilities: list[Ability],
    snapshot: HealthSnapshot,
    now_ms: int,
) -> bool:
    """``spares_allowed`` without the request's own reservation: what a refill for no
    request (``spares_only``) is held to; the balance is checked where they are booked."""
    return (
        bool(req.gateway_id)
        and not windows
        and unit is None
        and req.endpoint in GENERATING
        and req.endpoint != reservation.REALTIME
        and token.status == TOKEN_ENABLED
        and all(snapshot.state(a.channel_id, now_ms) == "healthy" for a in abilities)
    )


_EXHAUSTED = (ReserveOutcome.TOKEN_EXHAUSTED, ReserveOutcome.USER_EXHAUSTED)
# How far back a refused request looks for unused spares to reclaim: spares are valid for at
# most a second, but one its gateway did not release waits for the sweeper (5 s grace, every
# 10 s).
SPARE_LOOKBACK_MS = 60_000


class AuthService(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        settings: AuthSettings,
        store: AuthStore,
        quota: QuotaStore,
        health: ChannelHealth,
        notify: Notify,
        backlog: Backlog,
        alerts: Notifier | None = None,
    ) -> None:
        self._settings = settings
        self._alerts = alerts
        self._store = store
        self._quota = quota
        self._health = health
        self._notify = notify
        # One entry (""): the latest snapshot, read by one request for all that need it.
        self._health_snapshot: TTLCache[str, HealthSnapshot] = TTLCache(_HEALTH_TTL)
        stale = settings.stale_if_error_seconds
        self._tokens: TTLCache[bytes, TokenRecord | None] = TTLCache(
            settings.cache_ttl_seconds, stale_seconds=stale
        )
        self._abilities: TTLCache[tuple[str, str], list[Ability]] = TTLCache(
            settings.cache_ttl_seconds, stale_seconds=stale
        )
        self._options: TTLCache[str, Options] = TTLCache(
            settings.cache_ttl_seconds, stale_seconds=stale
        )
        self._touched: set[int] = set()
        self._balances = BalanceKeeper(settings, store, quota, backlog)
        # Set by the entry point (it needs the relays and JetStream): the batches' calls.
        self.batches: MessageBatches | None = None
        self._many: MuxServer[auth_pb2.AuthorizeRequest, auth_pb2.AuthorizeResponse] = MuxServer(
            self.decide,
            lambda exc: _deny(
                errors.ServiceUnavailable("The key could not be checked right now; please retry.")
            ),
            auth_pb2.AuthorizeResponse,
            AUTHORIZE_WIRE,
            method=AUTHORIZE,
        )

    # ---- cache invalidation -------------------------------------------------------------
    async def on_config_change(self, change: dict[str, object]) -> None:
        kind = change.get("kind")
        raw_ids = change.get("ids")
        ids = [int(i) for i in raw_ids if isinstance(i, int)] if isinstance(raw_ids, list) else []
        if kind in ("token", "user"):
            self._tokens.clear()
            # A top-up or edit changes the balance of record: reload it on the next request.
            # (A deleted key's balance is not found, nor needed: it is never read again.)
            tokens = await self._store.token_owners(ids) if kind == "token" and ids else []
            await self._quota.forget_balances(tokens=tokens, user_ids=ids if kind == "user" else [])
        elif kind == "channel":
            self._abilities.clear()
        elif kind == "option":
            self._options.clear()
        else:
            self._tokens.clear()
            self._abilities.clear()
            self._options.clear()

    # ---- lookups ------------------------------------------------------------------------
    async def _token(self, api_key: str) -> TokenRecord | None:
        key_hash = hash_api_key(api_key)
        return await self._tokens.get_or_load(
            key_hash,
            lambda: self._store.token_by_hash(key_hash),
            lambda record: None if record else _NEGATIVE_TTL,
        )

    async def _options_now(self) -> Options:
        async def load() -> Options:
            raw = await self._store.options()
            return Options(
                model_ratio=_json_option(raw.get("ModelRatio"), "ModelRatio"),
                completion_ratio=_json_option(raw.get("CompletionRatio"), "CompletionRatio"),
                cache_ratio=_json_option(raw.get("CacheRatio"), "CacheRatio"),
                create_cache_ratio=_json_option(raw.get("CreateCacheRatio"), "CreateCacheRatio"),
                audio_ratio=_json_option(raw.get("AudioRatio"), "AudioRatio"),
                audio_completion_ratio=_json_option(
                    raw.get("AudioCompletionRatio"), "AudioCompletionRatio"
                ),
                unit_price=_unit_price_option(raw.get("UnitPrice")),
                group_ratio=_json_option(raw.get("GroupRatio"), "GroupRatio") or {"default": 1.0},
                group_rate_limits=_rate_limits_option(raw.get("GroupRateLimits")),
                retry_times=_retry_times_option(raw.get("RetryTimes")),
                max_output_tokens=_int_option(
                    raw.get("MaxOutputTokens"), "MaxOutputTokens", 1, 10_000_000
                ),
                content_log_tokens=raw.get("ContentLogTokens") or "",
                content_log_groups=raw.get("ContentLogGroups") or "",
                content_log_max_bytes=_int_option(
                    raw.get("ContentLogMaxBytes"),
                    "ContentLogMaxBytes",
                    0,
                    content_log.MAX_MAX_BYTES,
                )
                or content_log.DEFAULT_MAX_BYTES,
                message_batch_ratio=_ratio_option(
                    raw.get("MessageBatchRatio"), "MessageBatchRatio", DEFAULT_BATCH_RATIO
                ),
            )

        return await self._options.get_or_load("", load)

    async def abilities_for(self, group: str, model: str) -> list[Ability]:
        return await self._abilities.get_or_load(
            (group, model), lambda: self._store.channels.abilities(group, model)
        )

    async def routes_for(self, token: TokenRecord, model: str) -> list[Ability]:
        """The channels that may serve ``model`` for ``token`` (refused if the key may not
        use it, or no channel of its group serves it)."""
        if token.models and model not in token.models:
            raise errors.PermissionDenied(
                f"This API key may not use the model `{model}`.", code="model_not_allowed"
            )
        abilities = await self.abilities_for(token.group, model)
        if not abilities:
            raise errors.NotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return abilities

    async def check_key(self, api_key: str, client_ip: str) -> TokenRecord:
        """The token behind ``api_key`` if it may be used at all from ``client_ip``."""
        if not api_key:
            raise errors.AuthenticationFailed(
                "You didn't provide an API key. Provide it in the Authorization header"
                " (Authorization: Bearer YOUR_KEY).",
                code="missing_api_key",
            )
        token = await self._token(api_key)
        if token is None:
            raise errors.AuthenticationFailed(f"Incorrect API key provided: {mask_key(api_key)}.")
        if token.status == TOKEN_DISABLED:
            raise errors.AuthenticationFailed(
                "This API key has been disabled.", code="key_disabled"
            )
        expired = token.expired_time != -1 and token.expired_time < time.time()
        if token.status == TOKEN_EXPIRED or expired:
            raise errors.AuthenticationFailed("This API key has expired.", code="key_expired")
        if token.status == TOKEN_EXHAUSTED:
            raise errors.InsufficientQuota("This API key has no quota left.")
        if token.status != TOKEN_ENABLED:
            raise errors.AuthenticationFailed("This API key is not usable.", code="key_disabled")
        if token.user_status != USER_ENABLED:
            raise errors.PermissionDenied(
                "The owner of this API key is disabled.", code="user_disabled"
            )
        if token.subnets and not ip_allowed(client_ip, token.subnets):
            raise errors.PermissionDenied(
                f"This API key may not be used from {client_ip or 'an unknown address'}.",
                code="ip_not_allowed",
            )
        self._touched.add(token.id)
        return token

    # ---- RPCs ---------------------------------------------------------------------------
    async def Authorize(
        self, request: auth_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.AuthorizeResponse:
        return await self.decide(request)

    async def AuthorizeMany(
        self,
        request_iterator: AsyncIterator[auth_pb2.AuthorizeRequests],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[auth_pb2.AuthorizeResponses]:
        async for decisions in self._many.serve(request_iterator):
            yield decisions

    async def decide(self, request: auth_pb2.AuthorizeRequest) -> auth_pb2.AuthorizeResponse:
        request_id_var.set(request.request_id)
        try:
            decision = await self._authorize(request)
        except errors.ClientFacingError as err:
            decision = _deny(err)
        metrics.decided(decision, refill=request.spares_only)
        return decision

    def drain(self) -> None:
        """Shutting down: gateways are asked to send their next Authorize calls elsewhere."""
        self._many.drain()

    async def _authorize(self, req: auth_pb2.AuthorizeRequest) -> auth_pb2.AuthorizeResponse:
        token = await self.check_key(req.api_key, req.client_ip)
        model = req.model
        abilities = await self.routes_for(token, model)
        opts = await self._options_now()
        price = self._price(opts, token, model)
        unit = unit_price_for(model, req.endpoint, req.price_variant, opts.unit_price)
        if unit is not None and req.estimated_units > 0:
            # Priced per unit: the gateway counted the units (seconds of the upload,
            # characters, images, search units), so reserve what they cost.
            amount = unit_quota(req.estimated_units, unit[1], price.group_ratio)
            want = reservation.Plan(amount, amount)
        else:
            want = reservation.plan(
                price,
                req,
                ceiling=opts.max_output_tokens or self._settings.max_completion_reserve,
                default_completion=self._settings.default_completion_reserve,
                upstream_models=[a.upstream_model for a in abilities],
            )
        now_ms = int(time.time() * 1000)
        user_limits = opts.group_rate_limits.get(token.group, Limits())
        windows = windows_for(
            token.id,
            Limits(token.rpm_limit, token.tpm_limit),
            token.user_id,
            Limits(
                token.user_rpm_limit or user_limits.rpm, token.user_tpm_limit or user_limits.tpm
            ),
            req.estimated_prompt_tokens + req.max_tokens,
        )
        pricing = _pricing_of(price, unit)
        if req.spares_only:
            return await self._spares_only(
                token, req, want, windows, unit, pricing, abilities, opts, now_ms
            )
        result = await self._reserve(
            token,
            req,
            want,
            now_ms,
            windows,
            reservation_context(req, token.name, token.group, pricing),
        )
        if result.outcome is ReserveOutcome.RATE_LIMITED:
            err, limits = refusal(windows, result.violated, result.violated_count, now_ms)
            return auth_pb2.AuthorizeResponse(
                allowed=False, error=err.to_proto(), rate_limits=limits
            )
        if result.outcome is ReserveOutcome.TOKEN_EXHAUSTED:
            raise errors.InsufficientQuota(
                "This API key does not have enough quota left for this request."
            )
        if result.outcome is ReserveOutcome.USER_EXHAUSTED:
            raise errors.InsufficientQuota(
                "You exceeded your current quota, please top up your account."
            )
        snapshot = await self._health_now()
        candidates = await self._candidates(abilities, snapshot, now_ms)
        spares = None
        if req.spares_wanted > 0 and spares_allowed(
            req, token, windows, unit, want, result, abilities, snapshot, now_ms
        ):
            spares = await self._issue_spares(token, req, want, pricing, opts)
        decision = self._allowed(token, pricing, candidates, opts)
        decision.reservation_id = req.request_id
        decision.reserved_quota = result.amount
        decision.max_output_tokens = want.bound(price, result.amount)
        decision.release_early = reservation.release_early(want, result.amount, result.left)
        if (reported := report(windows, result.counts, now_ms)) is not None:
            decision.rate_limits.CopyFrom(reported)
        if spares is not None:
            decision.spares.CopyFrom(spares)
            decision.refills_spares = True
        return decision

    async def _spares_only(
        self,
        token: TokenRecord,
        req: auth_pb2.AuthorizeRequest,
        want: reservation.Plan,
        windows: tuple[RateWindow, ...],
        unit: object,
        pricing: auth_pb2.Pricing,
        abilities: list[Ability],
        opts: Options,
        now_ms: int,
    ) -> auth_pb2.AuthorizeResponse:
        """A gateway's refill of a hot key's pool (``spares_only``): the decision its spares
        are served with, and the spares if the key still takes them; no reservation of its
        own and nothing counted in a rate window (a key with one takes no spares)."""
        snapshot = await self._health_now()
        spares, candidates = None, []
        if req.spares_wanted > 0 and key_takes_spares(
            req, token, windows, unit, abilities, snapshot, now_ms
        ):
            spares = await self._issue_spares(token, req, want, pricing, opts)
            # Every channel is healthy here: no half-open probe is claimed for no request.
            candidates = await self._candidates(abilities, snapshot, now_ms)
        decision = self._allowed(token, pricing, candidates, opts)
        decision.refills_spares = True
        if spares is not None:
            decision.spares.CopyFrom(spares)
        return decision

    def _allowed(
        self,
        token: TokenRecord,
        pricing: auth_pb2.Pricing,
        candidates: list[auth_pb2.ChannelCandidate],
        opts: Options,
    ) -> auth_pb2.AuthorizeResponse:
        """An allowing decision's facts of the key, its price and channels (a request's
        decision adds its reservation, bound and rate limits)."""
        return auth_pb2.AuthorizeResponse(
            allowed=True,
            install=self._quota.install,
            token_id=token.id,
            token_name=token.name,
            user_id=token.user_id,
            group=token.group,
            pricing=pricing,
            candidates=candidates,
            retry_times=opts.retry_times,
            log_content=content_log.wants_content(
                token.id, token.group, opts.content_log_tokens, opts.content_log_groups
            ),
            content_log_max_bytes=opts.content_log_max_bytes,
        )

    async def _candidates(
        self, abilities: list[Ability], snapshot: HealthSnapshot, now_ms: int
    ) -> list[auth_pb2.ChannelCandidate]:
        """The channels to try, in order: drawn by priority and health-weighted weight,
        healthy ones first."""
        weights = effective_weights(abilities, snapshot.averages)
        ordered = draw_order(abilities, lambda a: a.priority, lambda a: weights[a.channel_id])
        candidates = []
        for a in await self._healthy_first(ordered, snapshot, now_ms):
            ct = channel_type(a.channel_type)
            if ct is None:
                continue
            candidates.append(
                auth_pb2.ChannelCandidate(
                    channel_id=a.channel_id,
                    channel_type=a.channel_type,
                    family=ct.family,
                    upstream_model=a.upstream_model,
                    config_version=a.config_version,
                    priority=a.priority,
                    weight=weights[a.channel_id],
                )
            )
        return candidates

    @staticmethod
    def _price(opts: Options, token: TokenRecord, model: str) -> Price:
        return price_for(
            model,
            opts.group_ratio.get(token.group, 1.0),
            opts.model_ratio,
            opts.completion_ratio,
            opts.cache_ratio,
            opts.create_cache_ratio,
            opts.audio_ratio,
            opts.audio_completion_ratio,
        )

    # ---- Message Batches (unigate_auth.message_batches) ---------------------------------
    async def batch_pricing(self, token: TokenRecord, model: str) -> auth_pb2.Pricing:
        """What a request of a Message Batch is billed at: the batch price."""
        opts = await self._options_now()
        return _pricing_of(batch_price(self._price(opts, token, model), opts.message_batch_ratio))

    async def output_ceiling(self) -> int:
        opts = await self._options_now()
        return opts.max_output_tokens or self._settings.max_completion_reserve

    async def reserve_batch(
        self, token: TokenRecord, reservation_id: str, amount: int, context: bytes
    ) -> int:
        """Reserve a whole batch, all or nothing (refused as any request would be)."""
        req = auth_pb2.AuthorizeRequest(request_id=reservation_id, gateway_id=BATCH_HOLDER)
        plan = reservation.Plan(amount, amount)
        result = await self._reserve(token, req, plan, int(time.time() * 1000), (), context)
        if result.outcome is ReserveOutcome.TOKEN_EXHAUSTED:
            raise errors.InsufficientQuota(
                "This API key does not have enough quota left for this batch."
            )
        if result.outcome is not ReserveOutcome.RESERVED:
            raise errors.InsufficientQuota(
                "You exceeded your current quota, please top up your account."
            )
        return result.amount

    async def MessageBatchCall(
        self, request: auth_pb2.MessageBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.MessageBatchReply:
        request_id_var.set(request.request_id)
        if self.batches is None:
            err = errors.ServiceUnavailable("Message Batches are not served here.")
            return auth_pb2.MessageBatchReply(allowed=False, error=err.to_proto())
        return await self.batches.call(request)

    async def _issue_spares(
        self,
        token: TokenRecord,
        req: auth_pb2.AuthorizeRequest,
        want: reservation.Plan,
        pricing: auth_pb2.Pricing,
        opts: Options,
    ) -> auth_pb2.SpareReservations | None:
        """Book spare reservations of this request's size for its gateway, only while the
        balance covers them comfortably (``RELEASE_EARLY_SHARE`` times over), so a tight
        balance is never held by spares."""
        count = min(req.spares_wanted, self._settings.max_spares)
        ids = [f"{req.request_id}.s{i}" for i in range(count)]
        unbound = auth_pb2.AuthorizeRequest(model=req.model, endpoint=req.endpoint)
        try:
            booked = await self._quota.issue_spares(
                spare_ids=ids,
                token_id=token.id,
                user_id=token.user_id,
                amount=want.amount,
                unlimited=token.unlimited_quota,
                gateway_id=req.gateway_id,
                context=reservation_context(unbound, token.name, token.group, pricing),
                valid_ms=self._settings.spare_valid_ms,
                share=reservation.RELEASE_EARLY_SHARE,
            )
        except (RedisError, OSError) as exc:
            log.warning("no spare reservations: %r", exc)
            return None
        if not booked:
            return None
        metrics.spares_issued(len(booked))
        return auth_pb2.SpareReservations(
            ids=booked,
            amount=want.amount,
            valid_ms=self._settings.spare_valid_ms,
            subnets=[str(n) for n in token.subnets],
            models=sorted(token.models),
            expired_time=token.expired_time,
            ceiling=opts.max_output_tokens or self._settings.max_completion_reserve,
            default_completion=self._settings.default_completion_reserve,
        )

    async def _health_now(self) -> HealthSnapshot:
        async def load() -> HealthSnapshot:
            try:
                return await self._health.snapshot()
            except Exception as exc:  # routing must survive a health-store hiccup
                log.warning("channel health unavailable: %s", exc)
                return HealthSnapshot({}, {})

        try:
            return await self._health_snapshot.get_or_load("", load)
        except TimeoutError:
            log.warning("channel health unavailable: no answer in time")
            return HealthSnapshot({}, {})

    async def _healthy_first(
        self, ordered: list[Ability], snapshot: HealthSnapshot, now_ms: int
    ) -> list[Ability]:
        """Cooling channels go to the back (a last resort, never dropped); a half-open one
        goes first for the single request that wins its probe, so the probe really happens."""
        if not snapshot.fails and not snapshot.cooling_until:
            return ordered
        probes: list[Ability] = []
        front: list[Ability] = []
        back: list[Ability] = []
        for a in ordered:
            state = snapshot.state(a.channel_id, now_ms)
            if state == "healthy":
                front.append(a)
            elif (
                state == "half-open" and not probes and await self._health.claim_probe(a.channel_id)
            ):
                probes.append(a)
            else:
                back.append(a)
        return probes + front + back

    async def _reserve(
        self,
        token: TokenRecord,
        req: auth_pb2.AuthorizeRequest,
        want: reservation.Plan,
        now_ms: int,
        windows: tuple[RateWindow, ...],
        context: bytes,
    ) -> ReserveResult:
        reservation_id = req.request_id
        if not reservation_id:
            raise errors.InvalidRequest("missing request id")
        reclaimed = False
        for _ in range(3):
            try:
                result = await self._quota.reserve(
                    reservation_id=reservation_id,
                    token_id=token.id,
                    user_id=token.user_id,
                    amount=want.amount,
                    unlimited=token.unlimited_quota,
                    now_ms=now_ms,
                    windows=windows,
                    gateway_id=req.gateway_id,
                    context=context,
                    least=want.least,
                )
            except (RedisError, OSError) as exc:
                return self._balances.outage_reserve(token.id, want.amount, exc)
            self._balances.redis_back()
            if not reclaimed and result.outcome in _EXHAUSTED:
                # Unused spares (this user's hot keys, on any gateway) may hold what this
                # request needs: release them and try once more, rather than refuse a request
                # the balance covers.
                reclaimed = True
                try:
                    if await self._quota.reclaim_spares(
                        user_id=token.user_id, since_ms=now_ms - SPARE_LOOKBACK_MS
                    ):
                        continue
                except (RedisError, OSError) as exc:
                    log.warning("could not reclaim spare reservations: %r", exc)
            if result.outcome is not ReserveOutcome.NEEDS_LOAD:
                if result.outcome is ReserveOutcome.RESERVED:
                    self._balances.refresh_soon(token)
                return result
            await self._balances.load(token)
        raise errors.ServiceUnavailable("quota store is not consistent; retry")

    async def ListModels(
        self, request: auth_pb2.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.ListModelsResponse:
        try:
            token = await self.check_key(request.api_key, request.client_ip)
        except errors.ClientFacingError as err:
            return auth_pb2.ListModelsResponse(allowed=False, error=err.to_proto())
        models = await self._store.channels.models_for_group(token.group)
        if token.models:
            models = [m for m in models if m in token.models]
        return auth_pb2.ListModelsResponse(allowed=True, models=models)

    async def GetChannel(
        self, request: auth_pb2.GetChannelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.Channel:
        ch = await self._store.channels.config(request.channel_id)
        if ch is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"channel {request.channel_id} not found"
            )
            raise AssertionError("unreachable")
        keys = self._keys_of(ch)
        disabled = ch.disabled_keys()
        # Keys taken out of rotation are left out, unless that leaves none (the channel is
        # then disabled itself, and its retest needs a key to try).
        keys = [k for k in keys if key_fingerprint(k) not in disabled] or keys
        return auth_pb2.Channel(
            id=ch.id,
            type=ch.type,
            name=ch.name,
            base_url=ch.base_url,
            keys=keys,
            config_json=ch.config_json,
            headers_json=ch.headers_json,
            timeout_ms=ch.timeout_ms,
            config_version=ch.config_version,
            system_prompt=ch.system_prompt,
        )

    async def GetKeyInfo(
        self, request: auth_pb2.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.KeyInfo:
        try:
            token = await self.check_key(request.api_key, request.client_ip)
        except errors.ClientFacingError as err:
            return auth_pb2.KeyInfo(allowed=False, error=err.to_proto())
        row = await self._store.key_info(token.id)
        if row is None:
            gone = errors.AuthenticationFailed("This API key no longer exists.")
            return auth_pb2.KeyInfo(allowed=False, error=gone.to_proto())
        return auth_pb2.KeyInfo(allowed=True, **dict(row))

    async def AuthorizeChannelProxy(
        self,
        request: auth_pb2.ChannelProxyAuthRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> auth_pb2.ChannelProxyAuth:
        """One API's ``/v1/oneapi/proxy/:channel/*``, for admins' keys only (One API lets any
        key name a channel there): a raw request to one channel, outside routing and prices.
        Only OpenAI-protocol channels: their key is a bearer token the relay can set."""
        try:
            token = await self.check_key(request.api_key, request.client_ip)
            if await self._store.user_role(token.user_id) < _ROLE_ADMIN:
                raise errors.PermissionDenied(
                    "Only an administrator's key may use the channel proxy.",
                    code="proxy_not_allowed",
                )
            row = await self._store.channels.row(request.channel_id)
            if row is None:
                raise errors.NotFound(
                    f"There is no channel {request.channel_id}.", code="channel_not_found"
                )
            if row["status"] != CHANNEL_ENABLED:
                raise errors.PermissionDenied("The channel is disabled.", code="channel_disabled")
            ct = channel_type(row["type"])
            if ct is None or ct.family != _PROXY_FAMILY:
                raise errors.InvalidRequest(
                    "The channel proxy serves OpenAI-protocol channels only.",
                    code="proxy_unsupported_channel",
                )
        except errors.ClientFacingError as err:
            return auth_pb2.ChannelProxyAuth(allowed=False, error=err.to_proto())
        return auth_pb2.ChannelProxyAuth(
            allowed=True,
            token_id=token.id,
            token_name=token.name,
            user_id=token.user_id,
            group=token.group,
            channel_type=row["type"],
            family=ct.family,
            config_version=row["config_version"],
        )

    async def Release(
        self, request: auth_pb2.ReleaseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.ReleaseResponse:
        try:
            released = await self._quota.lower(
                reservation_id=request.reservation_id,
                token_id=request.token_id,
                user_id=request.user_id,
                cost=request.quota,
            )
        except (RedisError, OSError) as exc:
            log.warning("could not lower reservation %s: %r", request.reservation_id, exc)
            released = 0  # billing's settlement releases it all the same
        return auth_pb2.ReleaseResponse(released=released)

    # ---- stored responses (the Responses API) -------------------------------------------
    async def SaveStoredResponse(
        self,
        request: auth_pb2.SaveStoredResponseRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> auth_pb2.SaveStoredResponseReply:
        await self._store.responses.save(
            id=request.id,
            user_id=request.user_id,
            token_id=request.token_id,
            channel_id=request.channel_id,
            model=request.model,
            previous_response_id=request.previous_response_id,
            input_items=request.input_items,
            response=request.response,
        )
        return auth_pb2.SaveStoredResponseReply()

    async def GetStoredResponse(
        self, request: auth_pb2.StoredResponseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.StoredResponseReply:
        try:
            token = await self.check_key(request.api_key, request.client_ip)
        except errors.ClientFacingError as err:
            return auth_pb2.StoredResponseReply(allowed=False, error=err.to_proto())
        found = await self._store.responses.get(request.id, token.user_id)
        if found is None:
            return auth_pb2.StoredResponseReply(allowed=True, found=False)
        reply = auth_pb2.StoredResponseReply(
            allowed=True,
            found=True,
            response=found.response,
            input_items=found.input_items,
            channel_id=found.channel_id,
        )
        if request.with_history:
            reply.history = await self._store.responses.history(request.id, token.user_id)
        return reply

    async def DeleteStoredResponse(
        self, request: auth_pb2.StoredResponseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.StoredResponseReply:
        try:
            token = await self.check_key(request.api_key, request.client_ip)
        except errors.ClientFacingError as err:
            return auth_pb2.StoredResponseReply(allowed=False, error=err.to_proto())
        deleted = await self._store.responses.delete(request.id, token.user_id)
        return auth_pb2.StoredResponseReply(allowed=True, found=deleted)

    def _keys_of(self, ch: ChannelRecord) -> list[str]:
        return split_keys(decrypt_secret(ch.key_enc, self._settings.secret_key))

    async def DisableChannel(
        self, request: auth_pb2.DisableChannelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.DisableChannelResponse:
        """A relay saw the provider refuse the channel (or one key of it) for good."""
        if not MonitorOptions.from_options(await self._store.options()).auto_disable:
            log.warning(
                "channel %d failed fatally (%s); AutomaticDisableChannelEnabled is off",
                request.channel_id,
                request.reason,
            )
            return auth_pb2.DisableChannelResponse()
        now = int(time.time())
        ch = await self._store.channels.config(request.channel_id)
        if ch is None:
            return auth_pb2.DisableChannelResponse()
        fingerprints = [key_fingerprint(k) for k in self._keys_of(ch)]
        key_disabled = False
        if request.key_fingerprint and len(fingerprints) > 1:
            if request.key_fingerprint not in fingerprints:
                return auth_pb2.DisableChannelResponse()  # a key since replaced
            key_disabled, disabled = await self._store.channels.disable_key(
                request.channel_id, request.key_fingerprint, request.reason, now, fingerprints
            )
            if key_disabled:
                log.error(
                    "channel %d key %s auto-disabled: %s",
                    request.channel_id,
                    request.key_fingerprint,
                    request.reason,
                )
                self._alert(
                    "channel_key_disabled",
                    ch,
                    f"Channel #{ch.id} ({ch.name}): a key was disabled",
                    f"Key {request.key_fingerprint} was taken out of rotation: {request.reason}",
                    key_fingerprint=request.key_fingerprint,
                )
        else:
            disabled = await self._store.channels.disable(request.channel_id, request.reason, now)
        if disabled:
            log.error("channel %d auto-disabled: %s", request.channel_id, request.reason)
            self._alert(
                "channel_disabled",
                ch,
                f"Channel #{ch.id} ({ch.name}) disabled",
                f"The provider refused it: {request.reason}",
            )
        if disabled or key_disabled:
            self._abilities.clear()
            await self._notify("channel", [request.channel_id])
        return auth_pb2.DisableChannelResponse(disabled=disabled, key_disabled=key_disabled)

    def _alert(
        self, event: str, ch: ChannelRecord, title: str, text: str, **details: object
    ) -> None:
        if self._alerts is not None:
            self._alerts.send(
                Alert(event, title, text, {"channel_id": ch.id, "channel": ch.name, **details})
            )

    # ---- background ---------------------------------------------------------------------
    async def flush_accessed_times(self, interval: float = 5.0) -> None:
        """Record when keys were last used, batched so the hot path never writes Postgres."""
        while True:
            await asyncio.sleep(interval)
            if not self._touched:
                continue
            ids, self._touched = list(self._touched), set()
            try:
                await self._store.touch_tokens(ids, int(time.time()))
            except Exception:
                log.exception("could not record accessed_time")
