//! Consent to an Autodiscover server outside the mailbox's domain (rule 4), on every face of
//! the daemon: the API answers `consent_required` and takes the caller's consent on a second
//! call; the hosted page asks, as Outlook does; a forged consent does nothing. (The CLI's
//! `--trust-host` and the engine are in `security::rule_4_*`.)

use serde_json::json;

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Hosted-2026-not-really";
const EMAIL: &str = "dave@redir.test";
const CALLBACK: &str = "https://app.example.test/oauth/callback";

fn hoster_got_a_password(env: &TestEnv) -> bool {
    env.fleet
        .seen_by("autodiscover.hoster.test")
        .iter()
        .any(|s| s.authorization.is_some())
}

#[tokio::test]
async fn the_api_asks_then_takes_the_callers_consent() {
    let env = TestEnv::start().await;
    hosted_exchange(&env, EMAIL, PASSWORD);
    let app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request(EMAIL, PASSWORD, None);
    let (status, _, answer) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["type"], "consent_required");
    assert_eq!(answer["consent"]["host"], "autodiscover.hoster.test");
    assert_eq!(answer["consent"]["reason"], "http_redirect_outside_domain");
    assert!(!hoster_got_a_password(&env), "nothing sent before consent");
    // The application asked its user, who allowed it.
    let mut consented = request.clone();
    consented["settings"]["consented_autodiscover_host"] = json!("autodiscover.hoster.test");
    let token = app.connect(&consented).await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "mbx.hoster.test");
    assert!(hoster_got_a_password(&env));
    // The consent was this user's, for this authorization: nothing is cached for the domain.
    let (status, _, answer) = app.post("/connect/authorize", &request).await;
    assert_eq!(
        (status, answer["type"].as_str()),
        (409, Some("consent_required"))
    );
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("exdisco_consents_total{outcome=\"asked\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("exdisco_consents_total{outcome=\"given\"} 1"),
        "{metrics}"
    );
}

async fn hosted_app(env: &TestEnv) -> TestApp {
    let mut app = TestApp::spawn(env, |_| {}).await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    app
}

fn page(app: &TestApp) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scopes", "email.read_only")
        .finish();
    app.url(&format!("/oauth/authorize?{query}"))
}

#[tokio::test]
async fn the_hosted_page_asks_and_allow_connects_the_hosted_mailbox() {
    let env = TestEnv::start().await;
    hosted_exchange(&env, EMAIL, PASSWORD);
    let app = hosted_app(&env).await;
    let account = [
        ("email", EMAIL),
        ("password", PASSWORD),
        ("step", "account"),
    ];
    let (status, html) = sign_in_through_page(&page(&app), &account)
        .await
        .unwrap_err();
    assert_eq!(status, 200);
    assert!(
        html.contains("Allow this server to set up your mailbox?"),
        "{html}"
    );
    assert!(html.contains("autodiscover.hoster.test") && html.contains("autodiscover.redir.test"));
    assert!(
        !html.contains(PASSWORD),
        "the password is never written back"
    );
    assert!(!hoster_got_a_password(&env));
    // "Allow": the consent form posts back with the password typed again.
    let landed = consent_round(&app, &[("password", PASSWORD), ("step", "consent")])
        .await
        .unwrap();
    assert!(landed.as_str().starts_with(CALLBACK), "{landed}");
    let code = query_param(&landed, "code").unwrap();
    let (status, _, token) = app.post("/connect/token", &app.token_request(&code)).await;
    assert_eq!(status, 200, "{token}");
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "mbx.hoster.test");
}

/// Signs in to reach the consent page, then posts its form back with `fields`.
async fn consent_round(app: &TestApp, fields: &[(&str, &str)]) -> Result<url::Url, (u16, String)> {
    let Ok(mut session) = PageSession::open(&page(app)).await else {
        panic!("no sign-in page");
    };
    let sign_in = [
        ("email", EMAIL),
        ("password", PASSWORD),
        ("step", "account"),
    ];
    let (status, html) = session.submit(&sign_in).await.unwrap_err();
    assert!(status == 200 && html.contains("consent_token"), "{html}");
    session.submit(fields).await
}

#[tokio::test]
async fn a_forged_consent_does_nothing_and_refusing_asks_for_the_server() {
    let env = TestEnv::start().await;
    hosted_exchange(&env, EMAIL, PASSWORD);
    let app = hosted_app(&env).await;
    // A consent for another host than the page asked about (or from another browser).
    let forged = [
        ("password", PASSWORD),
        ("step", "consent"),
        ("consent_host", "autodiscover.evil.test"),
    ];
    let (status, html) = consent_round(&app, &forged).await.unwrap_err();
    assert_eq!(status, 403, "{html}");
    let tampered = [
        ("password", PASSWORD),
        ("step", "consent"),
        ("consent_token", "AAAA"),
    ];
    let (status, _) = consent_round(&app, &tampered).await.unwrap_err();
    assert_eq!(status, 403);
    assert!(
        !hoster_got_a_password(&env),
        "a forged consent sends nothing"
    );
    // "Enter my server instead": the server step, no password needed to get there.
    let (status, html) = consent_round(&app, &[("step", "refuse_consent")])
        .await
        .unwrap_err();
    assert_eq!(status, 200);
    assert!(html.contains("Enter your Exchange server"), "{html}");
    assert!(!hoster_got_a_password(&env));
}
