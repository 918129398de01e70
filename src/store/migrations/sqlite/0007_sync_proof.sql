-- Past OPTIONS: what a passed sync check proved about an account (the protocol version, the
-- device identity it ran as, when), shown by GET /account. Empty: no check ran.
ALTER TABLE accounts ADD COLUMN sync_version TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN sync_device_id TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN sync_checked_at INTEGER NOT NULL DEFAULT 0;
