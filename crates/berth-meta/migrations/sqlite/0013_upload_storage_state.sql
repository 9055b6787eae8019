-- The blob store's own state of an upload in progress (object storage: the multipart upload id,
-- its parts and the staged length, as JSON; NULL for the filesystem), saved with the offset and
-- hash state so that any replica can continue the upload.
ALTER TABLE uploads ADD COLUMN storage_state BLOB;
-- Object-storage keys name uploads, not digests: garbage collection looks blobs up by key.
CREATE INDEX blobs_by_storage_key ON blobs (storage_key);
