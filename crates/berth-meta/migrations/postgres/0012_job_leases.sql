-- Which replica runs each background job (garbage collection, retention): a lease that its
-- holder renews well before `expires_at` (unix ms); when the holder dies, the lease expires and
-- another replica takes it. Twin of migrations/sqlite/0012_job_leases.sql.
CREATE TABLE job_leases (
    job          TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    holder       TEXT   COLLATE "C" NOT NULL,
    acquired_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
