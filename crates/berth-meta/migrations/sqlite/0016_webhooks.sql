-- Ids are AUTOINCREMENT: ids are never reused (receivers deduplicate by X-Berth-Delivery,
-- and a removed webhook's id must not name a new one), as PostgreSQL's identity columns.
-- Webhooks: per project, URLs that Berth POSTs a JSON payload to on push, pull and delete
-- events, signed with HMAC-SHA256 of `secret` (NULL: unsigned).
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,   -- the event types, comma-separated: 'push,pull,delete'
    secret      TEXT,
    enabled     BIGINT  NOT NULL DEFAULT 1,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id);

-- The durable queue of deliveries and their outcome: one row per event and webhook, written
-- in the transaction of the change (pushes, deletes) or in a batch (pulls). `payload` is the
-- exact body sent. A replica claims a due row by setting `claimed_until` (unix ms); a claim
-- that was never resolved (the replica died) lapses then.
CREATE TABLE webhook_deliveries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id        BIGINT  NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event             TEXT    NOT NULL,   -- push, pull, delete
    payload           TEXT    NOT NULL,
    status            TEXT    NOT NULL,   -- pending, delivered, failed
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT  NOT NULL,
    claimed_until     BIGINT,
    last_status_code  BIGINT,
    last_error        TEXT,
    created_at        BIGINT  NOT NULL,
    delivered_at      BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
