-- The identity of this database: one row, a random UUID made when the schema is created.
-- Auth and billing put it (with the database's own OID, see unigate.db.install_id) into every
-- Redis key of hot state (cached balances, reservations, rate windows, sessions), so a Redis
-- that still holds the state of a dropped and recreated database, or of a database restored
-- from a backup, never serves it to this one. After restoring a physical backup (same OID,
-- same row), an operator rotates it: `unigate install rotate` (see docs/architecture.md).
CREATE TABLE install (
    only_row      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    id            UUID NOT NULL DEFAULT gen_random_uuid(),
    created_time  BIGINT NOT NULL DEFAULT EXTRACT(EPOCH FROM now())::BIGINT
);
INSERT INTO install DEFAULT VALUES;
