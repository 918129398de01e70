-- Nothing durable changes before the application proves itself (rule 24): a code carries the
-- account its redemption will create or replace. Tokens end; jobs belong to a client.
ALTER TABLE codes ADD COLUMN pending TEXT NOT NULL DEFAULT '';
ALTER TABLE codes ADD COLUMN pending_secret BLOB NOT NULL DEFAULT x'';
ALTER TABLE tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
-- Tokens issued before expiry existed end 90 days after they were issued.
UPDATE tokens SET expires_at = created_at + 7776000;
CREATE INDEX tokens_by_account ON tokens (account_id);
CREATE INDEX codes_by_expiry ON codes (expires_at);
ALTER TABLE jobs ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_age ON jobs (state, updated_at);
