-- Clients of the authorization API, accounts they connected, one-time codes, access tokens,
-- and the per-domain discovery cache. Secrets are stored only as hashes or sealed.
-- The same history as the SQLite migrations of the same number, in PostgreSQL's types.
CREATE TABLE clients (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    secret_hash BYTEA NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL,
    exchange_server_host TEXT NOT NULL DEFAULT '',
    discovery_method TEXT NOT NULL DEFAULT '',
    activesync_versions TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '',
    username TEXT NOT NULL DEFAULT '',
    sealed_secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (client_id, email)
);

CREATE TABLE codes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code_hash BYTEA NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    code_id BIGINT NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX tokens_by_code ON tokens (code_id);

CREATE TABLE discovery_cache (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT '',
    activesync_url TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL
);
