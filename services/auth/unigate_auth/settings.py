from __future__ import annotations

from pydantic import Field

from unigate.settings import CommonSettings, parse_relay_addrs
from unigate_auth.turnstile import SITEVERIFY_URL


class AuthSettings(CommonSettings):
    listen: str = Field("127.0.0.1:50051", alias="AUTH_LISTEN")
    ops_host: str = Field("127.0.0.1", alias="OPS_HOST")
    ops_port: int = Field(9101, alias="AUTH_OPS_PORT")
    # In-process caches of keys, users and channels; NATS invalidation makes changes visible
    # at once, the TTL bounds staleness should a broadcast be missed.
    cache_ttl_seconds: float = Field(5.0, alias="AUTH_CACHE_TTL")
    # Stale-if-error: while Postgres cannot be read, keys, users, routes and options already
    # cached keep serving for this long after they were last read, and cached balances in
    # Redis live this long after their last load or refresh (so they outlive an outage).
    stale_if_error_seconds: float = Field(600.0, alias="STALE_IF_ERROR")
    # How often a key in use has its cached balances re-read from Postgres (in the background),
    # healing drift and re-arming their lifetime.
    balance_refresh_seconds: float = Field(60.0, alias="BALANCE_REFRESH")
    # After Redis lost its state, how long a request waits for billing to apply the usage
    # published before (the balance in Postgres lacks it until then) before it is refused 503.
    reload_backlog_wait_seconds: float = Field(3.0, alias="RELOAD_BACKLOG_WAIT")
    # While Redis cannot be reached: 0 refuses every request (503, fail closed); N lets each
    # key spend up to N quota units per auth process, unreserved, billed as usual.
    redis_outage_budget: int = Field(0, alias="REDIS_OUTAGE_BUDGET")
    # Completion reserved for a non-generating request that names no max_tokens.
    default_completion_reserve: int = Field(512, alias="DEFAULT_COMPLETION_RESERVE")
    # Per-request output ceiling (tokens) of generating requests, unlimited keys included:
    # no request goes upstream allowed more (the MaxOutputTokens option overrides it).
    max_completion_reserve: int = Field(65_536, alias="MAX_COMPLETION_RESERVE")
    # Spare reservations for a hot key (see docs/architecture.md, "Spare reservations"): how
    # long one may be bound to a request (at most 1 s: a revoked key or a lowered balance is
    # refused everywhere within it; 0: none are issued), and how many one Authorize may book.
    spare_valid_ms: int = Field(1000, alias="SPARE_VALID_MS", ge=0, le=1000)
    max_spares: int = Field(64, alias="MAX_SPARES", ge=0, le=256)
    # Relays, by provider family, for channel tests: "openai=127.0.0.1:50061".
    relay_addrs: str = Field("openai=127.0.0.1:50061", alias="RELAY_ADDRS")
    # Billing's gRPC address: redemption codes are redeemed and minted there.
    billing_addr: str = Field("127.0.0.1:50071", alias="BILLING_ADDR")
    # Seconds between tests of auto-disabled channels (re-enabled when they pass); 0: off.
    channel_test_frequency: float = Field(300.0, alias="CHANNEL_TEST_FREQUENCY")
    # Seconds between tests of every enabled channel (disabled when one fails or answers
    # slower than the ChannelDisableThreshold option); 0 turns them off.
    channel_monitor_frequency: float = Field(600.0, alias="CHANNEL_MONITOR_FREQUENCY")
    # Seconds between looks at Message Batches whose results are not billed yet (one auth at
    # a time): a batch no client fetches is billed within this of its end; 0: off.
    message_batch_poll: float = Field(30.0, ge=0, alias="MESSAGE_BATCH_POLL")
    # Seconds between looks for users newly below the QuotaRemindThreshold option; 0: off.
    quota_remind_frequency: float = Field(60.0, alias="QUOTA_REMIND_FREQUENCY")

    # Management sessions (admin.proto): lifetime, and failed logins allowed per username and
    # per client address within a window before logins are refused until it ends.
    session_ttl_seconds: int = Field(7 * 24 * 3600, alias="SESSION_TTL")
    # Failed logins: per account from one address, and per address, before that address is
    # refused (429); per account from anywhere, before each try is slowed (never refused).
    login_max_failures_per_user: int = Field(5, alias="LOGIN_MAX_FAILURES_PER_USER")
    login_max_failures_per_ip: int = Field(20, alias="LOGIN_MAX_FAILURES_PER_IP")
    login_failure_window_seconds: int = Field(900, alias="LOGIN_FAILURE_WINDOW")
    login_account_slowdown_after: int = Field(10, ge=0, alias="LOGIN_ACCOUNT_SLOWDOWN_AFTER")
    login_max_delay_seconds: float = Field(5.0, ge=0, alias="LOGIN_MAX_DELAY")

    # Where the external login providers live (docs/security.md: these are trusted to name
    # who a person is). Operator settings, not options: the tests point them at simulators.
    oauth_github_url: str = Field("https://github.com", alias="OAUTH_GITHUB_URL")
    oauth_github_api_url: str = Field("https://api.github.com", alias="OAUTH_GITHUB_API_URL")
    oauth_lark_url: str = Field("https://open.feishu.cn", alias="OAUTH_LARK_URL")
    oauth_lark_accounts_url: str = Field(
        "https://accounts.feishu.cn", alias="OAUTH_LARK_ACCOUNTS_URL"
    )

    # New external-login flows and WeChat code tries per client address per minute (0: off).
    oauth_max_per_ip_per_minute: int = Field(30, ge=0, alias="OAUTH_MAX_PER_IP_PER_MINUTE")
    # Self-service accounts (unigate_auth.mail_codes): how long a mailed code or reset link
    # lives, and how many mails one address, and one client address, may be sent per window.
    mail_code_ttl_seconds: int = Field(600, ge=60, alias="MAIL_CODE_TTL")
    mail_sends_per_address: int = Field(3, ge=1, alias="MAIL_SENDS_PER_ADDRESS")
    mail_sends_per_ip: int = Field(10, ge=1, alias="MAIL_SENDS_PER_IP")
    mail_send_window_seconds: int = Field(900, ge=1, alias="MAIL_SEND_WINDOW")
    # Cloudflare Turnstile's siteverify endpoint (tests point it at a simulator).
    turnstile_verify_url: str = Field(SITEVERIFY_URL, alias="TURNSTILE_VERIFY_URL")

    def relay_map(self) -> dict[str, str]:
        return parse_relay_addrs(self.relay_addrs)
