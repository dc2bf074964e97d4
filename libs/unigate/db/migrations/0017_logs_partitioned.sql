-- The log table, partitioned: by type first (consume rows are nearly all of it; top-ups,
-- management and system rows are few and kept longer), then consume rows by UTC day, so
-- that retention drops whole days (DROP TABLE, instantly, whatever their size) instead of
-- deleting rows one by one, and queries over a time range read only the days in it.
--
--   logs                      PARTITION BY LIST (type)
--     logs_consume            type 2, PARTITION BY RANGE (created_at)
--       logs_consume_YYYYMMDD one per UTC day [day, day + 86400); billing creates them ahead
--       logs_consume_default  anything outside the days created (should stay empty)
--     logs_other              every other type (DEFAULT)
--
-- Every key of a partitioned table must contain the partition keys, so the one-row-per-
-- request guarantee becomes UNIQUE (request_id, type, created_at). It means what UNIQUE
-- (request_id) meant because a consume row's created_at is a function of its request id
-- (the arrival time the gateway writes into the id: unigate.request_ids), whoever writes
-- the row. Ids are still one sequence.
--
-- The existing rows are copied, inside this migration's transaction: all or nothing, none
-- lost (bench/ledger.py measures the rate). Billing must be stopped while it runs.

ALTER TABLE logs RENAME TO logs_unpartitioned;
ALTER INDEX logs_pkey RENAME TO logs_unpartitioned_pkey;
ALTER INDEX logs_request_id_key RENAME TO logs_unpartitioned_request_id_key;
ALTER INDEX logs_created_at RENAME TO logs_unpartitioned_created_at;
ALTER INDEX logs_user_created RENAME TO logs_unpartitioned_user_created;
ALTER INDEX logs_token_created RENAME TO logs_unpartitioned_token_created;
ALTER INDEX logs_client_request_id RENAME TO logs_unpartitioned_client_request_id;

CREATE TABLE logs (LIKE logs_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (type);
ALTER TABLE logs ADD PRIMARY KEY (id, type, created_at);
ALTER TABLE logs ADD CONSTRAINT logs_request_once UNIQUE (request_id, type, created_at);
-- The console's and the API's filters (user, token, channel, model), each with the time
-- range they are read by; the request id is served by the unique key, which leads with it.
CREATE INDEX logs_created_at ON logs (created_at);
CREATE INDEX logs_user_created ON logs (user_id, created_at);
CREATE INDEX logs_token_created ON logs (token_id, created_at);
CREATE INDEX logs_channel_created ON logs (channel_id, created_at);
CREATE INDEX logs_model_created ON logs (model_name, created_at);
CREATE INDEX logs_client_request_id ON logs (client_request_id) WHERE client_request_id <> '';

CREATE TABLE logs_consume PARTITION OF logs FOR VALUES IN (2) PARTITION BY RANGE (created_at);
CREATE TABLE logs_consume_default PARTITION OF logs_consume DEFAULT;
CREATE TABLE logs_other PARTITION OF logs DEFAULT;

-- A day for every day that has consume rows, and for yesterday through a week ahead.
DO $$
DECLARE
  d BIGINT;
BEGIN
  FOR d IN
    SELECT DISTINCT created_at / 86400 FROM logs_unpartitioned WHERE type = 2
    UNION
    SELECT generate_series(
      extract(epoch FROM now())::BIGINT / 86400 - 1, extract(epoch FROM now())::BIGINT / 86400 + 7)
  LOOP
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF logs_consume FOR VALUES FROM (%s) TO (%s)',
      'logs_consume_' || to_char(to_timestamp(d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
      d * 86400, (d + 1) * 86400);
  END LOOP;
END $$;

INSERT INTO logs SELECT * FROM logs_unpartitioned;
ALTER SEQUENCE logs_id_seq OWNED BY logs.id;
DROP TABLE logs_unpartitioned;
