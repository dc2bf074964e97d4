-- Usage rollups: per UTC day, per (user, token, channel, model), the totals of consume rows.
-- Billing upserts them in the very statement that inserts the log rows (ledger._APPLY), from
-- the rows actually inserted, so they are exactly as right as the ledger and a redelivered
-- event counts nowhere. Dashboards read these instead of scanning `logs`.
CREATE TABLE usage_daily (
    day                DATE NOT NULL,                       -- UTC day of logs.created_at
    user_id            BIGINT NOT NULL,
    token_id           BIGINT NOT NULL,
    channel_id         BIGINT NOT NULL,
    model_name         TEXT NOT NULL,
    requests           BIGINT NOT NULL DEFAULT 0,
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    quota              BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, token_id, channel_id, model_name)
);
-- "What did this user spend, by day": the primary key leads with the day for global reports.
CREATE INDEX usage_daily_user_day ON usage_daily(user_id, day);

-- Existing consume rows, so the rollups agree with the ledger from the start. Billing must be
-- stopped (or not yet upgraded to write rollups) while this runs, or rows it inserts
-- meanwhile are counted by neither.
INSERT INTO usage_daily (day, user_id, token_id, channel_id, model_name, requests,
                         prompt_tokens, completion_tokens, quota)
SELECT date '1970-01-01' + (created_at / 86400)::int, user_id, token_id, channel_id, model_name,
       count(*), sum(prompt_tokens), sum(completion_tokens), sum(quota)
  FROM logs
 WHERE type = 2
 GROUP BY 1, 2, 3, 4, 5;
