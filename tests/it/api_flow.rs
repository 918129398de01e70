//! The daemon end to end: authorize, token, account, with and without an explicit host,
//! office365, the discovery cache, replay, expiry, restart and scope changes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Summer-2026-not-really";

fn exchange_world(env: &TestEnv) {
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
}

#[tokio::test]
async fn exchange_flow_with_an_explicit_host() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    let (status, headers, body) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let code = body["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("exd_code_") && code.len() > 50);
    assert!(
        env.fleet.seen().iter().all(|s| !s.is_autodiscover()),
        "an explicit host turns discovery off"
    );
    let (status, headers, token) = app.post("/connect/token", &app.token_request(&code)).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["provider"], "exchange");
    assert_eq!(token["email_address"], "alice@example.test");
    let (status, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["id"], token["account_id"]);
    assert_eq!(account["exchange_server_host"], "eas.example.test");
    assert_eq!(account["discovery_method"], "explicit");
    assert_eq!(
        account["scopes"],
        json!([
            "calendar.read_only",
            "contacts.read_only",
            "email.read_only"
        ])
    );
    assert!(
        account["activesync_versions"]
            .as_array()
            .unwrap()
            .contains(&json!("16.1"))
    );
}

#[tokio::test]
async fn exchange_flow_discovers_the_host_and_caches_it() {
    let env = TestEnv::start().await;
    exchange_world(&env);
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let token = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, None))
        .await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "mail.example.test");
    assert_eq!(account["discovery_method"], "pox_domain");
    let posts = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.is_autodiscover())
        .count();
    // The same domain again: the cached host is verified, Autodiscover is not asked.
    let token = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, Some("")))
        .await;
    assert_eq!(
        env.fleet
            .seen()
            .iter()
            .filter(|s| s.is_autodiscover())
            .count(),
        posts
    );
    assert!(token["access_token"].is_string());
}

#[tokio::test]
async fn a_cached_host_that_stops_working_is_forgotten() {
    let env = TestEnv::start().await;
    exchange_world(&env);
    let app = TestApp::spawn(&env, |_| {}).await;
    app.connect(&app.exchange_request("alice@example.test", PASSWORD, None))
        .await;
    // The cached host goes away; Autodiscover now names another one.
    env.host("example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    env.fleet.host("mail.example.test", |_| Reply::status(503));
    env.host(
        "exch01.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let token = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, None))
        .await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "exch01.example.test");
}

#[tokio::test]
async fn eas_server_host_is_the_older_name() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let mut request = app.exchange_request("alice@example.test", PASSWORD, None);
    request["settings"]["eas_server_host"] = "eas.example.test".into();
    let token = app.connect(&request).await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "eas.example.test");
}

#[tokio::test]
async fn wrong_password_is_401() {
    let env = TestEnv::start().await;
    exchange_world(&env);
    let app = TestApp::spawn(&env, |_| {}).await;
    assert_a_wrong_password_is_401(&app).await;
}

#[tokio::test]
async fn exchange_online_mailboxes_are_sent_to_oauth() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/o365-full.xml"));
    let app = TestApp::spawn(&env, |_| {}).await;
    let (status, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("carol@example.test", PASSWORD, None),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "provider_error");
    assert!(body["message"].as_str().unwrap().contains("office365"));
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "no password to Microsoft"
    );
}

#[tokio::test]
async fn undiscoverable_hosts_ask_for_exchange_server_host() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |_| {}).await;
    let (status, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("alice@nowhere.test", PASSWORD, None),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("exchange_server_host")
    );
}

fn office365_request(app: &TestApp, refresh_token: &str) -> Value {
    json!({
        "client_id": app.client_id,
        "name": "Carol",
        "email_address": "carol@example.test",
        "provider": "office365",
        "settings": {
            "microsoft_client_id": "00000000-1111-2222-3333-444444444444",
            "microsoft_client_secret": "ms-client-secret-value",
            "microsoft_refresh_token": refresh_token,
            "redirect_uri": "https://app.example.test/callback"
        },
        "scopes": "email.read_only"
    })
}

#[tokio::test]
async fn office365_flow_redeems_the_refresh_token() {
    let env = TestEnv::start().await;
    env.host("login.example.test", |s| {
        let good = s.path == "/common/oauth2/v2.0/token"
            && s.body.contains("grant_type=refresh_token")
            && s.body.contains("refresh_token=good-refresh-token")
            && s.body.contains("scope=offline_access+openid+profile+User.Read");
        if good {
            Reply::xml(&br#"{"token_type":"Bearer","access_token":"ms-access","refresh_token":"rotated-refresh","expires_in":3600}"#[..])
                .header("Content-Type", "application/json")
        } else {
            Reply::xml(&br#"{"error":"invalid_grant","error_description":"AADSTS70000"}"#[..]).with_status(400)
        }
    });
    let app = TestApp::spawn(&env, |_| {}).await;
    let token = app
        .connect(&office365_request(&app, "good-refresh-token"))
        .await;
    assert_eq!(token["provider"], "office365");
    let (status, _, body) = app
        .post(
            "/connect/authorize",
            &office365_request(&app, "stolen-or-expired"),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let mut with_host = office365_request(&app, "good-refresh-token");
    with_host["settings"]["exchange_server_host"] = "mail.example.test".into();
    let (status, _, _) = app.post("/connect/authorize", &with_host).await;
    assert_eq!(status, 400, "discovery cannot be turned off for office365");
}

#[tokio::test]
async fn a_code_works_once_and_a_replay_revokes_the_token() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let (_, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")),
        )
        .await;
    let request = app.token_request(body["code"].as_str().unwrap());
    let (first, second) = tokio::join!(
        app.post("/connect/token", &request),
        app.post("/connect/token", &request)
    );
    let statuses = [first.0, second.0];
    assert!(
        statuses.contains(&200) && statuses.contains(&400),
        "exactly one wins: {statuses:?}"
    );
    let winner = if first.0 == 200 { &first.2 } else { &second.2 };
    let (status, _) = app.account(winner["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "the replay revoked the first token");
    let loser = if first.0 == 200 { &second.2 } else { &first.2 };
    assert_eq!(loser["type"], "invalid_grant");
}

#[tokio::test]
async fn codes_expire_and_are_bound_to_their_client() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    // A zero lifetime is refused as a configuration mistake; one second is the shortest.
    let app = TestApp::spawn(&env, |c| c.connect.code_ttl = Duration::from_secs(1)).await;
    let (_, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")),
        )
        .await;
    app.clock.advance(Duration::from_secs(2));
    let (status, _, answer) = app
        .post(
            "/connect/token",
            &app.token_request(body["code"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 400);
    assert!(answer["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn state_survives_a_restart() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let token = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")))
        .await;
    let (_, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")),
        )
        .await;
    let code = body["code"].as_str().unwrap().to_owned();
    let app = app.restart().await;
    let (status, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{account}");
    let (status, _, _) = app.post("/connect/token", &app.token_request(&code)).await;
    assert_eq!(status, 200, "a code issued before the restart still works");
}

#[tokio::test]
async fn changing_scopes_needs_reauth() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let first = app
        .connect(&app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test")))
        .await;
    let mut wider = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    wider["scopes"] = "email".into();
    let (status, _, body) = app.post("/connect/authorize", &wider).await;
    assert_eq!(status, 409, "{body}");
    wider["reauth_account_id"] = first["account_id"].clone();
    let token = app.connect(&wider).await;
    assert_eq!(token["account_id"], first["account_id"]);
    wider["reauth_account_id"] = "acct_doesnotexist".into();
    let (status, _, _) = app.post("/connect/authorize", &wider).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn authorize_is_rate_limited_per_source_address() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |c| c.api.authorize_per_address_per_minute = 2).await;
    let request =
        app.exchange_request("alice@example.test", PASSWORD, Some("nothing.example.test"));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = app.post("/connect/authorize", &request).await;
        statuses.push(status);
        if status == 429 {
            assert!(
                headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
    }
    assert_eq!(statuses[2], 429, "{statuses:?}");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let env = TestEnv::start().await;
    let app = TestApp::spawn(&env, |_| {}).await;
    let get = |path: &str| app.http.get(app.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("exdisco_http_requests_total"), "{metrics}");
}

#[tokio::test]
async fn a_password_refused_by_autodiscover_is_401() {
    // Issue 11.4 through the daemon: the domain's Autodiscover refuses the password; the
    // anonymous ActiveSync host found beside it does not turn that into a "not found".
    let env = TestEnv::start().await;
    autodiscover_refusing_passwords(&env, PASSWORD);
    let app = TestApp::spawn(&env, |_| {}).await;
    assert_a_wrong_password_is_401(&app).await;
}

async fn assert_a_wrong_password_is_401(app: &TestApp) {
    let (status, _, body) = app
        .post(
            "/connect/authorize",
            &app.exchange_request("alice@example.test", "nope", None),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], "auth_error");
}
