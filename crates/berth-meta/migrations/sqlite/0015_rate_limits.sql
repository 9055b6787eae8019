-- Pull rate limits (berth_core::rate_limit, docs/rate-limits.md).
--
-- Overrides of the configured class limits, per project or per account (a user's name or a
-- robot's login name): `pulls` manifest GETs per `window_secs` seconds, both NULL for
-- "unlimited". Names are not foreign keys: an override outlives nothing it could break, and
-- an account's override applies to its user or robot by name.
CREATE TABLE rate_limit_overrides (
    scope        TEXT   NOT NULL,
    name         TEXT   NOT NULL,
    pulls        BIGINT,
    window_secs  BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);

-- Pull counters shared by replicas (used on PostgreSQL only: a server on SQLite is the only
-- one on its database and counts in memory): pulls counted in `bucket` (a client, or a client
-- in a project) during the fixed window [window_start, window_end) (unix ms).
CREATE TABLE rate_limit_counters (
    bucket        TEXT   NOT NULL,
    window_start  BIGINT NOT NULL,
    window_end    BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_counters_by_end ON rate_limit_counters (window_end);
