-- Tag history: every time a tag is created, moved or deleted, what it pointed at before and
-- after, who did it and when. Written in the same transaction as the change.
CREATE TABLE tag_events (
    id               INTEGER PRIMARY KEY,
    repository_id    BIGINT  NOT NULL REFERENCES repositories (id),
    tag              TEXT    NOT NULL,
    previous_digest  TEXT,              -- NULL: the tag was created
    new_digest       TEXT,              -- NULL: the tag was deleted
    actor            TEXT    NOT NULL,  -- login name; '' for anonymous (open access)
    at               BIGINT  NOT NULL   -- unix milliseconds
);
CREATE INDEX tag_events_by_tag ON tag_events (repository_id, tag, id);
