-- Twin of migrations/sqlite/0002_inline_blobs.sql: small blobs kept in the database.
CREATE TABLE blob_contents (
    digest   TEXT  COLLATE "C" NOT NULL PRIMARY KEY REFERENCES blobs (digest),
    content  BYTEA NOT NULL
);
