//! Redis Streams with a real Redis (started by `.ci/run`; `EXDISCO_REDIS_URL` says where):
//! two workers sharing one stream, reclaiming a dead worker's entry, and dead letters. Without
//! a Redis these tests say so and skip, so that `cargo test` works on a laptop.

use std::time::Duration;

use exdisco::batch::DomainCache;
use exdisco::discovery::Pipeline;
use exdisco::queue::redis::{RedisConfig, RedisQueue};
use exdisco::queue::{JobQueue, RunOutcome, Worker};
use redis::AsyncCommands;

use crate::support::*;

fn redis_url() -> Option<String> {
    match std::env::var("EXDISCO_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            skip(
                "REDIS",
                "no Redis (EXDISCO_REDIS_URL unset; .ci/run starts one)",
            );
            None
        }
    }
}

fn config(prefix: &str, consumer: &str) -> RedisConfig {
    let mut config = RedisConfig::default();
    config.prefix = prefix.to_owned();
    config.consumer = consumer.to_owned();
    config.claim_idle = Duration::from_millis(200);
    config.max_deliveries = 2;
    config
}

fn unique_prefix(name: &str) -> String {
    format!(
        "exdisco-test-{name}-{}-{}",
        std::process::id(),
        fastrand_suffix()
    )
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

fn bulk(env: &TestEnv) {
    env.dns.wildcard_a("bulk.test", FLEET_IP);
    env.fleet.hosts_under("bulk.test", |s| {
        if s.is_autodiscover() && s.tls && s.host.split('.').count() == 3 {
            Reply::xml(exdisco::fleet::settings_answer(&format!("mail.{}", s.host)))
        } else {
            Reply::status(404)
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_stream_and_do_every_job_once() {
    let Some(url) = redis_url() else { return };
    let env = TestEnv::start().await;
    bulk(&env);
    let mut pipeline_config = env.config();
    pipeline_config.confirm_activesync = false;
    let pipeline = Pipeline::builder(pipeline_config).build().unwrap();
    let prefix = unique_prefix("share");
    let feeder = RedisQueue::connect(&url, config(&prefix, "feeder"))
        .await
        .unwrap();
    let jobs: Vec<(u64, String)> = (1..=120)
        .map(|i| (i, format!("user{i}@d{}.bulk.test", i % 30)))
        .collect();
    feeder.enqueue(&jobs).await.unwrap();
    let mut handles = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let queue = RedisQueue::connect(&url, config(&prefix, name))
            .await
            .unwrap();
        let worker = Worker::new(
            queue,
            pipeline.clone(),
            DomainCache::new(100, Duration::from_secs(60)),
            None,
        );
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            while worker.try_run_one().await.unwrap() == RunOutcome::Ran {
                done += 1;
            }
            done
        }));
    }
    let mut per_worker = Vec::new();
    for handle in handles {
        per_worker.push(handle.await.unwrap());
    }
    assert_eq!(per_worker.iter().sum::<u32>(), 120, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "both workers took jobs: {per_worker:?}"
    );
    let (_, results, dead) = feeder.lengths().await.unwrap();
    assert_eq!((results, dead), (120, 0));
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: u64 = connection.hlen(format!("{prefix}:result")).await.unwrap();
    assert_eq!(stored, 120, "one result per job");
    let pending: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
        .arg(format!("{prefix}:jobs"))
        .arg("exdisco-workers")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "every entry acknowledged");
    cleanup(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_entry_is_reclaimed_and_poison_goes_to_the_dead_letters() {
    let Some(url) = redis_url() else { return };
    let env = TestEnv::start().await;
    bulk(&env);
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let prefix = unique_prefix("reclaim");
    let feeder = RedisQueue::connect(&url, config(&prefix, "feeder"))
        .await
        .unwrap();
    feeder
        .enqueue(&[(1, "alice@d1.bulk.test".to_owned())])
        .await
        .unwrap();
    // A worker claims the entry and dies without acknowledging it.
    let doomed = RedisQueue::connect(&url, config(&prefix, "doomed"))
        .await
        .unwrap();
    let claimed = doomed.claim().await.unwrap().expect("an entry");
    drop(doomed);
    tokio::time::sleep(Duration::from_millis(300)).await; // past claim_idle (200 ms)
    let survivor = RedisQueue::connect(&url, config(&prefix, "survivor"))
        .await
        .unwrap();
    let worker = Worker::new(
        survivor.clone(),
        pipeline.clone(),
        DomainCache::new(10, Duration::from_secs(60)),
        None,
    );
    assert_eq!(worker.try_run_one().await.unwrap(), RunOutcome::Ran);
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let result: Option<String> = connection
        .hget(format!("{prefix}:result"), &claimed.id)
        .await
        .unwrap();
    assert!(
        result.unwrap().contains("mail.d1.bulk.test"),
        "the reclaimed entry was done"
    );

    // A poison entry (not a job) goes straight to the dead letters.
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}:jobs"))
        .arg("*")
        .arg("line")
        .arg(2)
        .arg("input")
        .arg("not a job@@")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(worker.try_run_one().await.unwrap(), RunOutcome::Ran);
    // An entry delivered too often (its workers keep dying) goes there too.
    feeder
        .enqueue(&[(3, "bob@d2.bulk.test".to_owned())])
        .await
        .unwrap();
    for _ in 0..3 {
        let crashing = RedisQueue::connect(&url, config(&prefix, "crashing"))
            .await
            .unwrap();
        let _ = crashing.claim().await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        worker.try_run_one().await.unwrap(),
        RunOutcome::Empty,
        "buried, not retried forever"
    );
    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{prefix}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    let reasons: Vec<String> = dead
        .ids
        .iter()
        .map(|e| e.get::<String>("reason").unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["invalid_address", "too many deliveries"],
        "{reasons:?}"
    );
    cleanup(&url, &prefix).await;
}

async fn cleanup(url: &str, prefix: &str) {
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = ["jobs", "results", "result", "dead"].map(|k| format!("{prefix}:{k}"));
    let _: () = connection.del(&keys).await.unwrap();
}

/// `url` with another database number: the binaries use the default stream names, so this
/// test keeps them in a database of their own (and deletes only those keys).
fn in_database(url: &str, db: u8) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, tail)| {
        if tail.chars().all(|c| c.is_ascii_digit()) {
            base
        } else {
            url
        }
    });
    format!("{}/{db}", base.trim_end_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_queue_works_what_enqueue_added() {
    use std::process::{Command, Stdio};

    use crate::support::app::Binary;
    let Some(url) = redis_url() else { return };
    let url = in_database(&url, 9);
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Only this test's keys: the default names, in a database of their own.
    cleanup(&url, "exdisco").await;
    let env = TestEnv::start().await;
    bulk(&env);
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::new(&env, dir.path());
    let input = dir.path().join("addresses.txt");
    let addresses: String = (1..=40)
        .map(|i| format!("user{i}@d{}.bulk.test\n", i % 8))
        .collect();
    std::fs::write(&input, addresses).unwrap();
    let enqueued = binary
        .bare(&["enqueue", "--queue", &url, input.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(enqueued.status.success(), "{enqueued:?}");
    assert!(binary.command(&["init"]).output().unwrap().status.success());
    let log = dir.path().join("serve.log");
    let mut child = binary
        .serve(&["--queue", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();

    let results = "exdisco:results";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let done: u64 = connection.xlen(results).await.unwrap();
        if done >= 40 || std::time::Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(done, 40, "every job worked by the daemon: {log}");
    assert!(status.success(), "SIGTERM is a clean stop: {log}");
    let found: u64 = connection.hlen("exdisco:result").await.unwrap();
    assert_eq!(found, 40, "one stored result per job");
    let dead: u64 = connection.xlen("exdisco:dead").await.unwrap();
    assert_eq!(dead, 0);
    cleanup(&url, "exdisco").await;
}
