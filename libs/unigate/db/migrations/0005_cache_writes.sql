-- Prompt-cache writes (Anthropic's cache_creation_input_tokens, 5-minute and 1-hour entries
-- together): part of prompt_tokens, shown apart because they are billed above plain input.
-- The quota column is still what was charged; this says why a row cost more than its
-- prompt at the input price. Existing rows predate the split: 0.
ALTER TABLE logs ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
