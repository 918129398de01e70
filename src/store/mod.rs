//! The only module with SQL: clients, accounts, codes, tokens and the discovery cache in one
//! embedded SQLite file (WAL, numbered append-only migrations, `STRICT` tables).
//!
//! One connection serves every call, behind a mutex, inside `spawn_blocking`: the async runtime
//! never waits on SQLite, and writes are serialised, so a code's redemption is atomic (two
//! redemptions at the same moment: exactly one wins).

mod jobs;
pub(crate) mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use rusqlite::Connection;
use serde::Deserialize;

pub use self::jobs::{ClaimedRow, Intake, JobStatus};
pub use self::sqlite::{
    BindingCheck, ClientInfo, ClientRecord, CodeBinding, NewCode, NewToken, RedeemChecks,
    Redemption, ReplaceCheck, Swept, TokenInfo,
};
use crate::account::{Account, CachedDiscovery, NewAccount};

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
    clock: Clock,
}

impl Store {
    /// Opens (or creates) the database at `path` and applies pending migrations. The file and
    /// its WAL companions are readable by their owner only (mode 0600): they hold sealed
    /// secrets and hashes.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with_clock(path, Clock::system())
    }

    /// [`Store::open`] with the clock whose time every stored time is compared with.
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self, Error> {
        owner_only(path)?;
        let mut connection = Connection::open(path)?;
        sqlite::prepare(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            clock,
        })
    }

    /// Checks that the database is sealed with the key whose check value is `value`, and
    /// records it if no key is recorded yet. At start-up, before anything is served.
    pub fn check_key(&self, value: &[u8]) -> Result<(), Error> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if sqlite::check_key(&mut connection, value)? {
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
        self.with(move |c| sqlite::list_accounts(c, &client_id, offset, limit))
            .await
    }

    /// Deletes an account of `client_id` with its sealed secret, tokens and pending codes.
    pub async fn delete_account(
        &self,
        client_id: String,
        account_id: String,
    ) -> Result<bool, Error> {
        self.with(move |c| sqlite::delete_account(c, &client_id, &account_id))
            .await
    }

    /// Revokes every token of an account of `client_id` but the one hashed `keep`.
    pub async fn revoke_all(
        &self,
        client_id: String,
        account_id: String,
        keep: Option<Vec<u8>>,
    ) -> Result<usize, Error> {
        self.with(move |c| sqlite::revoke_all(c, &client_id, &account_id, keep.as_deref()))
            .await
    }

    /// What a token of an account of `client_id` is, at `now`.
    pub async fn token_info(
        &self,
        client_id: String,
        account_id: String,
        token_hash: Vec<u8>,
        now: i64,
    ) -> Result<Option<TokenInfo>, Error> {
        self.with(move |c| sqlite::token_info(c, &client_id, &account_id, &token_hash, now))
            .await
    }

    /// Unix seconds now, by the store's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `work` on the connection off the async runtime.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(|_| Error::Worker)?
    }

    /// Whether the database can take a write now: a lock held elsewhere (another process, a
    /// backup) makes this fail within `wait`.
    pub async fn ping(&self, wait: std::time::Duration) -> Result<(), Error> {
        self.with(move |c| {
            c.busy_timeout(wait)?;
            let result = c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
            c.busy_timeout(sqlite::BUSY_TIMEOUT)?;
            if result.is_err() && !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK;");
            }
            Ok(result?)
        })
        .await
    }

    /// Registers a client with its hashed secret.
    pub async fn add_client(&self, client: ClientRecord) -> Result<(), Error> {
        self.with(move |c| sqlite::add_client(c, &client)).await
    }

    /// Every client (without secrets).
    pub async fn list_clients(&self) -> Result<Vec<ClientInfo>, Error> {
        self.with(sqlite::list_clients).await
    }

    /// One client, with its secret hash.
    pub async fn find_client(&self, client_id: String) -> Result<Option<ClientRecord>, Error> {
        self.with(move |c| sqlite::find_client(c, &client_id)).await
    }

    /// Creates or replaces the account of `(client, email)`; returns its id.
    pub async fn save_account(&self, account: NewAccount) -> Result<String, Error> {
        self.with(move |c| sqlite::save_account(c, &account)).await
    }

    /// One account by id.
    pub async fn find_account(&self, account_id: String) -> Result<Option<Account>, Error> {
        self.with(move |c| sqlite::find_account(c, &account_id))
            .await
    }

    /// The account a client already has for `email`.
    pub async fn find_account_by_email(
        &self,
        client_id: String,
        email: String,
    ) -> Result<Option<Account>, Error> {
        self.with(move |c| sqlite::find_account_by_email(c, &client_id, &email))
            .await
    }

    /// Stores a code's hash, bound to its client, with the account its redemption saves.
    pub async fn create_code(&self, code: NewCode) -> Result<(), Error> {
        self.with(move |c| sqlite::create_code(c, &code)).await
    }

    /// Redeems a code once, in one transaction: checks what it was bound to, saves its account
    /// if `checks.may_replace` allows, revokes that account's earlier tokens, and stores
    /// `token`. A second redemption revokes the token the first one issued.
    pub async fn redeem_code(
        &self,
        code_hash: Vec<u8>,
        client_id: String,
        token: NewToken,
        checks: RedeemChecks,
        now: i64,
    ) -> Result<Redemption, Error> {
        self.with(move |c| sqlite::redeem_code(c, &code_hash, &client_id, &token, checks, now))
            .await
    }

    /// The account an access token (by hash) gives access to at `now`, unless revoked.
    pub async fn account_for_token(
        &self,
        token_hash: Vec<u8>,
        now: i64,
    ) -> Result<Option<Account>, Error> {
        self.with(move |c| sqlite::account_for_token(c, &token_hash, now))
            .await
    }

    /// Revokes a token (by hash), only if it is `client_id`'s when one is given.
    pub async fn revoke_token(
        &self,
        token_hash: Vec<u8>,
        client_id: Option<String>,
    ) -> Result<bool, Error> {
        self.with(move |c| sqlite::revoke_token(c, &token_hash, client_id.as_deref()))
            .await
    }

    /// Deletes ended codes and tokens, and finished jobs last touched before `jobs_before`.
    pub async fn sweep(&self, now: i64, jobs_before: i64) -> Result<Swept, Error> {
        self.with(move |c| sqlite::sweep(c, now, jobs_before)).await
    }

    /// Sweeps every `every` until `shutdown`: codes and tokens that ended, and finished jobs
    /// older than `job_retention`, so the file does not grow without end.
    pub async fn sweep_until(
        self,
        every: std::time::Duration,
        job_retention: std::time::Duration,
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
        self.with(move |c| sqlite::cached_discovery(c, &domain, now))
            .await
    }

    /// Caches a discovery.
    pub async fn cache_discovery(&self, entry: CachedDiscovery) -> Result<(), Error> {
        self.with(move |c| sqlite::cache_discovery(c, &entry)).await
    }

    /// Forgets the cached discovery of `domain` (its host stopped working).
    pub async fn forget_discovery(&self, domain: String) -> Result<(), Error> {
        self.with(move |c| sqlite::forget_discovery(c, &domain))
            .await
    }
}

impl Store {
    /// Adds `client_id`'s jobs `(job_id, input)` to the embedded queue, all or none: none when
    /// it would then hold more than `max_queued` unfinished jobs.
    pub async fn enqueue_jobs(
        &self,
        client_id: String,
        jobs: Vec<(String, String)>,
        max_queued: u64,
        now: i64,
    ) -> Result<Intake, Error> {
        self.with(move |c| jobs::enqueue(c, &client_id, &jobs, max_queued, now))
            .await
    }

    /// Claims the oldest claimable job for `lease` seconds.
    pub async fn claim_job(&self, now: i64, lease: i64) -> Result<Option<ClaimedRow>, Error> {
        self.with(move |c| jobs::claim(c, now, lease)).await
    }

    /// Stores a job's result and marks it done.
    pub async fn complete_job(
        &self,
        job_id: String,
        result: String,
        now: i64,
    ) -> Result<(), Error> {
        self.with(move |c| jobs::complete(c, &job_id, &result, now))
            .await
    }

    /// Makes a job a dead letter, with its reason.
    pub async fn bury_job(&self, job_id: String, reason: String, now: i64) -> Result<(), Error> {
        self.with(move |c| jobs::bury(c, &job_id, &reason, now))
            .await
    }

    /// Gives a claimed job back untouched (shutdown).
    pub async fn release_job(&self, job_id: String, now: i64) -> Result<(), Error> {
        self.with(move |c| jobs::release(c, &job_id, now)).await
    }

    /// A job's state and result, for the client that queued it.
    pub async fn job_status(
        &self,
        client_id: String,
        job_id: String,
    ) -> Result<Option<JobStatus>, Error> {
        self.with(move |c| jobs::status(c, &client_id, &job_id))
            .await
    }

    /// Jobs by state.
    pub async fn queue_depth(&self) -> Result<Vec<(String, u64)>, Error> {
        self.with(jobs::depth).await
    }
}

/// Creates `path` readable by its owner only, or takes read access away from others on an
/// existing database and its WAL files.
fn owner_only(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(Error::File)?;
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
    /// The SQLite file. Default: `./exdisco.db`.
    pub path: PathBuf,
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
    Sqlite(#[from] rusqlite::Error),
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

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Worker => "storage_worker",
            Self::Corrupt(_) => "corrupt_row",
            Self::KeyMismatch => "key_mismatch",
            Self::File(_) => "database_file",
        }
    }
}
