-- Twin of migrations/sqlite/0010_retention.sql: retention policies and pull times.
CREATE TABLE retention_policies (
    project_id   BIGINT  NOT NULL PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    document     TEXT    NOT NULL,
    schedule     TEXT,
    updated_at   BIGINT  NOT NULL,
    last_run_at  BIGINT
);

ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE tags ADD COLUMN last_pulled_at BIGINT;
