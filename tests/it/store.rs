//! The store conformance suite: every test runs on the embedded SQLite file and on PostgreSQL
//! (`EXDISCO_POSTGRES_URL`, a server `.ci/run` starts; each test gets a database of its own).
//! Without PostgreSQL the `postgres::` half says "skipped", and `.ci/run` requires it.
//!
//! Concurrency is tested as several instances meet it: separate `Store`s (separate connection
//! pools, or separate SQLite connections to one file) on one database, not one `Store` shared.

use std::collections::HashSet;
use std::sync::Arc;

use exdisco::account::{CachedDiscovery, HostOrigin, NewAccount, Reauth, Scopes};
use exdisco::clock::Clock;
use exdisco::report::{Method, Provider};
use exdisco::store::{
    CodeBinding, Intake, NewCode, NewToken, RedeemChecks, Redemption, ReplaceCheck, Store,
    StoreConfig,
};

use crate::support::skip;

/// One database, from which any number of instances (`Store`s) can be opened.
pub struct Database {
    config: StoreConfig,
    clock: Clock,
    kind: Kind,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Database {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::default();
        config.path = dir.path().join("exdisco.db");
        Self {
            config,
            clock: Clock::manual(),
            kind: Kind::Sqlite,
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the PostgreSQL server of `EXDISCO_POSTGRES_URL`, or `None`
    /// (skipped) without one.
    pub async fn postgres() -> Option<Self> {
        let url = postgres_database().await?;
        let mut config = StoreConfig::default();
        config.url = Some(url.into());
        config.pool_size = 8;
        Some(Self {
            config,
            clock: Clock::manual(),
            kind: Kind::Postgres,
            _dir: None,
        })
    }

    /// One more instance on this database.
    pub async fn open(&self) -> Store {
        Store::connect(&self.config, self.clock.clone())
            .await
            .unwrap()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Runs one statement on the database behind the store's back.
    pub async fn execute(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let db = rusqlite::Connection::open(&self.config.path).unwrap();
                db.execute_batch(sql).unwrap();
            }
            Kind::Postgres => {
                use secrecy::ExposeSecret;
                let url = self.config.url.as_ref().unwrap().expose_secret().to_owned();
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute(sql).await.unwrap();
            }
        }
    }
}

/// Creates a database of its own for one test on `EXDISCO_POSTGRES_URL`'s server; its URL.
pub async fn postgres_database() -> Option<String> {
    let Ok(server) = std::env::var("EXDISCO_POSTGRES_URL") else {
        skip(
            "POSTGRES",
            "no PostgreSQL (EXDISCO_POSTGRES_URL unset; .ci/run starts one)",
        );
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .expect("EXDISCO_POSTGRES_URL does not connect");
    tokio::spawn(connection);
    let name = format!("exdisco_test_{:016x}", fastrand::u64(..));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// Runs each named test (an `async fn(Database)`) on both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Database::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(database) = super::Database::postgres().await {
                        super::$name(database).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    nothing_is_saved_until_the_code_is_redeemed,
    a_code_is_redeemed_once_and_a_replay_revokes_the_token,
    replacing_an_account_revokes_its_tokens_and_a_refusal_changes_nothing,
    codes_and_tokens_end,
    accounts_are_one_per_client_and_email,
    a_row_the_model_cannot_read_is_corrupt_not_a_default,
    cache_entries_expire,
    clients_accounts_and_tokens_of_the_accounts_api,
    the_key_check_refuses_another_key,
    migrations_started_together_are_applied_once,
    jobs_are_leased_and_a_lapsed_lease_is_claimable_again,
    a_worker_whose_lease_was_taken_cannot_finish_the_job,
    the_intake_bound_holds_for_every_client_and_instance,
    sixteen_simultaneous_redemptions_give_one_token,
    simultaneous_redemptions_of_two_codes_replace_the_account_one_at_a_time,
    eight_workers_complete_a_hundred_jobs_exactly_once,
);

fn alice(host: &str) -> NewAccount {
    account("acct_1", "alice@example.test", host)
}

fn account(id: &str, email: &str, host: &str) -> NewAccount {
    NewAccount {
        account_id: id.into(),
        client_id: "client_1".into(),
        email: email.into(),
        name: "Alice".into(),
        provider: Provider::Exchange,
        exchange_server_host: host.into(),
        origin: HostOrigin::Discovered(Method::PoxDomain),
        activesync_versions: vec!["16.1".to_owned()].into(),
        scopes: Scopes::parse("email.read_only").unwrap(),
        username: "alice".into(),
        sealed_secret: vec![1, 2, 3],
        now: 100,
        reauth: Reauth::None,
        sync: None,
    }
}

async fn code(store: &Store, hash: &[u8], account: NewAccount, expires_at: i64) {
    store
        .create_code(NewCode {
            code_hash: hash.to_vec(),
            client_id: "client_1".into(),
            expires_at,
            account,
            binding: CodeBinding::default(),
        })
        .await
        .unwrap();
}

fn token(hash: &[u8]) -> NewToken {
    NewToken {
        token_hash: hash.to_vec(),
        expires_at: 1000,
    }
}

fn checks(may_replace: ReplaceCheck) -> RedeemChecks {
    RedeemChecks {
        binding: Box::new(|_| Ok(())),
        may_replace,
    }
}

async fn redeem(store: &Store, hash: &[u8], client: &str, t: &[u8], now: i64) -> Redemption {
    store
        .redeem_code(
            hash.to_vec(),
            client.into(),
            token(t),
            checks(Box::new(|_, _| Ok(()))),
            now,
        )
        .await
        .unwrap()
}

async fn holder(store: &Store, t: &[u8], now: i64) -> Option<String> {
    store
        .account_for_token(t.to_vec(), now)
        .await
        .unwrap()
        .map(|a| a.exchange_server_host)
}

async fn nothing_is_saved_until_the_code_is_redeemed(db: Database) {
    let store = db.open().await;
    code(&store, b"code", alice("mail.example.test"), 200).await;
    assert!(store.find_account("acct_1".into()).await.unwrap().is_none());
    let redeemed = redeem(&store, b"code", "client_1", b"t1", 150).await;
    assert!(matches!(redeemed, Redemption::Issued(_)), "{redeemed:?}");
    let saved = store.find_account("acct_1".into()).await.unwrap().unwrap();
    assert_eq!(saved.exchange_server_host, "mail.example.test");
    assert_eq!(saved.origin, HostOrigin::Discovered(Method::PoxDomain));
}

async fn a_code_is_redeemed_once_and_a_replay_revokes_the_token(db: Database) {
    let store = db.open().await;
    code(&store, b"code", alice("mail.example.test"), 200).await;
    assert!(matches!(
        redeem(&store, b"code", "other", b"t0", 150).await,
        Redemption::Unknown
    ));
    assert!(matches!(
        redeem(&store, b"code", "client_1", b"t1", 150).await,
        Redemption::Issued(_)
    ));
    assert!(holder(&store, b"t1", 150).await.is_some());
    // A replay on another instance.
    let other = db.open().await;
    assert!(matches!(
        redeem(&other, b"code", "client_1", b"t2", 151).await,
        Redemption::Replayed
    ));
    assert!(holder(&store, b"t1", 151).await.is_none(), "revoked");
    assert!(holder(&store, b"t2", 151).await.is_none());
}

async fn replacing_an_account_revokes_its_tokens_and_a_refusal_changes_nothing(db: Database) {
    let store = db.open().await;
    code(&store, b"first", alice("mail.example.test"), 200).await;
    redeem(&store, b"first", "client_1", b"t1", 110).await;
    code(&store, b"second", alice("exch01.example.test"), 200).await;
    let refused = store
        .redeem_code(
            b"second".to_vec(),
            "client_1".into(),
            token(b"t2"),
            checks(Box::new(|existing, _| {
                existing.map_or(Ok(()), |_| Err("exists"))
            })),
            120,
        )
        .await
        .unwrap();
    assert!(matches!(refused, Redemption::Refused("exists")));
    assert!(holder(&store, b"t1", 120).await.is_some());
    code(&store, b"third", alice("exch01.example.test"), 200).await;
    assert!(matches!(
        redeem(&store, b"third", "client_1", b"t3", 130).await,
        Redemption::Issued(_)
    ));
    assert!(holder(&store, b"t1", 130).await.is_none());
    assert_eq!(
        holder(&store, b"t3", 130).await.as_deref(),
        Some("exch01.example.test")
    );
}

async fn codes_and_tokens_end(db: Database) {
    let store = db.open().await;
    code(&store, b"code", alice("mail.example.test"), 200).await;
    assert!(matches!(
        redeem(&store, b"code", "client_1", b"t", 200).await,
        Redemption::Expired
    ));
    code(&store, b"code2", alice("mail.example.test"), 300).await;
    redeem(&store, b"code2", "client_1", b"t2", 250).await;
    assert!(holder(&store, b"t2", 999).await.is_some());
    assert!(holder(&store, b"t2", 1000).await.is_none());
    assert!(
        !store
            .revoke_token(b"t2".to_vec(), Some("other".into()))
            .await
            .unwrap(),
        "another client's token"
    );
    let swept = store.sweep(1000, 0).await.unwrap();
    assert_eq!((swept.codes, swept.tokens), (2, 1));
}

async fn accounts_are_one_per_client_and_email(db: Database) {
    let store = db.open().await;
    let first = store.save_account(alice("a.example.test")).await.unwrap();
    let mut again = alice("b.example.test");
    again.account_id = "acct_2".into();
    let second = store.save_account(again).await.unwrap();
    assert_eq!(first, second, "the first account was replaced, not doubled");
    let found = store
        .find_account_by_email("client_1".into(), "alice@example.test".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.exchange_server_host, "b.example.test");
}

async fn a_row_the_model_cannot_read_is_corrupt_not_a_default(db: Database) {
    let store = db.open().await;
    store.save_account(alice("a.example.test")).await.unwrap();
    db.execute("UPDATE accounts SET discovery_method = 'guessed'")
        .await;
    let read = store.find_account("acct_1".into()).await;
    assert!(
        matches!(&read, Err(err) if err.code() == "corrupt_row"),
        "no fallback to another method: {:?}",
        read.map(|a| a.map(|a| a.origin))
    );
}

async fn cache_entries_expire(db: Database) {
    let store = db.open().await;
    let entry = CachedDiscovery {
        domain: "example.test".into(),
        host: "mail.example.test".into(),
        method: Method::Srv,
        activesync_url: String::new(),
        provider: Provider::Exchange,
        expires_at: 500,
    };
    store.cache_discovery(entry.clone()).await.unwrap();
    store.cache_discovery(entry).await.unwrap();
    let cached = |now| store.cached_discovery("example.test".into(), now);
    assert!(cached(499).await.unwrap().is_some());
    assert!(cached(500).await.unwrap().is_none());
    store.forget_discovery("example.test".into()).await.unwrap();
    assert!(cached(0).await.unwrap().is_none());
}

async fn clients_accounts_and_tokens_of_the_accounts_api(db: Database) {
    let store = db.open().await;
    store
        .add_client(exdisco::store::ClientRecord {
            client_id: "client_1".into(),
            name: "App".into(),
            secret_hash: vec![9; 32],
            redirect_uris: vec!["https://app.example.test/cb".into()],
        })
        .await
        .unwrap();
    let found = store.find_client("client_1".into()).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.secret_hash.len()), ("App", 32));
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    for (n, email) in ["a@example.test", "b@example.test", "c@example.test"]
        .iter()
        .enumerate()
    {
        let id = format!("acct_{n}");
        code(
            &store,
            id.as_bytes(),
            account(&id, email, "mail.example.test"),
            900,
        )
        .await;
        let t = format!("t{n}");
        redeem(&store, id.as_bytes(), "client_1", t.as_bytes(), 150).await;
    }
    let page = store.list_accounts("client_1".into(), 1, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(),
        ["b@example.test", "c@example.test"]
    );
    let info = store
        .token_info("client_1".into(), "acct_0".into(), b"t0".to_vec(), 150)
        .await
        .unwrap()
        .unwrap();
    assert!(info.valid);
    assert_eq!(
        store
            .revoke_all("client_1".into(), "acct_0".into(), None)
            .await
            .unwrap(),
        1
    );
    assert!(holder(&store, b"t0", 150).await.is_none());
    assert!(
        !store
            .delete_account("other".into(), "acct_1".into())
            .await
            .unwrap(),
        "another client's account"
    );
    assert!(
        store
            .delete_account("client_1".into(), "acct_1".into())
            .await
            .unwrap()
    );
    assert!(store.find_account("acct_1".into()).await.unwrap().is_none());
    assert!(holder(&store, b"t1", 150).await.is_none());
    store.ping(std::time::Duration::from_secs(2)).await.unwrap();
}

async fn the_key_check_refuses_another_key(db: Database) {
    let first = db.open().await;
    first.check_key(&[1; 32]).await.unwrap();
    let second = db.open().await;
    second.check_key(&[1; 32]).await.unwrap();
    let err = second.check_key(&[2; 32]).await.unwrap_err();
    assert_eq!(err.code(), "key_mismatch");
}

async fn migrations_started_together_are_applied_once(db: Database) {
    let db = Arc::new(db);
    let opened = (0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { Store::connect(db.config(), Clock::manual()).await })
    });
    for store in futures_join(opened).await {
        store.expect("every instance starts");
    }
    let store = db.open().await;
    code(&store, b"code", alice("mail.example.test"), 200).await;
    assert!(matches!(
        redeem(&store, b"code", "client_1", b"t", 150).await,
        Redemption::Issued(_)
    ));
}

async fn jobs_are_leased_and_a_lapsed_lease_is_claimable_again(db: Database) {
    let store = db.open().await;
    let jobs = vec![
        ("j1".to_owned(), "a@example.test".to_owned()),
        ("j2".to_owned(), "b.test".to_owned()),
    ];
    assert_eq!(
        store
            .enqueue_jobs("cli_a".into(), jobs, 2, 0)
            .await
            .unwrap(),
        Intake::Queued
    );
    let first = store.claim_job(100, 30).await.unwrap().unwrap();
    assert_eq!(first.job_id, "j1");
    assert_eq!(
        store.claim_job(100, 30).await.unwrap().unwrap().job_id,
        "j2"
    );
    assert!(
        store.claim_job(110, 30).await.unwrap().is_none(),
        "both leased"
    );
    let again = store.claim_job(131, 30).await.unwrap().unwrap();
    assert_eq!((again.job_id.as_str(), again.attempts), ("j1", 2));
    assert!(
        store
            .complete_job("j1".into(), again.lease, r#"{"ok":true}"#.into(), 132)
            .await
            .unwrap()
    );
    let done = store
        .job_status("cli_a".into(), "j1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, "done");
    assert_eq!(done.result, Some(serde_json::json!({"ok": true})));
    assert!(
        store
            .job_status("cli_b".into(), "j1".into())
            .await
            .unwrap()
            .is_none(),
        "another client's job"
    );
    let depth = store.queue_depth().await.unwrap();
    assert!(depth.contains(&("done".to_owned(), 1)), "{depth:?}");
    assert_eq!(store.sweep(0, 132).await.unwrap().jobs, 0, "not old enough");
    assert_eq!(store.sweep(0, 133).await.unwrap().jobs, 1);
}

async fn a_worker_whose_lease_was_taken_cannot_finish_the_job(db: Database) {
    let store = db.open().await;
    let jobs = vec![("j1".to_owned(), "a@example.test".to_owned())];
    store
        .enqueue_jobs("cli_a".into(), jobs, 10, 0)
        .await
        .unwrap();
    let slow = store.claim_job(100, 30).await.unwrap().unwrap();
    // Its lease runs out; a worker on another instance takes the job over.
    let other = db.open().await;
    let fresh = other.claim_job(131, 30).await.unwrap().unwrap();
    assert_eq!(fresh.job_id, "j1");
    let stale = |f: bool| assert!(!f, "the slow worker's lease was taken");
    stale(
        store
            .complete_job("j1".into(), slow.lease.clone(), "{}".into(), 140)
            .await
            .unwrap(),
    );
    stale(
        store
            .bury_job("j1".into(), slow.lease.clone(), "x".into(), 140)
            .await
            .unwrap(),
    );
    stale(
        store
            .release_job("j1".into(), slow.lease.clone(), 140)
            .await
            .unwrap(),
    );
    let running = store.job_status("cli_a".into(), "j1".into()).await;
    assert_eq!(running.unwrap().unwrap().state, "running");
    assert!(
        other
            .bury_job("j1".into(), fresh.lease, "invalid_address".into(), 141)
            .await
            .unwrap()
    );
    let dead = other.job_status("cli_a".into(), "j1".into()).await;
    let dead = dead.unwrap().unwrap();
    assert_eq!(
        (dead.state.as_str(), dead.reason.as_deref()),
        ("dead", Some("invalid_address"))
    );
}

async fn the_intake_bound_holds_for_every_client_and_instance(db: Database) {
    const BOUND: u64 = 50;
    let db = Arc::new(db);
    // Eight instances each try to queue ten jobs at once: five fit.
    let intakes = (0..8).map(|n| {
        let db = db.clone();
        tokio::spawn(async move {
            let store = db.open().await;
            let jobs = (0..10)
                .map(|j| (format!("j{n}_{j}"), format!("d{j}.test")))
                .collect();
            store
                .enqueue_jobs(format!("cli_{n}"), jobs, BOUND, 0)
                .await
                .unwrap()
        })
    });
    let queued = futures_join(intakes)
        .await
        .into_iter()
        .filter(|i| *i == Intake::Queued)
        .count();
    assert_eq!(queued, 5);
    let depth = db.open().await.queue_depth().await.unwrap();
    assert_eq!(depth, vec![("queued".to_owned(), BOUND)]);
}

async fn sixteen_simultaneous_redemptions_give_one_token(db: Database) {
    let db = Arc::new(db);
    let store = db.open().await;
    code(&store, b"code", alice("mail.example.test"), 900).await;
    let instances = futures_join((0..4).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.open().await })
    }))
    .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let redemptions = (0..16).map(|n| {
        let store = instances[n % instances.len()].clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let t = format!("t{n}");
            (
                n,
                redeem(&store, b"code", "client_1", t.as_bytes(), 150).await,
            )
        })
    });
    let outcomes = futures_join(redemptions).await;
    let issued: Vec<usize> = outcomes
        .iter()
        .filter(|(_, r)| matches!(r, Redemption::Issued(_)))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(issued.len(), 1, "exactly one redemption issued a token");
    assert!(
        outcomes
            .iter()
            .all(|(_, r)| matches!(r, Redemption::Issued(_) | Redemption::Replayed)),
        "the others are replays"
    );
    // The replays revoked what the one issued (RFC 6749 4.1.2).
    let t = format!("t{}", issued[0]);
    assert!(holder(&store, t.as_bytes(), 150).await.is_none());
}

async fn simultaneous_redemptions_of_two_codes_replace_the_account_one_at_a_time(db: Database) {
    let db = Arc::new(db);
    let store = db.open().await;
    code(&store, b"a", alice("a.example.test"), 900).await;
    code(&store, b"b", alice("b.example.test"), 900).await;
    // Each may replace only what it has seen: a refusal if the account exists already. One at
    // a time, one wins and the other sees the winner's account.
    let redemptions = [(&b"a"[..], &b"ta"[..]), (&b"b"[..], &b"tb"[..])].map(|(c, t)| {
        let db = db.clone();
        tokio::spawn(async move {
            let store = db.open().await;
            store
                .redeem_code(
                    c.to_vec(),
                    "client_1".into(),
                    token(t),
                    checks(Box::new(|existing, _| {
                        existing.map_or(Ok(()), |_| Err("exists"))
                    })),
                    150,
                )
                .await
                .unwrap()
        })
    });
    let outcomes = futures_join(redemptions).await;
    let issued = outcomes
        .iter()
        .filter(|r| matches!(r, Redemption::Issued(_)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|r| matches!(r, Redemption::Refused("exists")))
        .count();
    assert_eq!((issued, refused), (1, 1), "one replaced, one saw it");
}

async fn eight_workers_complete_a_hundred_jobs_exactly_once(db: Database) {
    let db = Arc::new(db);
    let store = db.open().await;
    let jobs = (0..100)
        .map(|j| (format!("j{j:03}"), format!("d{j}.test")))
        .collect();
    store
        .enqueue_jobs("cli_a".into(), jobs, 100, 0)
        .await
        .unwrap();
    let workers = (0..8).map(|w| {
        let db = db.clone();
        tokio::spawn(async move {
            let store = db.open().await;
            let mut done = Vec::new();
            while let Some(job) = store.claim_job(100, 300).await.unwrap() {
                let result = format!("{{\"worker\":{w}}}");
                if store
                    .complete_job(job.job_id.clone(), job.lease, result, 101)
                    .await
                    .unwrap()
                {
                    done.push(job.job_id);
                }
            }
            done
        })
    });
    let done: Vec<String> = futures_join(workers).await.into_iter().flatten().collect();
    let unique: HashSet<&String> = done.iter().collect();
    assert_eq!(done.len(), 100, "every job completed once");
    assert_eq!(unique.len(), 100, "and no job twice");
    let depth = store.queue_depth().await.unwrap();
    assert_eq!(depth, vec![("done".to_owned(), 100)]);
    let status = store
        .job_status("cli_a".into(), "j042".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.attempts, 1, "claimed once");
}

/// Awaits every task, in order.
async fn futures_join<T: Send + 'static>(
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    // Every task is spawned before the first is awaited.
    let tasks: Vec<_> = tasks.into_iter().collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}
