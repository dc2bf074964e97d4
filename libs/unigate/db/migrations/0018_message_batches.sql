-- Anthropic's Message Batches made through the gateway (auth's unigate_auth.batch_store):
-- each bound to the user and key that created it and to the channel (and channel key) it was
-- created on, with what billing its results needs: the reservation held for the whole batch,
-- each request's model and share of it, and the prices in force at creation.
CREATE TABLE message_batches (
    -- The gateway's request id of the create call: the batch's reservation, and (its time)
    -- the time every result's ledger row carries.
    reservation_id text PRIMARY KEY,
    -- Anthropic's id; NULL until the provider has answered the create call.
    batch_id text UNIQUE,
    user_id bigint NOT NULL,
    token_id bigint NOT NULL,
    token_name text NOT NULL,
    "group" text NOT NULL,
    client_ip text NOT NULL DEFAULT '',
    unlimited boolean NOT NULL,
    channel_id bigint NOT NULL,
    key_fingerprint text NOT NULL DEFAULT '',
    created_ms bigint NOT NULL,
    reserved_quota bigint NOT NULL,
    -- [[custom_id, model, upstream model, reserved share], ...] in the client's order.
    items jsonb NOT NULL,
    -- {model: hex of a serialized unigate.v1.Pricing} at the batch price.
    pricing jsonb NOT NULL,
    -- creating -> open -> billed; failed (refused upstream: its reservation released).
    state text NOT NULL,
    -- The batch object Anthropic last answered (what list pages show).
    object jsonb,
    deleted boolean NOT NULL DEFAULT false,
    updated_ms bigint NOT NULL
);

CREATE INDEX message_batches_by_user ON message_batches (user_id, created_ms DESC);
CREATE INDEX message_batches_unbilled ON message_batches (updated_ms)
    WHERE state IN ('creating', 'open');
