//! The daemon under attack (rules 17, 18, 20, 24, 25): no account changes before the code is
//! redeemed, strangers cannot spend a user's limits, slow bodies do not starve it, tokens end,
//! the queue is for clients only and bounded, and the smaller holes stay closed.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Winter-2026-not-really";
const MALLORY: &str = "mallory-own-password";

/// Alice's server, and a server of Mallory's that accepts Mallory.
fn two_servers(env: &TestEnv) {
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    env.host("evil.example.net", exchange(basic("mallory", MALLORY)));
}

/// A client whose requests come from `source` (any 127/8 address reaches the daemon).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post_from(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = http.post(app.url(path)).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn mallory_request(app: &TestApp) -> Value {
    let mut request = app.exchange_request("alice@example.test", MALLORY, Some("evil.example.net"));
    request["settings"]["username"] = json!("mallory");
    request
}

#[tokio::test]
async fn rule_24_authorize_changes_nothing_until_the_code_is_redeemed() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |_| {}).await;
    // A code that is never redeemed leaves no account behind.
    let (status, _, body) = app.post("/connect/authorize", &mallory_request(&app)).await;
    assert_eq!(status, 200, "{body}");
    let stored = app
        .store
        .find_account_by_email(app.client_id.clone(), "alice@example.test".into())
        .await
        .unwrap();
    assert!(
        stored.is_none(),
        "nothing durable before the code is redeemed"
    );

    // Alice connects; then Mallory, with the public client_id, Alice's address and a server
    // and password of Mallory's own, is refused and Alice's account is untouched.
    let alice = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")))
        .await;
    let alice_token = alice["access_token"].as_str().unwrap();
    let (status, _, body) = app.post("/connect/authorize", &mallory_request(&app)).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("reauth_account_id")
    );
    let (status, account) = app.account(alice_token).await;
    assert_eq!(status, 200);
    assert_eq!(account["exchange_server_host"], "eas.example.test");

    // The application's backend may move the account, naming it; the old token ends.
    let mut moved = mallory_request(&app);
    moved["reauth_account_id"] = alice["account_id"].clone();
    let token = app.connect(&moved).await;
    assert_eq!(token["account_id"], alice["account_id"], "the same account");
    assert_eq!(
        app.account(alice_token).await.0,
        401,
        "replaced: its tokens end"
    );
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "evil.example.net");
}

#[tokio::test]
async fn rule_25_strangers_cannot_spend_a_users_limits() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |_| {}).await;
    let stranger = client_from("127.0.0.2");
    // A made-up client_id is refused before any limit is charged.
    let mut forged = app.exchange_request("alice@example.test", "guess", Some("eas.example.test"));
    forged["client_id"] = json!("cli_made_up");
    for _ in 0..12 {
        let (status, _) = post_from(&stranger, &app, "/connect/authorize", &forged).await;
        assert_eq!(status, 401);
    }
    // Wrong passwords with the real client_id spend the stranger's budget, not Alice's.
    let wrong = app.exchange_request("alice@example.test", "guess", Some("eas.example.test"));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            post_from(&stranger, &app, "/connect/authorize", &wrong)
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let attempts = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.authorization.is_some())
        .count();
    assert_eq!(
        attempts, 5,
        "the budget keeps wrong passwords away from the server"
    );
    // Alice, from her own address, is not locked out.
    let right = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    let (status, _, body) = app.post("/connect/authorize", &right).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn rule_25_slow_bodies_do_not_starve_the_daemon() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |c| {
        c.api.max_in_flight = 2;
        c.api.body_read_timeout = Duration::from_secs(2);
        c.api.max_connections_per_address = 8;
    })
    .await;
    let slow_request = format!(
        "POST /connect/authorize HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{{",
        app.addr
    );
    let mut slow = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(slow_request.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    // Wait for the server to hold all five (bounded), not for a fixed time.
    let landed = async {
        while app.metrics.api_connections() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), landed)
        .await
        .expect("the slow connections are accepted");
    // Meanwhile health answers, and so does a whole request (well before the bodies' bound).
    let quick = async {
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let request =
            app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
        app.post("/connect/authorize", &request).await.0
    };
    let status = tokio::time::timeout(Duration::from_millis(1500), quick)
        .await
        .expect("answered while slow bodies were pending");
    assert_eq!(status, 200);
    // A body that does not arrive in time is answered 408.
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), slow[0].read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer[..read].starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&answer[..read])
    );
    // One source holds at most max_connections_per_address connections: of 12 opened at once,
    // the server keeps 8 at most and closes the others at once. Counted on the connections
    // themselves, whatever else this source still has open (the slow ones above close when
    // their 408 is out, at a moment this test does not control).
    let mut opened = Vec::new();
    for _ in 0..12 {
        opened.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let closed_at_once = opened.into_iter().map(|mut stream| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut byte)).await;
        (matches!(read, Ok(Ok(0)) | Ok(Err(_))), stream)
    });
    let outcomes = futures_join_all(closed_at_once).await;
    let held = outcomes.iter().filter(|(closed, _)| !closed).count();
    assert!(held <= 8, "at most 8 held by one source, {held} were");
    assert!(held < 12, "the ones past the cap are closed");
    let other_source = client_from("127.0.0.3");
    let health = other_source.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "other sources still get in");
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_100_continue() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |_| {}).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "POST /connect/token HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\ncontent-length: 10000000\r\nexpect: 100-continue\r\n\r\n",
        app.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 128];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn tokens_end_are_revoked_and_say_why() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |c| c.connect.token_ttl = Duration::from_secs(1)).await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    let token = app.connect(&request).await;
    assert_eq!(token["expires_in"], 1);
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.account(&access).await.0, 200);
    app.clock.advance(Duration::from_secs(2));
    let response = app
        .http
        .get(app.url("/account"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "expired");
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="exdisco", error="invalid_token""#
    );
    let response = app.http.get(app.url("/account")).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="exdisco""#
    );
}

#[tokio::test]
async fn revocation_by_the_token_and_by_its_client() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    // The platform's shape: the token revokes itself.
    let first = app.connect(&request).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.connect(&request).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.account(&first).await.0,
        401,
        "authorized again: the old token ended"
    );
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["success"], true);
    assert_eq!(app.account(&second).await.0, 401);
    // RFC 7009: the client names the token; only its own tokens, 200 either way.
    let third = app.connect(&request).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = |id: &str, secret: &str| {
        app.http
            .post(app.url("/oauth/revoke"))
            .basic_auth(id.to_owned(), Some(secret.to_owned()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={third}&token_type_hint=access_token"))
            .send()
    };
    assert_eq!(revoke(&app.client_id, "wrong").await.unwrap().status(), 401);
    assert_eq!(app.account(&third).await.0, 200);
    assert_eq!(
        revoke(&app.client_id, &app.client_secret)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.account(&third).await.0, 401);
}

#[tokio::test]
async fn the_queue_is_bounded_and_its_intake_limited() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |c| {
        c.queue.max_queued = 3;
        c.api.jobs_per_client_per_minute = 5;
    })
    .await;
    let jobs = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"domain": format!("d{i}.example.test")}))
                .collect(),
        )
    };
    assert_eq!(app.post_jobs(&jobs(3)).await.0, 202);
    let (status, headers, _) = app.post_jobs(&jobs(1)).await;
    assert_eq!(status, 503, "full");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = app.post_jobs(&jobs(3)).await;
    assert_eq!(status, 429, "more than the client's intake");
}

#[tokio::test]
async fn ended_codes_tokens_and_old_jobs_are_deleted() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |c| {
        c.connect.code_ttl = Duration::from_secs(1);
        c.store.job_retention = Duration::from_secs(1);
        c.store.sweep_every = Duration::from_millis(200);
    })
    .await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    assert_eq!(app.post("/connect/authorize", &request).await.0, 200);
    let (_, _, body) = app.post_jobs(&json!({"domain": "d1.example.test"})).await;
    let id = body["ids"][0].as_str().unwrap().to_owned();
    app.drain_queue().await;
    assert_eq!(app.job(&id).await.0, 200);
    let db = rusqlite::Connection::open(&app.config.store.path).unwrap();
    let codes = || {
        db.query_row("SELECT count(*) FROM codes", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(codes(), 1);
    app.clock.advance(Duration::from_secs(3));
    // The sweep runs every 200 ms: wait for it (bounded), not for a fixed time.
    let swept = async {
        while codes() != 0 || app.job(&id).await.0 != 404 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), swept)
        .await
        .expect("the sweep deletes the ended code (with its sealed password) and the old job");
}

#[tokio::test]
async fn smaller_holes_stay_closed() {
    let env = TestEnv::start().await;
    two_servers(&env);
    let app = TestApp::spawn(&env, |c| {
        c.api.token_per_address_per_minute = 3;
        c.api.authorize_per_account_per_minute = 2;
    })
    .await;
    // Error messages name the field, never the value sent.
    let marker = "MARKER-7f3a";
    let mut cases = Vec::new();
    for (field, value) in [
        ("provider", json!(marker)),
        ("scopes", json!(format!("email,{marker}"))),
        ("email_address", json!(format!("{marker}@@x"))),
        (
            "settings",
            json!({"username": "a", "password": "b", marker: 1}),
        ),
    ] {
        let address = format!("{field}@example.test");
        let mut request = app.exchange_request(&address, PASSWORD, None);
        request[field] = value;
        cases.push(request);
    }
    for request in &cases {
        let (status, _, body) = app.post("/connect/authorize", request).await;
        assert_eq!(status, 400, "{body}");
        assert!(!body.to_string().contains(marker), "{body}");
    }
    // One account however its address is spelt: IDNA, case and a trailing dot.
    let mut statuses = Vec::new();
    for email in [
        "bob@bücher.example",
        "BOB@xn--bcher-kva.example",
        "bob@bücher.example.",
    ] {
        let request = app.exchange_request(email, "guess", Some("eas.example.test"));
        statuses.push(app.post("/connect/authorize", &request).await.0);
    }
    assert_eq!(statuses[2], 429, "{statuses:?}");
    // /connect/token has a limit per source address.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.post("/connect/token", &app.token_request("exd_code_guess"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
    // The database is its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&app.config.store.path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_locked() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |_| {}).await;
    let ready = || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    let db = rusqlite::Connection::open(&app.config.store.path).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE; INSERT INTO discovery_cache (domain, host, expires_at) VALUES ('x.test', 'h', 0);")
        .unwrap();
    assert_eq!(ready().await, 503, "a write would wait");
    db.execute_batch("ROLLBACK;").unwrap();
    assert_eq!(ready().await, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limits_count_the_caller_it_names() {
    // Issue 24.4: only a trusted proxy's X-Forwarded-For names the caller; the right-most
    // untrusted address counts, so a client cannot spend another's limit by writing one.
    let env = TestEnv::start().await;
    let post = |app: &TestApp, forwarded_for: &str| {
        app.http
            .post(app.url("/connect/authorize"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", forwarded_for)
            .body("{}")
            .send()
    };
    let app = TestApp::spawn(&env, |c| {
        c.api.authorize_per_address_per_minute = 2;
        c.api.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(post(&app, "198.51.100.1").await.unwrap().status(), 400);
    }
    assert_eq!(post(&app, "198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(
        post(&app, "198.51.100.2").await.unwrap().status(),
        400,
        "another caller behind the same proxy has its own limit"
    );
    assert_eq!(
        post(&app, "198.51.100.2, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        429,
        "the right-most address counts, not what the client wrote to its left"
    );

    // Not trusted (the default): the header is the client's word, and every call is the
    // peer's.
    let app = TestApp::spawn(&env, |c| c.api.authorize_per_address_per_minute = 2).await;
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(post(&app, forwarded).await.unwrap().status(), 400);
    }
    assert_eq!(post(&app, "198.51.100.3").await.unwrap().status(), 429);
}

/// Runs `futures` at once; their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn an_instance_with_another_key_refuses_the_database() {
    // Issue 24.5: the first key to open a database is recorded (as a check value, not the
    // key); another instance with another key refuses to start instead of sealing secrets
    // the others cannot open.
    use exdisco::app::{App, StartError};
    use exdisco::secrets::MasterKey;
    let env = TestEnv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::app::app_config(&env, dir.path());
    let key = || MasterKey::generate_base64().unwrap();
    let (first, second) = (key(), key());
    let open = |text: &str| App::build(&config, MasterKey::from_base64(text).unwrap());
    assert!(open(&first).await.is_ok());
    match open(&second).await {
        Err(StartError::Store(err)) => assert_eq!(err.code(), "key_mismatch", "{err}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("started with another key"),
    }
    assert!(open(&first).await.is_ok(), "the right key still opens it");
}
