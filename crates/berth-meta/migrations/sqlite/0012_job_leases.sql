-- Which replica runs each background job (garbage collection, retention): a lease that its
-- holder renews well before `expires_at` (unix ms); when the holder dies, the lease expires and
-- another replica takes it.
CREATE TABLE job_leases (
    job          TEXT   NOT NULL PRIMARY KEY,
    holder       TEXT   NOT NULL,
    acquired_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
