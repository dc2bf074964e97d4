from __future__ import annotations

from pydantic import Field

from unigate.settings import CommonSettings, parse_relay_addrs


class GatewaySettings(CommonSettings):
    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(3000, alias="PORT")
    auth_addr: str = Field("127.0.0.1:50051", alias="AUTH_ADDR")
    # Relay addresses by provider family: "openai=127.0.0.1:50061,anthropic=10.0.0.5:50061".
    relay_addrs: str = Field("openai=127.0.0.1:50061", alias="RELAY_ADDRS")
    # CIDRs of proxies (nginx, load balancers) whose X-Forwarded-For is believed.
    trusted_proxies: str = Field("127.0.0.1/32,::1/128", alias="TRUSTED_PROXIES")
    # How many further channels to try after the first fails (before any byte was sent).
    retry_times: int = Field(2, alias="RETRY_TIMES")
    # Body limits by route family (edge.BodyLimits): the relayed JSON endpoints, the audio
    # uploads (multipart), and the management API. Refused by Content-Length before a byte
    # is read, or cut at the limit while reading.
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1, alias="MAX_REQUEST_BODY_BYTES")
    max_upload_body_bytes: int = Field(64 * 1024 * 1024, ge=1, alias="MAX_UPLOAD_BODY_BYTES")
    max_api_body_bytes: int = Field(1024 * 1024, ge=1, alias="MAX_API_BODY_BYTES")
    # A request's head (request line + headers): its size and header count (431 beyond), and
    # how long it may take to arrive (408, or a silent close for a connection sending nothing).
    max_header_bytes: int = Field(16 * 1024, ge=1024, alias="MAX_HEADER_BYTES")
    max_header_count: int = Field(100, ge=8, alias="MAX_HEADER_COUNT")
    header_read_timeout: float = Field(10.0, ge=0, alias="HEADER_READ_TIMEOUT")
    # Idle time before a keep-alive connection is closed. Keep it above the keepalive_timeout
    # of a proxy's upstream connections (deploy/nginx.conf: 4 s), so the proxy closes first.
    keep_alive_timeout: int = Field(5, ge=1, alias="KEEP_ALIVE_TIMEOUT")
    # Open connections (and requests in flight) beyond which new requests are answered 503.
    max_connections: int = Field(10_000, ge=1, alias="MAX_CONNECTIONS")
    # /metrics (and again /healthz, /readyz) on their own port, never the public one.
    ops_host: str = Field("127.0.0.1", alias="OPS_HOST")
    ops_port: int = Field(9100, alias="GATEWAY_OPS_PORT")
    authorize_timeout: float = Field(5.0, alias="AUTHORIZE_TIMEOUT")
    relay_timeout: float = Field(600.0, alias="RELAY_TIMEOUT")
    # Streams per auth/relay address that Authorize and non-streaming relay calls share.
    grpc_mux_lanes: int = Field(4, ge=1, le=64, alias="GRPC_MUX_LANES")
    # How long the usage publisher lets events gather before sending a batch: one JetStream
    # round trip per request would cost the gateway and billing more than the request.
    usage_linger_ms: int = Field(20, ge=0, le=1000, alias="USAGE_LINGER_MS")
    usage_buffer: int = Field(100_000, alias="USAGE_BUFFER_SIZE")
    # At shutdown, after the drain: how long publishing what is still buffered may take.
    usage_flush_timeout: float = Field(10.0, alias="USAGE_FLUSH_TIMEOUT")
    # The gateway's heartbeat in Redis expires this long after its last renewal (renewed four
    # times as often): billing settles a silent gateway's reservations soon after.
    heartbeat_ttl: float = Field(10.0, gt=0, le=30, alias="GATEWAY_HEARTBEAT_TTL")
    # Spare reservations a hot key's Authorize asks auth for at most (served here without a
    # call to auth, see unigate_gateway/spares.py); 0: every request calls Authorize.
    spares_wanted: int = Field(64, ge=0, le=256, alias="GATEWAY_SPARES")

    # Management API (/api): billing's log queries; the session cookie's signing secret
    # (empty: derived from SECRET_KEY), lifetime (as auth's SESSION_TTL) and Secure flag
    # (set it behind TLS); the deadline of each admin call.
    billing_addr: str = Field("127.0.0.1:50071", alias="BILLING_ADDR")
    session_secret: str = Field("", alias="SESSION_SECRET")
    session_ttl_seconds: int = Field(7 * 24 * 3600, alias="SESSION_TTL")
    session_cookie_secure: bool = Field(False, alias="SESSION_COOKIE_SECURE")
    management_timeout: float = Field(60.0, alias="MANAGEMENT_TIMEOUT")

    def relay_map(self) -> dict[str, str]:
        return parse_relay_addrs(self.relay_addrs)
