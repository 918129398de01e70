//! The only module with SQL: clients, accounts, codes, tokens, the discovery cache and the
//! embedded job queue, in one embedded SQLite file by default ([`sqlite`]: WAL, `STRICT`
//! tables) or in PostgreSQL when several instances share them ([`postgres`]: a connection
//! pool, `store.url`).
//!
//! Both backends take one numbered, append-only, additive migration history
//! (`migrations/sqlite/` and `migrations/postgres/`, the same numbers and names; a test says
//! when they differ), applied once even when instances start together. Both keep the same
//! guarantees under concurrency, tested by one conformance suite (`tests/it/store.rs`): a code
//! is spent by one conditional write, an account is replaced by one redemption at a time, a
//! job has one lease holder and only that holder finishes it, the intake bound holds.
//!
//! On SQLite one connection serves the process, behind a mutex, inside `spawn_blocking` (the
//! async runtime never waits on SQLite); write transactions take the file's lock first, so two
//! processes sharing the file are as safe as one.

mod postgres;
mod records;
pub(crate) mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::account::{Account, CachedDiscovery, NewAccount};
use crate::clock::Clock;

pub use self::records::{
    BindingCheck, ClaimedRow, ClientInfo, ClientRecord, CodeBinding, Intake, JobStatus, NewCode,
    NewToken, RedeemChecks, Redemption, ReplaceCheck, Swept, TokenInfo,
};

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    clock: Clock,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(postgres::Db),
}

/// Calls `$sqlite` (a function of `&mut Connection`, run off the runtime) or `$postgres` (an
/// async function of the pool), whichever backend the store has.
macro_rules! dispatch {
    ($store:expr, |$c:ident| $sqlite:expr, |$db:ident| $postgres:expr) => {
        match &$store.backend {
            Backend::Sqlite(connection) => {
                let connection = connection.clone();
                tokio::task::spawn_blocking(move || {
                    let mut guard = connection.lock().unwrap_or_else(|e| e.into_inner());
                    let $c: &mut Connection = &mut guard;
                    $sqlite
                })
                .await
                .map_err(|_| Error::Worker)?
            }
            Backend::Postgres($db) => $postgres.await,
        }
    };
}

impl Store {
    /// Opens (or creates) the SQLite database at `path` and applies pending migrations. The
    /// file and its WAL companions are readable by their owner only (mode 0600): they hold
    /// sealed secrets and hashes.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with_clock(path, Clock::system())
    }

    /// [`Store::open`] with the clock whose time every stored time is compared with.
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self, Error> {
        owner_only(path)?;
        let mut connection = Connection::open(path)?;
        sqlite::prepare(&mut connection)?;
        Ok(Self {
            backend: Backend::Sqlite(Arc::new(Mutex::new(connection))),
            clock,
        })
    }

    /// The store `config` names: PostgreSQL at `config.url`, or else the SQLite file at
    /// `config.path`; pending migrations applied.
    pub async fn connect(config: &StoreConfig, clock: Clock) -> Result<Self, Error> {
        match &config.url {
            Some(url) => Ok(Self {
                backend: Backend::Postgres(
                    postgres::Db::connect(url.expose_secret(), config.pool_size).await?,
                ),
                clock,
            }),
            None => {
                let path = config.path.clone();
                tokio::task::spawn_blocking(move || Self::open_with_clock(&path, clock))
                    .await
                    .map_err(|_| Error::Worker)?
            }
        }
    }

    /// Where the state lives, for logs: the file, or the PostgreSQL host and database (never
    /// the password).
    pub fn describe(config: &StoreConfig) -> String {
        match &config.url {
            Some(url) => postgres::describe(url.expose_secret()),
            None => config.path.display().to_string(),
        }
    }

    /// Checks that the database is sealed with the key whose check value is `value`, and
    /// records it if no key is recorded yet. At start-up, before anything is served.
    pub async fn check_key(&self, value: &[u8]) -> Result<(), Error> {
        let value = value.to_vec();
        let same = dispatch!(self, |c| sqlite::check_key(c, &value), |db| db
            .check_key(&value));
        if same? {
            Ok(())
        } else {
            Err(Error::KeyMismatch)
        }
    }

    /// `client_id`'s accounts, oldest first, `limit` from `offset`.
    pub async fn list_accounts(
        &self,
        client_id: String,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Account>, Error> {
        dispatch!(
            self,
            |c| sqlite::list_accounts(c, &client_id, offset, limit),
            |db| db.list_accounts(&client_id, offset, limit)
        )
    }

    /// Deletes an account of `client_id` with its sealed secret, tokens and pending codes.
    pub async fn delete_account(
        &self,
        client_id: String,
        account_id: String,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            |c| sqlite::delete_account(c, &client_id, &account_id),
            |db| db.delete_account(&client_id, &account_id)
        )
    }

    /// Revokes every token of an account of `client_id` but the one hashed `keep`.
    pub async fn revoke_all(
        &self,
        client_id: String,
        account_id: String,
        keep: Option<Vec<u8>>,
    ) -> Result<usize, Error> {
        dispatch!(
            self,
            |c| sqlite::revoke_all(c, &client_id, &account_id, keep.as_deref()),
            |db| db.revoke_all(&client_id, &account_id, keep.as_deref())
        )
    }

    /// What a token of an account of `client_id` is, at `now`.
    pub async fn token_info(
        &self,
        client_id: String,
        account_id: String,
        token_hash: Vec<u8>,
        now: i64,
    ) -> Result<Option<TokenInfo>, Error> {
        dispatch!(
            self,
            |c| sqlite::token_info(c, &client_id, &account_id, &token_hash, now),
            |db| db.token_info(&client_id, &account_id, &token_hash, now)
        )
    }

    /// Unix seconds now, by the store's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Whether the database can take a write now: a lock held elsewhere (another process, a
    /// backup), or a PostgreSQL server that does not answer, makes this fail within `wait`.
    pub async fn ping(&self, wait: Duration) -> Result<(), Error> {
        dispatch!(
            self,
            |c| {
                c.busy_timeout(wait)?;
                let result = c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
                c.busy_timeout(sqlite::BUSY_TIMEOUT)?;
                if result.is_err() && !c.is_autocommit() {
                    let _ = c.execute_batch("ROLLBACK;");
                }
                Ok(result?)
            },
            |db| db.ping(wait)
        )
    }

    /// Registers a client with its hashed secret.
    pub async fn add_client(&self, client: ClientRecord) -> Result<(), Error> {
        let now = self.now();
        dispatch!(self, |c| sqlite::add_client(c, &client), |db| db
            .add_client(&client, now))
    }

    /// Every client (without secrets).
    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, Error> {
        dispatch!(self, |c| sqlite::list_clients(c), |db| db.list_clients())
    }

    /// One client, with its secret hash.
    pub async fn find_client(&self, client_id: String) -> Result<Option<ClientRecord>, Error> {
        dispatch!(self, |c| sqlite::find_client(c, &client_id), |db| db
            .find_client(&client_id))
    }

    /// Creates or replaces the account of `(client, email)`; returns its id.
    pub async fn save_account(&self, account: NewAccount) -> Result<String, Error> {
        dispatch!(self, |c| sqlite::save_account(c, &account), |db| db
            .save_account(&account))
    }

    /// One account by id.
    pub async fn find_account(&self, account_id: String) -> Result<Option<Account>, Error> {
        dispatch!(self, |c| sqlite::find_account(c, &account_id), |db| db
            .find_account(&account_id))
    }

    /// The account a client already has for `email`.
    pub async fn find_account_by_email(
        &self,
        client_id: String,
        email: String,
    ) -> Result<Option<Account>, Error> {
        dispatch!(
            self,
            |c| sqlite::find_account_by_email(c, &client_id, &email),
            |db| db.find_account_by_email(&client_id, &email)
        )
    }

    /// Stores a code's hash, bound to its client, with the account its redemption saves.
    pub async fn create_code(&self, code: NewCode) -> Result<(), Error> {
        let now = self.now();
        dispatch!(self, |c| sqlite::create_code(c, &code), |db| db
            .create_code(&code, now))
    }

    /// Redeems a code once, in one transaction: checks what it was bound to, saves its account
    /// if `checks.may_replace` allows, revokes that account's earlier tokens, and stores
    /// `token`. A second redemption, at the same moment or later, on this instance or
    /// another, revokes the token the first one issued.
    pub async fn redeem_code(
        &self,
        code_hash: Vec<u8>,
        client_id: String,
        token: NewToken,
        checks: RedeemChecks,
        now: i64,
    ) -> Result<Redemption, Error> {
        dispatch!(
            self,
            |c| sqlite::redeem_code(c, &code_hash, &client_id, &token, checks, now),
            |db| db.redeem_code(&code_hash, &client_id, &token, checks, now)
        )
    }

    /// The account an access token (by hash) gives access to at `now`, unless revoked.
    pub async fn account_for_token(
        &self,
        token_hash: Vec<u8>,
        now: i64,
    ) -> Result<Option<Account>, Error> {
        dispatch!(
            self,
            |c| sqlite::account_for_token(c, &token_hash, now),
            |db| db.account_for_token(&token_hash, now)
        )
    }

    /// Revokes a token (by hash), only if it is `client_id`'s when one is given.
    pub async fn revoke_token(
        &self,
        token_hash: Vec<u8>,
        client_id: Option<String>,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            |c| sqlite::revoke_token(c, &token_hash, client_id.as_deref()),
            |db| db.revoke_token(&token_hash, client_id.as_deref())
        )
    }

    /// Deletes ended codes and tokens, and finished jobs last touched before `jobs_before`.
    pub async fn sweep(&self, now: i64, jobs_before: i64) -> Result<Swept, Error> {
        dispatch!(self, |c| sqlite::sweep(c, now, jobs_before), |db| db
            .sweep(now, jobs_before))
    }

    /// Sweeps every `every` until `shutdown`: codes and tokens that ended, and finished jobs
    /// older than `job_retention`, so the database does not grow without end.
    pub async fn sweep_until(
        self,
        every: Duration,
        job_retention: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let now = self.now();
            match self.sweep(now, now - job_retention.as_secs() as i64).await {
                Ok(swept) if swept != Swept::default() => tracing::info!(
                    codes = swept.codes,
                    tokens = swept.tokens,
                    jobs = swept.jobs,
                    "swept ended codes, tokens and old jobs"
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error.code = err.code(), "sweep failed"),
            }
        }
    }

    /// The cached discovery of `domain`, if still fresh at `now`.
    pub async fn cached_discovery(
        &self,
        domain: String,
        now: i64,
    ) -> Result<Option<CachedDiscovery>, Error> {
        dispatch!(self, |c| sqlite::cached_discovery(c, &domain, now), |db| db
            .cached_discovery(&domain, now))
    }

    /// Caches a discovery.
    pub async fn cache_discovery(&self, entry: CachedDiscovery) -> Result<(), Error> {
        dispatch!(self, |c| sqlite::cache_discovery(c, &entry), |db| db
            .cache_discovery(&entry))
    }

    /// Forgets the cached discovery of `domain` (its host stopped working).
    pub async fn forget_discovery(&self, domain: String) -> Result<(), Error> {
        dispatch!(self, |c| sqlite::forget_discovery(c, &domain), |db| db
            .forget_discovery(&domain))
    }
}

impl Store {
    /// Adds `client_id`'s jobs `(job_id, input)` to the embedded queue, all or none: none when
    /// it would then hold more than `max_queued` unfinished jobs (on every instance together).
    pub async fn enqueue_jobs(
        &self,
        client_id: String,
        jobs: Vec<(String, String)>,
        max_queued: u64,
        now: i64,
    ) -> Result<Intake, Error> {
        dispatch!(
            self,
            |c| sqlite::jobs::enqueue(c, &client_id, &jobs, max_queued, now),
            |db| db.enqueue(&client_id, &jobs, max_queued, now)
        )
    }

    /// Claims the oldest claimable job for `lease_seconds` under a new lease.
    pub async fn claim_job(
        &self,
        now: i64,
        lease_seconds: i64,
    ) -> Result<Option<ClaimedRow>, Error> {
        let lease = format!("lease_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        dispatch!(
            self,
            |c| sqlite::jobs::claim(c, &lease, now, lease_seconds),
            |db| db.claim(&lease, now, lease_seconds)
        )
    }

    /// Stores the result of a job leased to `lease` and marks it done; `false` when the lease
    /// was taken over (nothing stored).
    pub async fn complete_job(
        &self,
        job_id: String,
        lease: String,
        result: String,
        now: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            |c| sqlite::jobs::complete(c, &job_id, &lease, &result, now),
            |db| db.complete(&job_id, &lease, &result, now)
        )
    }

    /// Makes a job leased to `lease` a dead letter, with its reason; `false` when the lease
    /// was taken over.
    pub async fn bury_job(
        &self,
        job_id: String,
        lease: String,
        reason: String,
        now: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            |c| sqlite::jobs::bury(c, &job_id, &lease, &reason, now),
            |db| db.bury(&job_id, &lease, &reason, now)
        )
    }

    /// Gives a job leased to `lease` back untouched (shutdown); `false` when the lease was
    /// taken over.
    pub async fn release_job(
        &self,
        job_id: String,
        lease: String,
        now: i64,
    ) -> Result<bool, Error> {
        dispatch!(
            self,
            |c| sqlite::jobs::release(c, &job_id, &lease, now),
            |db| db.release(&job_id, &lease, now)
        )
    }

    /// A job's state and result, for the client that queued it.
    pub async fn job_status(
        &self,
        client_id: String,
        job_id: String,
    ) -> Result<Option<JobStatus>, Error> {
        dispatch!(
            self,
            |c| sqlite::jobs::status(c, &client_id, &job_id),
            |db| db.job_status(&client_id, &job_id)
        )
    }

    /// Jobs by state.
    pub async fn queue_depth(&self) -> Result<Vec<(String, u64)>, Error> {
        dispatch!(self, |c| sqlite::jobs::depth(c), |db| db.queue_depth())
    }
}

/// Creates `path` readable by its owner only, or takes read access away from others on an
/// existing database and its WAL files.
fn owner_only(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                // Another process starting at the same moment made it first: the same file.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => {
                    other.map_err(Error::File)?;
                }
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %file.display(), "database file was readable by others; now 0600");
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(Error::File)?;
            }
        }
    }
    Ok(())
}

/// Where state lives (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The SQLite file. Default: `./exdisco.db`. Unused when `url` is set.
    pub path: PathBuf,
    /// A `postgres://` URL: the state lives in that PostgreSQL database instead, shared by
    /// every instance given the same URL. Default: none (the SQLite file).
    pub url: Option<SecretString>,
    /// PostgreSQL connections each instance keeps at most. Default: 16.
    pub pool_size: usize,
    /// The key that seals account secrets (32 bytes, base64). Default: `./exdisco.key`;
    /// `EXDISCO_KEY` holds the key itself instead.
    pub key_file: PathBuf,
    /// How long finished jobs (done or dead) are kept. Default: 7 days.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// How often ended codes and tokens and old jobs are deleted. Default: 10 min.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("exdisco.db"),
            url: None,
            pool_size: 16,
            key_file: PathBuf::from("exdisco.key"),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            sweep_every: Duration::from_secs(600),
        }
    }
}

/// A storage failure. Never shown to API callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// PostgreSQL failed, or no connection could be had.
    #[error("postgres: {0}")]
    Postgres(String),
    /// `store.url` is not a PostgreSQL URL.
    #[error("store.url: {0}")]
    Url(String),
    /// The blocking worker died.
    #[error("the storage worker stopped")]
    Worker,
    /// A stored value is not what this version expects.
    #[error("corrupt row: {0}")]
    Corrupt(&'static str),
    /// The database was sealed with another key than this instance's.
    #[error(
        "the database's secrets are sealed with another key than this instance's: give every instance the same key (EXDISCO_KEY or the key file)"
    )]
    KeyMismatch,
    /// The database file could not be created or protected.
    #[error("database file: {0}")]
    File(std::io::Error),
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            // A value the model does not know: the row is corrupt, whichever backend holds it.
            rusqlite::Error::FromSqlConversionFailure(..) => Self::Corrupt("typed column"),
            other => Self::Sqlite(other),
        }
    }
}

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Url(_) => "store_url",
            Self::Worker => "storage_worker",
            Self::Corrupt(_) => "corrupt_row",
            Self::KeyMismatch => "key_mismatch",
            Self::File(_) => "database_file",
        }
    }
}

#[cfg(test)]
mod tests {
    /// One history: the PostgreSQL migrations are the SQLite ones, number for number and name
    /// for name, so a rolling deploy means the same thing on both.
    #[test]
    fn both_backends_have_one_migration_history() {
        let names = |backend: &str| {
            let dir = format!(
                "{}/src/store/migrations/{backend}",
                env!("CARGO_MANIFEST_DIR")
            );
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let sqlite = names("sqlite");
        assert_eq!(sqlite, names("postgres"));
        assert_eq!(sqlite.len(), super::sqlite::MIGRATIONS.len());
        let listed: Vec<String> = super::postgres::MIGRATIONS
            .iter()
            .map(|(name, _)| format!("{name}.sql"))
            .collect();
        assert_eq!(sqlite, listed);
    }
}
