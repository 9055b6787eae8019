-- Pull and push statistics (issue 7). Counters grow by additions only (`col = col + n`), so
-- that replicas flushing at once on PostgreSQL never lose each other's counts. Pulls are
-- written in batches (berth-core `pulls.rs`); pushes in the manifest's own write. Times are
-- unix milliseconds; NULL: never (or before statistics were kept).

-- Per repository: every manifest GET (by tag or digest) and every manifest push.
ALTER TABLE repositories ADD COLUMN pull_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN last_pulled_at BIGINT;
ALTER TABLE repositories ADD COLUMN push_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN last_pushed_at BIGINT;

-- Per tag: GETs by this tag and pushes under it (its last push is `updated_at`; its last pull
-- `last_pulled_at`, from 0010). A deleted tag's counts go with it.
ALTER TABLE tags ADD COLUMN pull_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tags ADD COLUMN push_count BIGINT NOT NULL DEFAULT 0;

-- Per manifest: GETs of it, by any tag or by digest.
ALTER TABLE manifests ADD COLUMN pull_count BIGINT NOT NULL DEFAULT 0;

-- The image's size in bytes, computed when the manifest is stored: the distinct blobs it
-- references (config and layers), plus the image sizes of the manifests it lists (an index's
-- children: the sum over its platforms). NULL: unknown.
ALTER TABLE manifests ADD COLUMN image_size BIGINT;

-- What is known of the past: image sizes from the reference graph (children first, then the
-- indexes listing them; an index of indexes counts its children's blobs only), and the latest
-- push and pull times recorded per manifest. Counts start at 0.
UPDATE manifests SET image_size = (
    SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT)
    FROM manifest_blob_references r JOIN blobs b ON b.digest = r.blob_digest
    WHERE r.manifest_id = manifests.id);
UPDATE manifests SET image_size = image_size + (
    SELECT CAST(COALESCE(SUM(c.image_size), 0) AS BIGINT)
    FROM manifest_references r JOIN manifests c ON c.repository_id = r.repository_id AND c.digest = r.child_digest
    WHERE r.manifest_id = manifests.id)
WHERE EXISTS (SELECT 1 FROM manifest_references r WHERE r.manifest_id = manifests.id);
UPDATE repositories SET
    last_pushed_at = (SELECT MAX(COALESCE(m.last_pushed_at, m.created_at)) FROM manifests m WHERE m.repository_id = repositories.id),
    last_pulled_at = (SELECT MAX(m.last_pulled_at) FROM manifests m WHERE m.repository_id = repositories.id);
