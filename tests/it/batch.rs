//! Batch discovery: thousands of addresses over hundreds of domains, bad lines, a worker
//! killed and restarted, SIGTERM with jobs in flight, and the embedded queue of the daemon.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use exdisco::batch::{BatchConfig, DomainCache, DoneLines, Event, Patience, run_batch};
use exdisco::discovery::Pipeline;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::app::TestApp;
use crate::support::*;

/// Every `dN.bulk.test` answers Autodiscover with `mail.dN.bulk.test`, whose ActiveSync
/// endpoint asks for credentials; `delay` slows every answer.
fn bulk_world(env: &TestEnv, delay: Duration) {
    env.dns.wildcard_a("bulk.test", FLEET_IP);
    env.fleet.hosts_under("bulk.test", move |s| {
        let labels = s.host.split('.').count();
        let reply = if labels == 3 && s.is_autodiscover() && s.tls {
            Reply::xml(exdisco::fleet::settings_answer(&format!("mail.{}", s.host)))
        } else if s.host.starts_with("mail.") && !s.is_autodiscover() {
            Reply::status(401).header("WWW-Authenticate", "Basic realm=\"bulk\"")
        } else {
            Reply::status(404)
        };
        reply.delayed(delay)
    });
}

fn bulk_input(addresses: usize, domains: usize) -> String {
    (0..addresses)
        .map(|i| format!("user{i}@d{}.bulk.test\n", i % domains))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_addresses_share_one_discovery_per_domain() {
    let env = TestEnv::start().await;
    bulk_world(&env, Duration::ZERO);
    // Generous timeouts: the whole suite shares two cores with this batch.
    let mut config = env.config();
    config.dns.timeout = Duration::from_secs(3);
    config.dns.attempts = 2;
    config.http.timeouts.request = Duration::from_secs(15);
    config.http.timeouts.connect = Duration::from_secs(10);
    config.http.timeouts.read = Duration::from_secs(10);
    config.deadline = Duration::from_secs(30);
    let pipeline = Pipeline::builder(config).build().unwrap();
    let cache = DomainCache::new(10_000, Duration::from_secs(3600));
    let input = bulk_input(2000, 200);
    let mut output = Vec::new();
    let mut config = BatchConfig::default();
    config.concurrency = 16;
    let summary = run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut output,
        &DoneLines::default(),
        &config,
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.done, 2000);
    if summary.found != 2000 {
        for line in output.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: Value = serde_json::from_slice(line).unwrap();
            if record["error"].is_object() {
                let codes: Vec<String> = record["trail"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| format!("{}:{}", a["target"], a["code"]))
                    .collect();
                eprintln!("{codes:?}");
                break;
            }
        }
    }
    assert_eq!(summary.found, 2000, "{summary:?}");
    assert_eq!(summary.discoveries, 200, "each domain discovered once");
    let mut posts_per_domain: HashMap<String, usize> = HashMap::new();
    for seen in env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.is_autodiscover() && s.tls && s.host.split('.').count() == 3)
    {
        *posts_per_domain.entry(seen.host.clone()).or_default() += 1;
    }
    assert!(posts_per_domain.len() > 150, "{}", posts_per_domain.len());
    assert!(
        posts_per_domain.values().all(|n| *n == 1),
        "never two Autodiscover POSTs for one domain"
    );
    let records: Vec<Value> = output
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2000);
    let first = records.iter().find(|r| r["line"] == 1).unwrap();
    assert_eq!(first["input"], "user0@d0.bulk.test");
    assert_eq!(first["email"], "user0@d0.bulk.test");
    assert_eq!(first["exchange_server_host"], "mail.d0.bulk.test");
}

#[tokio::test]
async fn bad_lines_are_reported_with_their_number_and_counted() {
    let env = TestEnv::start().await;
    bulk_world(&env, Duration::ZERO);
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let cache = DomainCache::new(100, Duration::from_secs(60));
    let input = "alice@d1.bulk.test\nnot an address@\n\n# a comment\n{\"domain\":\"d2.bulk.test\"}\n{broken\nalice@localhost\n";
    let mut output = Vec::new();
    let mut bad = Vec::new();
    let summary = run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut output,
        &DoneLines::default(),
        &BatchConfig::default(),
        &CancellationToken::new(),
        |event| {
            if let Event::BadLine { line, code, .. } = event {
                bad.push((line, code));
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(summary.done, 2);
    assert_eq!(summary.bad_lines, 3);
    assert_eq!(
        bad,
        [
            (2, "invalid_address"),
            (6, "invalid_json"),
            (7, "invalid_address")
        ]
    );
}

/// Line numbers in an output file, counted.
fn lines_in(path: &std::path::Path) -> HashMap<u64, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).expect("every written line is whole");
        *counts.entry(record["line"].as_u64().unwrap()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_and_killed_batches_continue_without_redoing_or_losing_jobs() {
    let env = TestEnv::start().await;
    bulk_world(&env, Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let out = dir.path().join("out.jsonl");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, env.ca.pem()).unwrap();
    std::fs::write(&input, bulk_input(300, 150)).unwrap();
    let port = env.fleet.addr.port().to_string();
    let dns = env.dns.addr.to_string();
    let start = || {
        Command::new(assert_cmd::cargo::cargo_bin("exdisco"))
            .args([
                "batch",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--concurrency",
                "8",
            ])
            .args([
                "--dns-server",
                &dns,
                "--allow-net",
                "127.0.0.0/8",
                "--https-port",
                &port,
                "--http-port",
                &port,
            ])
            .arg("--ca-file")
            .arg(&ca)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for_lines = |at_least: usize| {
        let out = out.clone();
        async move {
            for _ in 0..600 {
                if lines_in(&out).len() >= at_least {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the batch made no progress");
        }
    };
    // First run: SIGTERM with jobs in flight. It stops reading, finishes what runs, and says so.
    let first = start();
    wait_for_lines(20).await;
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let first = tokio::task::spawn_blocking(move || first.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(matches!(first.status.code(), Some(0 | 3)), "{stderr}");
    assert!(stderr.contains("batch:"), "a summary: {stderr}");
    let after_first = lines_in(&dir.path().join("out.jsonl"));
    assert!(after_first.len() < 300, "stopped early");
    // Second run: killed outright.
    let mut second = start();
    wait_for_lines(after_first.len() + 20).await;
    second.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || second.wait())
        .await
        .unwrap();
    // A partial line at the end, as a kill mid-write leaves it.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("out.jsonl"))
        .unwrap();
    file.write_all(b"{\"line\":299,\"inp").unwrap();
    drop(file);
    // Third run: to the end.
    let third = start();
    let third = tokio::task::spawn_blocking(move || third.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("done earlier"), "{stderr}");
    let counts = lines_in(&dir.path().join("out.jsonl"));
    assert_eq!(counts.len(), 300, "no job lost");
    assert!(counts.values().all(|n| *n == 1), "no job done twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_queue_through_the_api() {
    let env = TestEnv::start().await;
    bulk_world(&env, Duration::ZERO);
    let mut app = TestApp::spawn(&env, |_| {}).await;
    let jobs = json!([
        {"email": "a@d1.bulk.test"},
        {"email": "b@d1.bulk.test"},
        {"domain": "d2.bulk.test"},
    ]);
    // Only a registered client may queue, with its secret.
    let (status, headers, _) = app.post("/v1/discoveries", &jobs).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], r#"Basic realm="exdisco""#);
    let (status, _, body) = app.post_jobs(&jobs).await;
    assert_eq!(status, 202, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    let (status, _, body) = app.post_jobs(&json!({"email": "x@localhost"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = app.post_jobs(&json!({"email": "c@d3.bulk.test"})).await;
    assert_eq!(status, 202, "{body}");
    let (_, queued) = app.job(&ids[0]).await;
    assert_eq!(queued["state"], "queued");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("exdisco_queue_depth{state=\"queued\"} 4"),
        "{metrics}"
    );
    assert_eq!(app.drain_queue().await, 4);
    for id in &ids {
        let (_, job) = app.job(id).await;
        assert_eq!(job["state"], "done", "{job}");
        assert!(
            job["result"]["exchange_server_host"]
                .as_str()
                .unwrap()
                .starts_with("mail.d")
        );
    }
    let (status, _) = app.job("job_nope").await;
    assert_eq!(status, 404);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("exdisco_queue_depth{state=\"done\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("exdisco_queue_depth{state=\"queued\"} 0"),
        "a drained state reads 0, not its last count: {metrics}"
    );
    assert!(
        metrics.contains("exdisco_queue_jobs_total{outcome=\"found\"} 4"),
        "{metrics}"
    );
    // Another client cannot read these jobs.
    app.use_client("other", vec![]).await;
    let (status, _) = app.job(&ids[0]).await;
    assert_eq!(status, 404, "a job is its client's");
}

#[tokio::test]
async fn a_broken_domain_is_an_answer_after_a_few_patient_tries() {
    let env = TestEnv::start().await;
    // SERVFAIL for every name of broken.test: a passing failure, quick to come.
    dns_everywhere(&env, "broken.test", || exdisco::fleet::Answer::ServFail);
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let patience = Patience {
        tries: 3,
        backoff: Duration::from_millis(20),
        ..Patience::default()
    };
    let cache = DomainCache::new(100, Duration::from_secs(60)).with_patience(patience);
    let input = "a@broken.test\nb@broken.test\nc@gone.test\n";
    let mut output = Vec::new();
    let summary = run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut output,
        &DoneLines::default(),
        &BatchConfig::default(),
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.done, 3, "every job has a result line");
    let records: Vec<Value> = output
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    for record in &records {
        let error = &record["error"];
        if record["input"].as_str().unwrap().ends_with("@broken.test") {
            assert_eq!(error["code"], "dns_servfail", "{record}");
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .ends_with("(after 3 tries)")
            );
        } else {
            assert_eq!(error["code"], "dns_nxdomain", "nothing to retry: {record}");
        }
    }
    let srv = env
        .dns
        .queried()
        .iter()
        .filter(|q| q.contains("_autodiscover._tcp.broken.test"))
        .count();
    assert!(
        (3..=6).contains(&srv),
        "three discoveries for the domain, not one per address: {srv}"
    );
}

#[tokio::test]
async fn a_job_whose_worker_dies_each_time_ends_as_a_dead_letter() {
    use exdisco::queue::{JobQueue, StoreQueue};
    let dir = tempfile::tempdir().unwrap();
    let clock = exdisco::clock::Clock::manual();
    let store =
        exdisco::store::Store::open_with_clock(&dir.path().join("exdisco.db"), clock.clone())
            .unwrap();
    let now = store.now();
    store
        .enqueue_jobs(
            "cli_a".into(),
            vec![("j1".into(), "a@example.test".into())],
            10,
            now,
        )
        .await
        .unwrap();
    // A lease of 1 s, 2 deliveries: each claim below stands for a worker killed mid-job.
    let queue = StoreQueue::new(store.clone(), Duration::from_secs(1), 2);
    for attempt in 1..=2 {
        let job = queue.claim().await.unwrap().expect("delivered again");
        assert_eq!(job.attempts, attempt);
        clock.advance(Duration::from_secs(2)); // past the lease: the worker is taken for dead
    }
    assert!(queue.claim().await.unwrap().is_none(), "not a third time");
    let status = store
        .job_status("cli_a".into(), "j1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status.state.as_str(), status.reason.as_deref()),
        ("dead", Some("too many deliveries"))
    );
}
