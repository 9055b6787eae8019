-- The audit log: who did what, where, from which address, when, and with what outcome.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          BIGINT  NOT NULL,   -- unix milliseconds
    actor       TEXT    NOT NULL,   -- login name, 'cli' for local commands, '' for anonymous
    action      TEXT    NOT NULL,   -- push, pull, delete, login, token, user.add, project.create, ...
    project     TEXT,
    repository  TEXT,
    reference   TEXT,               -- digest or tag
    address     TEXT,               -- client IP address
    outcome     TEXT    NOT NULL,   -- success | failure | denied
    detail      TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
