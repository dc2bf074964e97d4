-- The id a client sent with its request (X-Request-Id, else OpenAI's X-Client-Request-Id),
-- kept beside the gateway's own request_id (the row's key, which the client is told in its
-- x-request-id answer header). Clients choose it, so it is neither unique nor a key; the
-- partial index serves /api/log's request_id lookups, which match either id.
ALTER TABLE logs ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX logs_client_request_id ON logs (client_request_id) WHERE client_request_id <> '';
