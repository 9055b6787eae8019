-- Robot accounts and personal access tokens. Their secrets are random (256 bits), so they are
-- stored as SHA-256 (hex) rather than with a slow password hash. Access rules are stored one per
-- line, `REPOSITORY_PATTERN:ACTIONS` (berth_auth::AccessRule).

CREATE TABLE robots (
    id           INTEGER PRIMARY KEY,
    -- The login name: robot$<project>+<name>, or robot$<name> for a system-wide robot.
    name         TEXT    NOT NULL UNIQUE,
    project_id   BIGINT  REFERENCES projects (id) ON DELETE CASCADE,
    description  TEXT    NOT NULL DEFAULT '',
    access       TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    expires_at   BIGINT,
    disabled     BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL
);

CREATE TABLE access_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The token's public part (berth_auth::passwords::AccessToken), to find its row.
    lookup       TEXT    NOT NULL UNIQUE,
    description  TEXT    NOT NULL DEFAULT '',
    access       TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX access_tokens_by_user ON access_tokens (user_id);
