-- Storage quotas per project: the most bytes of distinct blobs the project's repositories may
-- link (a blob shared by several of them counts once; manifests, kept in this database, do not
-- count). NULL: unlimited. Checked inside the write that links a blob (see berth-meta
-- `quotas.rs`). Numbered 0009: 0008 is taken by garbage collection on another branch.
ALTER TABLE projects ADD COLUMN quota_bytes BIGINT;
