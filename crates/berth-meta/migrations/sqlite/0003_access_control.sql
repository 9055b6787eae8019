-- Access control: users, projects and their members, robot accounts, personal access tokens.
-- Booleans and times are BIGINT (0/1, unix milliseconds), as everywhere in this schema.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    -- argon2id PHC string, or bcrypt for users imported from htpasswd.
    password_hash  TEXT    NOT NULL,
    admin          BIGINT  NOT NULL DEFAULT 0,
    disabled       BIGINT  NOT NULL DEFAULT 0,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    public      BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE project_members (
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- guest | developer | maintainer | owner
    role        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);
