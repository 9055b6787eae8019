-- Small blobs kept in the database itself (storage_key 'inline'): one durable write, shared with
-- other writers by group commit, instead of a file, its fsync and a directory fsync.
CREATE TABLE blob_contents (
    digest   TEXT NOT NULL PRIMARY KEY REFERENCES blobs (digest),
    content  BLOB NOT NULL
);
