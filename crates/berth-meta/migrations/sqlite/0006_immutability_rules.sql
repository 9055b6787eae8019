-- Tag immutability: per project, tags matching a rule (a repository pattern relative to the
-- project and a tag pattern, globs) cannot be moved to another digest or deleted.
CREATE TABLE immutability_rules (
    id            INTEGER PRIMARY KEY,
    project_id    BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    repositories  TEXT    NOT NULL,   -- e.g. '**', 'api', 'services/*'
    tags          TEXT    NOT NULL,   -- e.g. 'v*', 'commit-*', '*'
    created_at    BIGINT  NOT NULL,
    UNIQUE (project_id, repositories, tags)
);
