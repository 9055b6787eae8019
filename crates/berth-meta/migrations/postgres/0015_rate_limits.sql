-- Twin of migrations/sqlite/0015_rate_limits.sql: pull rate limits (berth_core::rate_limit,
-- docs/rate-limits.md).
--
-- Overrides of the configured class limits, per project or per account (a user's name or a
-- robot's login name): `pulls` manifest GETs per `window_secs` seconds, both NULL for
-- "unlimited".
CREATE TABLE rate_limit_overrides (
    scope        TEXT   COLLATE "C" NOT NULL,
    name         TEXT   COLLATE "C" NOT NULL,
    pulls        BIGINT,
    window_secs  BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);

-- Pull counters shared by replicas: pulls counted in `bucket` (a client, or a client in a
-- project) during the fixed window [window_start, window_end) (unix ms). UNLOGGED: counters
-- are written at every pull and worth nothing after a crash of the database server (which
-- empties the table), so they skip the write-ahead log and its flush at commit.
CREATE UNLOGGED TABLE rate_limit_counters (
    bucket        TEXT   COLLATE "C" NOT NULL,
    window_start  BIGINT NOT NULL,
    window_end    BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_counters_by_end ON rate_limit_counters (window_end);
