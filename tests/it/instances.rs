//! Several daemons, one truth: two `exdisco serve` processes on one PostgreSQL database and one
//! Redis, as behind a load balancer (the balancer is 127.0.0.1, a trusted proxy naming the
//! caller in `X-Forwarded-For`). Needs `EXDISCO_POSTGRES_URL` and `EXDISCO_REDIS_URL` (`.ci/run`
//! starts both); without them it says "skipped".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::Binary;
use crate::support::*;

const PASSWORD: &str = "Winter-2026-very-secret";

struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(binary: &Binary, config: &std::path::Path, log: &std::path::Path) -> Self {
        let mut child = binary
            .serve(&["--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{line}: {}", std::fs::read_to_string(log).unwrap()))
            .to_owned();
        Self { child, base }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Caller {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
}

impl Caller {
    /// POST `/connect/authorize` on the instance at `at` (its base URL) as the user at `from`
    /// (behind the balancer).
    async fn authorize(&self, at: &str, from: &str, email: &str, password: &str) -> (u16, Value) {
        let body = json!({
            "client_id": self.client_id, "email_address": email, "provider": "exchange",
            "settings": {"username": email, "password": password}, "scopes": "email.read_only",
        });
        self.send(
            self.http
                .post(format!("{at}/connect/authorize"))
                .header("x-forwarded-for", from)
                .json(&body),
        )
        .await
    }

    async fn token(&self, at: &str, code: &str) -> (u16, Value) {
        let body =
            json!({"client_id": self.client_id, "client_secret": self.client_secret, "code": code});
        self.send(self.http.post(format!("{at}/connect/token")).json(&body))
            .await
    }

    async fn account(&self, at: &str, token: &str) -> u16 {
        self.send(self.http.get(format!("{at}/account")).bearer_auth(token))
            .await
            .0
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_on_one_postgres_and_one_redis_are_one_service() {
    let Some(database) = crate::store::postgres_database().await else {
        return;
    };
    let Ok(redis) = std::env::var("EXDISCO_REDIS_URL") else {
        skip(
            "REDIS",
            "no Redis (EXDISCO_REDIS_URL unset; .ci/run starts one)",
        );
        return;
    };
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    // Alice, and the burst's users u0..u23, with the right password.
    let alice = exchange(basic("alice@example.test", PASSWORD));
    env.host("mail.example.test", move |seen: &Seen| {
        let burst_user = (0..24).any(|n| {
            seen.authorization.as_deref() == Some(&basic(&format!("u{n}@example.test"), PASSWORD))
        });
        if burst_user && !seen.is_autodiscover() {
            activesync_ok()
        } else {
            alice(seen)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::new(&env, dir.path());
    let config = dir.path().join("exdisco.toml");
    let prefix = format!("exdisco-test-{:016x}:limits", fastrand::u64(..));
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "{database}"
[limits]
url = "{redis}"
prefix = "{prefix}"
[api]
trusted_proxies = ["127.0.0.1/32"]
authorize_per_address_per_minute = 4
[discovery]
credential_attempts_per_account = 2
[queue]
workers = 0
"#
        ),
    )
    .unwrap();
    let with_config = |args: &[&str]| -> std::process::Output {
        let mut full = args.to_vec();
        full.extend(["--config", config.to_str().unwrap()]);
        binary.command(&full).output().unwrap()
    };
    let init = with_config(&["init"]);
    assert!(init.status.success(), "{init:?}");
    assert!(
        String::from_utf8_lossy(&init.stdout).contains("postgres://"),
        "init names the database, without its password: {init:?}"
    );
    let added = with_config(&["client", "add", "app", "--json"]);
    let client: Value = serde_json::from_slice(&added.stdout).unwrap();
    let listed = with_config(&["client", "list", "--json"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(client["client_id"].as_str().unwrap())
    );

    let a = Instance::start(&binary, &config, &dir.path().join("a.log"));
    let b = Instance::start(&binary, &config, &dir.path().join("b.log"));
    let caller = Caller {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        client_secret: client["client_secret"].as_str().unwrap().to_owned(),
    };

    // A code issued by one redeems on the other, once.
    let (status, answer) = caller
        .authorize(&a.base, "198.51.100.1", "alice@example.test", PASSWORD)
        .await;
    assert_eq!(status, 200, "{answer}");
    let code = answer["code"].as_str().unwrap().to_owned();
    let (status, token) = caller.token(&b.base, &code).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(caller.account(&a.base, &access).await, 200);
    let (status, _) = caller.token(&a.base, &code).await;
    assert_eq!(status, 400, "a replay on the other instance is refused");
    assert_eq!(
        caller.account(&b.base, &access).await,
        401,
        "and revokes the token"
    );

    // The per-address limit is one limit: the caller the balancer names gets four calls in a
    // minute, whichever instance takes them.
    let mut statuses = Vec::new();
    for n in 0..6 {
        let at = if n % 2 == 0 { &a } else { &b };
        let (status, _) = caller
            .authorize(&at.base, "203.0.113.9", "nobody@unknown.test", PASSWORD)
            .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    let (status, _) = caller
        .authorize(&b.base, "203.0.113.10", "nobody@unknown.test", PASSWORD)
        .await;
    assert_ne!(
        status, 429,
        "another caller behind the same balancer is not limited"
    );

    // The password budget is one budget: spent on one instance, spent on the other.
    let from = "192.0.2.44";
    let mut refused_on_a = 0;
    loop {
        let (status, answer) = caller
            .authorize(&a.base, from, "alice@example.test", "wrong-password")
            .await;
        if status == 429 {
            assert_eq!(answer["type"], "rate_limit_error", "{answer}");
            break;
        }
        assert_eq!(status, 401, "{answer}");
        refused_on_a += 1;
        assert!(refused_on_a <= 2, "the budget of two attempts holds");
    }
    let (status, answer) = caller
        .authorize(&b.base, from, "alice@example.test", "wrong-password-2")
        .await;
    assert_eq!(
        status, 429,
        "the other instance sees the spent budget: {answer}"
    );

    // A job queued on one is read on the other.
    let jobs = caller
        .http
        .post(format!("{}/v1/discoveries", a.base))
        .basic_auth(&caller.client_id, Some(&caller.client_secret))
        .json(&json!({"email": "bob@example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 202);
    let jobs: Value = jobs.json().await.unwrap();
    let id = jobs["ids"][0].as_str().unwrap();
    let job: Value = caller
        .http
        .get(format!("{}/v1/discoveries/{id}", b.base))
        .basic_auth(&caller.client_id, Some(&caller.client_secret))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "queued", "{job}");

    // kill -9 of one during a burst of authorizations: every token either instance handed out
    // still opens the account on the survivor.
    let mut a = a;
    let burst = (0..24).map(|n| {
        let caller = Caller {
            http: caller.http.clone(),
            client_id: caller.client_id.clone(),
            client_secret: caller.client_secret.clone(),
        };
        let (base_a, base_b) = (a.base.clone(), b.base.clone());
        tokio::spawn(async move {
            let at = if n % 2 == 0 { base_a } else { base_b };
            let from = format!("198.51.100.{}", 10 + n);
            let email = format!("u{n}@example.test");
            let (status, answer) = caller.authorize(&at, &from, &email, PASSWORD).await;
            if status != 200 {
                return None;
            }
            let (status, token) = caller.token(&at, answer["code"].as_str()?).await;
            (status == 200).then(|| token["access_token"].as_str().unwrap().to_owned())
        })
    });
    let burst: Vec<_> = burst.collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let _ = Command::new("kill")
        .args(["-KILL", &a.child.id().to_string()])
        .status();
    let _ = a.child.wait();
    a.base = String::new();
    let mut acknowledged = Vec::new();
    for task in burst {
        if let Some(token) = task.await.unwrap() {
            acknowledged.push(token);
        }
    }
    assert!(
        acknowledged.len() >= 12,
        "the survivor kept answering: {}",
        acknowledged.len()
    );
    // Each user's account: every token acknowledged, by either instance, opens it on the
    // survivor.
    for token in &acknowledged {
        assert_eq!(
            caller.account(&b.base, token).await,
            200,
            "an acknowledged token was lost"
        );
    }
    drop(b);
}

/// Redis for the shared limits away: the password budget fails closed (503, nothing sent to the
/// mail server), the other limits fall back to the process's own, and the metric says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_password_budget_refuses_and_the_other_limits_stay_local() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    // A port nobody listens on.
    let app = crate::support::app::TestApp::spawn(&env, |config| {
        config.limits.url = Some("redis://127.0.0.1:9/0".to_owned().into());
    })
    .await;
    let (status, _, answer) = app
        .post(
            "/connect/authorize",
            &json!({
                "client_id": app.client_id, "email_address": "alice@example.test",
                "provider": "exchange", "scopes": "email.read_only",
                "settings": {"username": "alice@example.test", "password": PASSWORD},
            }),
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["type"], "capacity_error");
    let with_password = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.authorization.is_some())
        .count();
    assert_eq!(with_password, 0, "no password was sent without a budget");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("exdisco_limits_fallbacks_total{limit=\"authorize_source\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("exdisco_limits_fallbacks_total{limit=\"account_budget\"}"),
        "{metrics}"
    );
}

/// Each Exchange server's politeness limits hold across processes: two `Limits` on one Redis
/// (as two daemons, or a daemon and a `batch` worker) share one slot in flight and one rate;
/// the Redis keys carry no host name, address or user name in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_limits_and_the_password_budget_are_shared_and_keyed_by_hashes() {
    use exdisco::discovery::{Budget, Limits, LimitsConfig};
    use exdisco::domain::Credentials;
    use exdisco::shared_limits::{LimitsSettings, SharedLimits};
    use redis::AsyncCommands;
    let Ok(url) = std::env::var("EXDISCO_REDIS_URL") else {
        skip(
            "REDIS",
            "no Redis (EXDISCO_REDIS_URL unset; .ci/run starts one)",
        );
        return;
    };
    let prefix = format!("exdisco-test-{:016x}:limits", fastrand::u64(..));
    let mut settings = LimitsSettings::default();
    settings.url = Some(url.clone().into());
    settings.prefix = prefix.clone();
    let mut config = LimitsConfig::default();
    config.per_host_in_flight = 1;
    config.per_host_per_second = 1;
    config.per_host_burst = 1;
    config.credential_attempts_per_account = 2;
    let limits = |secret: Option<[u8; 32]>| {
        Limits::with_shared(
            config.clone(),
            SharedLimits::new(&settings, secret).unwrap(),
        )
    };
    let (a, b) = (limits(Some([7; 32])), limits(Some([7; 32])));

    let held = a.acquire_host("mail.customer.example").await;
    let waited = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        b.acquire_host("mail.customer.example"),
    )
    .await;
    assert!(
        waited.is_err(),
        "the other process waits for the host's one slot"
    );
    drop(held);
    // The slot comes back, and the rate (one a second) holds across both.
    let started = std::time::Instant::now();
    drop(b.acquire_host("mail.customer.example").await);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "the second request of the second waits for the shared rate"
    );

    let alice = Credentials::new("alice@customer.example", "wrong");
    assert_eq!(a.charge_account(&alice).await, Budget::Granted);
    assert_eq!(b.charge_account(&alice).await, Budget::Granted);
    assert_eq!(
        a.charge_account(&alice).await,
        Budget::Spent,
        "one budget for both"
    );

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = connection.keys(format!("{prefix}:*")).await.unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            !key.contains("customer") && !key.contains("alice"),
            "a key in clear: {key}"
        );
    }
    let _: () = connection.del(keys).await.unwrap();
}
