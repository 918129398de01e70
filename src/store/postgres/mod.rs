//! The SQL behind [`super::Store`] on PostgreSQL, for several instances sharing one database:
//! the same statements as [`super::sqlite`], in PostgreSQL's dialect, on a connection pool.
//!
//! What the SQLite backend gets from its single writer, this one states in SQL: a code is
//! spent by one conditional `UPDATE … WHERE used_at = 0` (a concurrent redemption waits on the
//! row, then finds it spent, and revokes what the first one issued); one account is replaced by
//! one redemption at a time (a transaction-scoped advisory lock on the client and address); a
//! job is claimed with `FOR UPDATE SKIP LOCKED`; the intake bound is counted under an advisory
//! lock; migrations are applied under an advisory lock, so instances starting together apply
//! each one once.

mod jobs;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::{NoTls, Row};

use super::Error;
use super::records::{
    self, ACCOUNT_COLUMNS, AccountColumns, ClientInfo, ClientRecord, CodeBinding, NewCode,
    NewToken, RedeemChecks, Redemption, Swept, TokenInfo, account_columns_of, from_json_column,
    to_json_column,
};
use crate::account::{Account, CachedDiscovery, NewAccount};

/// Migrations, numbered as the SQLite ones (`migrations/postgres/` holds the same names).
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_jobs",
        include_str!("../migrations/postgres/0002_jobs.sql"),
    ),
    (
        "0003_grants",
        include_str!("../migrations/postgres/0003_grants.sql"),
    ),
    (
        "0004_code_binding",
        include_str!("../migrations/postgres/0004_code_binding.sql"),
    ),
    (
        "0005_key_check",
        include_str!("../migrations/postgres/0005_key_check.sql"),
    ),
    (
        "0006_job_leases",
        include_str!("../migrations/postgres/0006_job_leases.sql"),
    ),
    (
        "0007_sync_proof",
        include_str!("../migrations/postgres/0007_sync_proof.sql"),
    ),
];

/// Advisory lock keys (one namespace of this crate's own).
const MIGRATION_LOCK: i64 = 0x6578_6469_0001;
const INTAKE_LOCK: i64 = 0x6578_6469_0002;

/// How long a request waits for a pooled connection, or for a new one.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Postgres(err.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Postgres(err.to_string())
    }
}

/// `url` without its user name and password: `host:port/database`.
pub fn describe(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => {
            let host = config
                .get_hosts()
                .first()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_default();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let database = config.get_dbname().unwrap_or("");
            format!("postgres://{host}:{port}/{database}")
        }
        Err(_) => "postgres://(invalid url)".to_owned(),
    }
}

impl Db {
    /// A pool of at most `size` connections to `url`, with pending migrations applied.
    pub async fn connect(url: &str, size: usize) -> Result<Self, Error> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|_| Error::Url("not a PostgreSQL URL (postgres://user@host/db)".into()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(POOL_WAIT),
                create: Some(POOL_WAIT),
                recycle: Some(POOL_WAIT),
            })
            .build()
            .map_err(|e| Error::Postgres(e.to_string()))?;
        let db = Self { pool };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations, under a lock that instances starting together share.
    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let applied: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0);
        for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&((index + 1) as i64), name],
            )
            .await?;
        }
        if applied as usize > MIGRATIONS.len() {
            // A newer instance migrated further; the history is additive, so this one still
            // reads and writes what it knows (a rolling deploy).
            tracing::info!(
                applied,
                known = MIGRATIONS.len(),
                "the database has migrations newer than this instance"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn ping(&self, wait: Duration) -> Result<(), Error> {
        let answer = tokio::time::timeout(wait, async {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok::<_, Error>(())
        })
        .await;
        answer.unwrap_or_else(|_| Err(Error::Postgres("no answer in time".into())))
    }

    pub async fn check_key(&self, value: &[u8]) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO key_check (id, value) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&value],
            )
            .await?;
        let recorded: Vec<u8> = client
            .query_one("SELECT value FROM key_check WHERE id = 1", &[])
            .await?
            .get(0);
        Ok(crate::secrets::hashes_match(&recorded, value))
    }

    pub async fn add_client(&self, client: &ClientRecord, now: i64) -> Result<(), Error> {
        let uris = to_json_column(&client.redirect_uris, "uris")?;
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &client.client_id,
                    &client.name,
                    &client.secret_hash,
                    &uris,
                    &now,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, Error> {
        let rows = self
            .pool
            .get()
            .await?
            .query(
                "SELECT client_id, name, redirect_uris, created_at FROM clients ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let uris: String = row.get(2);
                Ok(ClientInfo {
                    client_id: row.get(0),
                    name: row.get(1),
                    redirect_uris: from_json_column(&uris, "uris")?,
                    created_at: row.get(3),
                })
            })
            .collect()
    }

    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, Error> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT client_id, secret_hash, redirect_uris, name FROM clients
                 WHERE client_id = $1",
                &[&client_id],
            )
            .await?;
        row.map(|row| {
            let uris: String = row.get(2);
            Ok(ClientRecord {
                client_id: row.get(0),
                secret_hash: row.get(1),
                redirect_uris: from_json_column(&uris, "uris")?,
                name: row.get(3),
            })
        })
        .transpose()
    }

    pub async fn save_account(&self, account: &NewAccount) -> Result<String, Error> {
        let client = self.pool.get().await?;
        save_account(&client, account).await
    }

    pub async fn find_account(&self, account_id: &str) -> Result<Option<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1");
        let row = self
            .pool
            .get()
            .await?
            .query_opt(&sql, &[&account_id])
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    pub async fn find_account_by_email(
        &self,
        client_id: &str,
        email: &str,
    ) -> Result<Option<Account>, Error> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = $1 AND email = $2");
        let row = self
            .pool
            .get()
            .await?
            .query_opt(&sql, &[&client_id, &email])
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    pub async fn create_code(&self, code: &NewCode, now: i64) -> Result<(), Error> {
        let pending = to_json_column(&code.account, "pending")?;
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO codes (code_hash, client_id, account_id, expires_at, pending,
                     pending_secret, redirect_uri, code_challenge, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &code.code_hash,
                    &code.client_id.as_str(),
                    &code.account.account_id.as_str(),
                    &code.expires_at,
                    &pending,
                    &code.account.sealed_secret,
                    &code.binding.redirect_uri,
                    &code.binding.code_challenge,
                    &now,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        token: &NewToken,
        checks: RedeemChecks,
        now: i64,
    ) -> Result<Redemption, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // The code's row, locked: a concurrent redemption waits here, then reads it spent.
        let code = tx
            .query_opt(
                "SELECT id, client_id, account_id, expires_at, used_at, pending, pending_secret,
                     redirect_uri, code_challenge
                 FROM codes WHERE code_hash = $1 FOR UPDATE",
                &[&code_hash],
            )
            .await?;
        let Some(code) = code else {
            return Ok(Redemption::Unknown);
        };
        let code_id: i64 = code.get(0);
        if code.get::<_, String>(1) != client_id {
            return Ok(Redemption::Unknown);
        }
        if code.get::<_, i64>(4) != 0 {
            // A replay: whoever holds the first token may hold a stolen code's fruit (RFC 6749
            // 4.1.2, RFC 9700 4.5): revoke it.
            tx.execute(
                "UPDATE tokens SET revoked = 1 WHERE code_id = $1",
                &[&code_id],
            )
            .await?;
            tx.commit().await?;
            return Ok(Redemption::Replayed);
        }
        if code.get::<_, i64>(3) <= now {
            return Ok(Redemption::Expired);
        }
        // Spent from here on, whatever follows, by one conditional write; the account it
        // carried is no longer kept.
        let spent = tx
            .execute(
                "UPDATE codes SET used_at = $2, pending = '', pending_secret = decode('', 'hex')
                 WHERE id = $1 AND used_at = 0",
                &[&code_id, &now.max(1)],
            )
            .await?;
        if spent != 1 {
            return Ok(Redemption::Replayed);
        }
        let account_id: String = code.get(2);
        let pending: String = code.get(5);
        let secret: Vec<u8> = code.get(6);
        let binding = CodeBinding {
            redirect_uri: code.get(7),
            code_challenge: code.get(8),
        };
        if let Err(reason) = (checks.binding)(&binding) {
            tx.commit().await?;
            return Ok(Redemption::Refused(reason));
        }
        if !pending.is_empty() {
            let mut account: NewAccount = from_json_column(&pending, "pending")?;
            account.sealed_secret = secret;
            // One redemption at a time replaces an account: the next waits here, then sees
            // what this one saved.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(10) || $2, 0))",
                &[&account.client_id.as_str(), &account.email],
            )
            .await?;
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = $1 AND email = $2"
            );
            let existing = tx
                .query_opt(&sql, &[&account.client_id.as_str(), &account.email])
                .await?;
            let existing = existing.as_ref().map(account_row).transpose()?;
            if let Err(reason) = (checks.may_replace)(existing.as_ref(), &account) {
                tx.commit().await?;
                return Ok(Redemption::Refused(reason));
            }
            account.now = now;
            save_account(&tx, &account).await?;
            // The account's earlier tokens open what it was before: they end now.
            tx.execute(
                "UPDATE tokens SET revoked = 1 WHERE account_id = $1",
                &[&account_id],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO tokens (token_hash, client_id, account_id, code_id, created_at,
                 expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &token.token_hash,
                &client_id,
                &account_id,
                &code_id,
                &now,
                &token.expires_at,
            ],
        )
        .await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1");
        let account = tx.query_opt(&sql, &[&account_id]).await?;
        let Some(account) = account.as_ref().map(account_row).transpose()? else {
            return Ok(Redemption::Unknown);
        };
        tx.commit().await?;
        Ok(Redemption::Issued(Box::new(account)))
    }

    pub async fn account_for_token(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<Account>, Error> {
        let columns = account_columns_of("a");
        let sql = format!(
            "SELECT {columns} FROM accounts a JOIN tokens t ON t.account_id = a.account_id
             WHERE t.token_hash = $1 AND t.revoked = 0 AND t.expires_at > $2"
        );
        let row = self
            .pool
            .get()
            .await?
            .query_opt(&sql, &[&token_hash, &now])
            .await?;
        row.as_ref().map(account_row).transpose()
    }

    pub async fn revoke_token(
        &self,
        token_hash: &[u8],
        client_id: Option<&str>,
    ) -> Result<bool, Error> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE tokens SET revoked = 1
                 WHERE token_hash = $1 AND revoked = 0 AND ($2::text IS NULL OR client_id = $2)",
                &[&token_hash, &client_id],
            )
            .await?;
        Ok(changed > 0)
    }

    pub async fn list_accounts(
        &self,
        client_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Account>, Error> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = $1 ORDER BY id
             LIMIT $2 OFFSET $3"
        );
        let (limit, offset) = (
            limit.min(i64::MAX as u64) as i64,
            offset.min(i64::MAX as u64) as i64,
        );
        let rows = self
            .pool
            .get()
            .await?
            .query(&sql, &[&client_id, &limit, &offset])
            .await?;
        rows.iter().map(account_row).collect()
    }

    pub async fn delete_account(&self, client_id: &str, account_id: &str) -> Result<bool, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute(
                "DELETE FROM accounts WHERE client_id = $1 AND account_id = $2",
                &[&client_id, &account_id],
            )
            .await?;
        if deleted > 0 {
            tx.execute("DELETE FROM tokens WHERE account_id = $1", &[&account_id])
                .await?;
            tx.execute("DELETE FROM codes WHERE account_id = $1", &[&account_id])
                .await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    pub async fn revoke_all(
        &self,
        client_id: &str,
        account_id: &str,
        keep: Option<&[u8]>,
    ) -> Result<usize, Error> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE tokens SET revoked = 1
                 WHERE client_id = $1 AND account_id = $2 AND revoked = 0
                   AND ($3::bytea IS NULL OR token_hash != $3)",
                &[&client_id, &account_id, &keep],
            )
            .await?;
        Ok(changed as usize)
    }

    pub async fn token_info(
        &self,
        client_id: &str,
        account_id: &str,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<TokenInfo>, Error> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT created_at, revoked = 0 AND expires_at > $4 FROM tokens
                 WHERE client_id = $1 AND account_id = $2 AND token_hash = $3",
                &[&client_id, &account_id, &token_hash, &now],
            )
            .await?;
        Ok(row.map(|row| TokenInfo {
            created_at: row.get(0),
            valid: row.get(1),
        }))
    }

    pub async fn sweep(&self, now: i64, jobs_before: i64) -> Result<Swept, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let codes = tx
            .execute("DELETE FROM codes WHERE expires_at <= $1", &[&now])
            .await?;
        let tokens = tx
            .execute(
                "DELETE FROM tokens WHERE revoked = 1 OR expires_at <= $1",
                &[&now],
            )
            .await?;
        let jobs = tx
            .execute(
                "DELETE FROM jobs WHERE state IN ('done', 'dead') AND updated_at < $1",
                &[&jobs_before],
            )
            .await?;
        tx.commit().await?;
        Ok(Swept {
            codes: codes as usize,
            tokens: tokens as usize,
            jobs: jobs as usize,
        })
    }

    pub async fn cached_discovery(
        &self,
        domain: &str,
        now: i64,
    ) -> Result<Option<CachedDiscovery>, Error> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT domain, host, method, activesync_url, provider, expires_at
                 FROM discovery_cache WHERE domain = $1 AND expires_at > $2",
                &[&domain, &now],
            )
            .await?;
        row.map(|row| {
            records::cached_discovery((
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            ))
        })
        .transpose()
    }

    pub async fn cache_discovery(&self, e: &CachedDiscovery) -> Result<(), Error> {
        self.pool
            .get()
            .await?
            .execute(
                "INSERT INTO discovery_cache (domain, host, method, activesync_url, provider,
                     expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (domain) DO UPDATE SET host = excluded.host,
                     method = excluded.method, activesync_url = excluded.activesync_url,
                     provider = excluded.provider, expires_at = excluded.expires_at",
                &[
                    &e.domain,
                    &e.host,
                    &e.method.as_str(),
                    &e.activesync_url,
                    &e.provider.as_str(),
                    &e.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn forget_discovery(&self, domain: &str) -> Result<(), Error> {
        self.pool
            .get()
            .await?
            .execute("DELETE FROM discovery_cache WHERE domain = $1", &[&domain])
            .await?;
        Ok(())
    }
}

async fn save_account(
    c: &impl deadpool_postgres::GenericClient,
    a: &NewAccount,
) -> Result<String, Error> {
    let versions = String::from(a.activesync_versions.clone());
    let row = c
        .query_one(
            "INSERT INTO accounts (account_id, client_id, email, name, provider,
                 exchange_server_host, discovery_method, activesync_versions, scopes, username,
                 sealed_secret, created_at, updated_at, sync_version, sync_device_id,
                 sync_checked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15)
             ON CONFLICT (client_id, email) DO UPDATE SET
                 name = excluded.name,
                 provider = excluded.provider,
                 exchange_server_host = excluded.exchange_server_host,
                 discovery_method = excluded.discovery_method,
                 activesync_versions = excluded.activesync_versions,
                 scopes = excluded.scopes,
                 username = excluded.username,
                 sealed_secret = excluded.sealed_secret,
                 updated_at = excluded.updated_at,
                 sync_version = excluded.sync_version,
                 sync_device_id = excluded.sync_device_id,
                 sync_checked_at = excluded.sync_checked_at
             RETURNING account_id",
            &[
                &a.account_id.as_str(),
                &a.client_id.as_str(),
                &a.email,
                &a.name,
                &a.provider.as_str(),
                &a.exchange_server_host,
                &a.origin.as_str(),
                &versions,
                &a.scopes.as_str(),
                &a.username,
                &a.sealed_secret,
                &a.now,
                &a.sync.as_ref().map_or("", |s| s.protocol_version.as_str()),
                &a.sync.as_ref().map_or("", |s| s.device_id.as_str()),
                &a.sync.as_ref().map_or(0, |s| s.checked_at),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// An account row: its columns read here, converted once (`records::AccountColumns`).
fn account_row(row: &Row) -> Result<Account, Error> {
    AccountColumns {
        account_id: row.get(0),
        client_id: row.get(1),
        email: row.get(2),
        name: row.get(3),
        provider: row.get(4),
        exchange_server_host: row.get(5),
        discovery_method: row.get(6),
        activesync_versions: row.get(7),
        scopes: row.get(8),
        username: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        sync_version: row.get(12),
        sync_device_id: row.get(13),
        sync_checked_at: row.get(14),
    }
    .into_account()
}
