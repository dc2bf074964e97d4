-- The Responses API's stored responses (POST /v1/responses with store not false), owned by
-- auth: a response is read, listed and deleted only through a key of the user who created
-- it. `input_items` are this turn's input (with ids, as GET .../input_items lists them);
-- `response` the response object as the client got it; a previous_response_id chain is
-- followed through `previous_response_id` to replay the earlier turns. `channel_id` is the
-- channel that produced it: a later turn on a provider that keeps state goes back there.
CREATE TABLE stored_responses (
    id                    TEXT PRIMARY KEY,
    user_id               BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_id              BIGINT NOT NULL,
    channel_id            BIGINT NOT NULL,
    model                 TEXT NOT NULL,
    previous_response_id  TEXT,
    input_items           JSONB NOT NULL,
    response              JSONB NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX stored_responses_user ON stored_responses (user_id, created_at);
