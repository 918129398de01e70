//! The only module with SQL: clients, accounts, codes, tokens and the discovery cache in one
//! embedded SQLite file (WAL, numbered append-only migrations, `STRICT` tables).
//!
//! One connection serves every call, behind a mutex, inside `spawn_blocking`: the async runtime
//! never waits on SQLite, and writes are serialised, so a code's redemption is atomic (two
//! redemptions at the same moment: exactly one wins).

mod jobs;
pub(crate) mod sqlite;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use self::jobs::{ClaimedRow, JobStatus};
pub use self::sqlite::{
    Account, CachedDiscovery, ClientInfo, ClientRecord, NewAccount, Redemption,
};

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (or creates) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let mut connection = Connection::open(path)?;
        sqlite::prepare(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
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

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
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

    /// Stores a code's hash, bound to its client and account, valid until `expires_at`.
    pub async fn create_code(
        &self,
        code_hash: Vec<u8>,
        client_id: String,
        account_id: String,
        expires_at: i64,
    ) -> Result<(), Error> {
        self.with(move |c| sqlite::create_code(c, &code_hash, &client_id, &account_id, expires_at))
            .await
    }

    /// Redeems a code once and stores the token issued for it; a second redemption revokes
    /// that token.
    pub async fn redeem_code(
        &self,
        code_hash: Vec<u8>,
        client_id: String,
        token_hash: Vec<u8>,
        now: i64,
    ) -> Result<Redemption, Error> {
        self.with(move |c| sqlite::redeem_code(c, &code_hash, &client_id, &token_hash, now))
            .await
    }

    /// The account an access token (by hash) gives access to, unless revoked.
    pub async fn account_for_token(&self, token_hash: Vec<u8>) -> Result<Option<Account>, Error> {
        self.with(move |c| sqlite::account_for_token(c, &token_hash))
            .await
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
    /// Adds jobs `(job_id, input)` to the embedded queue.
    pub async fn enqueue_jobs(&self, jobs: Vec<(String, String)>, now: i64) -> Result<(), Error> {
        self.with(move |c| jobs::enqueue(c, &jobs, now)).await
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

    /// Queues a failed job again at `retry_at`, or buries it after `max_attempts`; returns
    /// whether it is now a dead letter.
    pub async fn retry_or_bury_job(
        &self,
        job_id: String,
        reason: String,
        max_attempts: u32,
        retry_at: i64,
        now: i64,
    ) -> Result<bool, Error> {
        self.with(move |c| jobs::retry_or_bury(c, &job_id, &reason, max_attempts, retry_at, now))
            .await
    }

    /// Gives a claimed job back untouched (shutdown).
    pub async fn release_job(&self, job_id: String, now: i64) -> Result<(), Error> {
        self.with(move |c| jobs::release(c, &job_id, now)).await
    }

    /// A job's state and result.
    pub async fn job_status(&self, job_id: String) -> Result<Option<JobStatus>, Error> {
        self.with(move |c| jobs::status(c, &job_id)).await
    }

    /// Jobs by state.
    pub async fn queue_depth(&self) -> Result<Vec<(String, u64)>, Error> {
        self.with(jobs::depth).await
    }
}

/// Unix seconds now: the clock of every stored time.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
}

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Worker => "storage_worker",
            Self::Corrupt(_) => "corrupt_row",
        }
    }
}
