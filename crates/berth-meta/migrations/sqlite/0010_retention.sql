-- Retention policies (issue 5 §4): one per project, the document as the operator wrote it
-- (Berth's own TOML or JSON, or an Amazon ECR lifecycle policy), and when it last ran.
CREATE TABLE retention_policies (
    project_id   BIGINT  NOT NULL PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    document     TEXT    NOT NULL,
    schedule     TEXT,              -- cron (5 fields, UTC); NULL: on demand only
    updated_at   BIGINT  NOT NULL,
    last_run_at  BIGINT             -- NULL: never ran
);

-- When a manifest, and a tag, were last pulled (a manifest GET; written in batches).
ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE tags ADD COLUMN last_pulled_at BIGINT;
