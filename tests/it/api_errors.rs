//! Every malformed input gets a 4xx with a clear message and a stable type, never a 5xx; and a
//! full flow logged at trace level holds none of the secrets.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::app::{Binary, TestApp};
use crate::support::*;

const PASSWORD: &str = "Winter-2026-very-secret";

#[tokio::test]
async fn malformed_inputs_get_4xx() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |c| c.api.body_limit = 4096).await;
    let good = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        let mut target = &mut body;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = &mut target[*part];
        }
        if value.is_null() {
            target
                .as_object_mut()
                .unwrap()
                .remove(parts[parts.len() - 1]);
        } else {
            target[parts[parts.len() - 1]] = value;
        }
        body
    };
    let cases: Vec<(&str, Value, u16)> = vec![
        ("missing email", with("email_address", Value::Null), 400),
        ("missing settings", with("settings", Value::Null), 400),
        ("unknown field", with("surprise", json!(1)), 400),
        (
            "unknown settings field",
            with("settings.surprise", json!(1)),
            400,
        ),
        ("wrong type", with("scopes", json!(42)), 400),
        (
            "password of the wrong type",
            with("settings.password", json!(123_456_789)),
            400,
        ),
        (
            "invalid address",
            with("email_address", json!("alice@localhost")),
            400,
        ),
        ("unknown provider", with("provider", json!("gmail")), 400),
        (
            "bad scopes",
            with("scopes", json!("email.read_only,everything")),
            400,
        ),
        ("empty scopes", with("scopes", json!("")), 400),
        ("unknown client", with("client_id", json!("cli_nope")), 401),
        (
            "invalid host",
            with("settings.exchange_server_host", json!("10.0.0.1")),
            400,
        ),
        (
            "missing password",
            with("settings.password", Value::Null),
            400,
        ),
    ];
    for (name, body, expected) in cases {
        let (status, _, answer) = app.post("/connect/authorize", &body).await;
        assert_eq!(status, expected, "{name}: {answer}");
        assert!(
            answer["message"].is_string() && answer["type"].is_string(),
            "{name}: {answer}"
        );
        assert!(
            !answer.to_string().contains("123456789"),
            "{name}: a value came back: {answer}"
        );
    }
    for (name, content_type, body, expected) in [
        (
            "broken json",
            Some("application/json"),
            b"{\"client_id\": ".to_vec(),
            400,
        ),
        (
            "not an object",
            Some("application/json"),
            b"[1,2]".to_vec(),
            400,
        ),
        (
            // JSON is read whatever the content type (the platform's SDK sends text/plain);
            // what is not JSON is a 400, not a 415.
            "not JSON, as text/plain",
            Some("text/plain;charset=UTF-8"),
            b"email=alice".to_vec(),
            400,
        ),
        (
            "oversized body",
            Some("application/json"),
            vec![b' '; 10_000],
            413,
        ),
    ] {
        let (status, answer) = app.post_raw("/connect/authorize", content_type, body).await;
        assert_eq!(status, expected, "{name}: {answer}");
        assert!(answer["type"].is_string(), "{name}: {answer}");
    }
    for (name, body, expected) in [
        (
            "token: wrong secret",
            json!({"client_id": app.client_id, "client_secret": "exd_cs_wrong", "code": "x"}),
            401,
        ),
        (
            "token: unknown code",
            json!({"client_id": app.client_id, "client_secret": app.client_secret, "code": "exd_code_nope"}),
            400,
        ),
        (
            "token: missing code",
            json!({"client_id": app.client_id, "client_secret": app.client_secret}),
            400,
        ),
        (
            "token: unknown field",
            json!({"client_id": app.client_id, "client_secret": app.client_secret, "code": "x", "scope": "y"}),
            400,
        ),
    ] {
        let (status, _, answer) = app.post("/connect/token", &body).await;
        assert_eq!(status, expected, "{name}: {answer}");
    }
    let (status, _) = app.account("exd_at_not-a-token").await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post_raw("/no/such/route", Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(status, 404);
}

/// The real binary at trace level: a full flow must leave no secret in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_at_trace_level_logs_no_secret() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let dir = tempfile::tempdir().unwrap();
    let binary = Binary::new(&env, dir.path());
    assert!(binary.command(&["init"]).output().unwrap().status.success());
    let added = binary
        .command(&[
            "client",
            "add",
            "logcheck",
            "--redirect-uri",
            "https://app.example.test/cb",
            "--json",
        ])
        .output()
        .unwrap();
    let client: Value = serde_json::from_slice(&added.stdout).unwrap();

    let log_path = dir.path().join("serve.log");
    let mut serve = binary.serve(&["--log-json"]);
    serve
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        // A file, not a pipe: nobody reads a pipe until the end, and a full one would block
        // the daemon's logging.
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let mut child = serve.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let authorize = json!({
        "client_id": client["client_id"], "email_address": "alice@example.test", "provider": "exchange",
        "settings": {"username": "alice@example.test", "password": PASSWORD}, "scopes": "email.read_only",
    });
    let answer: Value = http
        .post(format!("{base}/connect/authorize"))
        .json(&authorize)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = answer["code"].as_str().expect("a code").to_owned();
    let token_request = json!({"client_id": client["client_id"], "client_secret": client["client_secret"], "code": code});
    let token: Value = http
        .post(format!("{base}/connect/token"))
        .json(&token_request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().expect("a token").to_owned();
    let account = http
        .get(format!("{base}/account"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200);

    // The hosted page's form: its cookie, its CSRF token and the code it hands out.
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = no_redirects
        .get(format!(
            "{base}/oauth/authorize?client_id={}&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb&response_type=code&scopes=email.read_only&state=st",
            client["client_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let (cookie, csrf, _) = hosted_page(page).await;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("client_id", client["client_id"].as_str().unwrap())
        .append_pair("redirect_uri", "https://app.example.test/cb")
        .append_pair("scopes", "email.read_only")
        .append_pair("state", "st")
        .append_pair("step", "account")
        .append_pair("email", "alice@example.test")
        .append_pair("password", PASSWORD)
        .finish();
    let submitted = no_redirects
        .post(format!("{base}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303);
    let location = submitted.headers()["location"].to_str().unwrap().to_owned();
    let hosted_code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .expect("a code from the hosted page");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean stop");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("\"level\":\"TRACE\"") || log.contains("TRACE"),
        "trace logging was on"
    );
    let encoded = basic("alice@example.test", PASSWORD);
    for secret in [
        PASSWORD,
        encoded.trim_start_matches("Basic "),
        &code,
        &access_token,
        &hosted_code,
        &csrf,
        cookie.trim_start_matches("exdisco_csrf="),
        client["client_secret"].as_str().unwrap(),
    ] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
    let mut out = std::io::stderr();
    let _ = writeln!(out, "checked {} bytes of trace log", log.len());
}
