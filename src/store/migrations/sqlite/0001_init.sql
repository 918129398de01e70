-- Clients of the authorization API, accounts they connected, one-time codes, access tokens,
-- and the per-domain discovery cache. Secrets are stored only as hashes or sealed.
CREATE TABLE clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    secret_hash BLOB NOT NULL,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    sealed_secret BLOB NOT NULL,
    created_at INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (client_id, email)
) STRICT;

CREATE TABLE codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash BLOB NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash BLOB NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    code_id INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX tokens_by_code ON tokens (code_id);

CREATE TABLE discovery_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT '',
    activesync_url TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL
) STRICT;
