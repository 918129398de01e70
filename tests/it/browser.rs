//! The hosted sign-in page in a real browser (headless Chromium through WebDriver), against the
//! daemon and the in-process fakes. Each page state is saved to `target/screenshots/`.

use std::sync::{Arc, Mutex};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::support::app::TestApp;
use crate::support::browser::{AppSite, Browser, Scripts, param};
use crate::support::*;

const PASSWORD: &str = "Winter-2026-not-really";
const SCOPES: &str = "email.read_only,calendar.read_only";

/// The application's link to the sign-in page.
fn authorize_url(app: &TestApp, redirect_uri: &str, extra: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scopes", SCOPES)
        .append_pair("state", "app-state/42 &é")
        .finish();
    app.url(&format!("/oauth/authorize?{query}{extra}"))
}

async fn world(forged_form: String) -> (TestEnv, TestApp, AppSite) {
    let env = TestEnv::start().await;
    let site = AppSite::start(forged_form).await;
    let mut app = TestApp::spawn(&env, |_| {}).await;
    app.use_client("Acme Mail", vec![site.callback()]).await;
    (env, app, site)
}

/// Submits the page's form and waits until the browser is back at the application.
async fn submit_and_land(browser: &Browser, site: &AppSite) {
    browser.click("button[type=submit]").await;
    browser
        .wait_for_url("the redirect uri", |u| u.starts_with(&site.callback()))
        .await;
}

/// Redeems the code the browser brought back; returns the token answer.
async fn redeem(app: &TestApp, site: &AppSite) -> serde_json::Value {
    let landings = site.landings();
    assert_eq!(landings.len(), 1, "one landing: {landings:?}");
    let query = &landings[0];
    assert_eq!(
        param(query, "state"),
        Some("app-state/42 &é"),
        "state passed through untouched"
    );
    let code = param(query, "code").expect("a code");
    let (status, _, token) = app.post("/connect/token", &app.token_request(code)).await;
    assert_eq!(status, 200, "{token}");
    token
}

#[tokio::test]
async fn discovery_succeeds_and_the_browser_lands_with_a_code_without_javascript() {
    let Some(browser) = Browser::start(Scripts::Off).await else {
        return;
    };
    let (env, app, site) = world(String::new()).await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    browser
        .goto(&authorize_url(
            &app,
            &site.callback(),
            "&login_hint=alice%40example.test",
        ))
        .await;
    browser.wait_for("#password").await;
    let email = browser
        .client
        .find(fantoccini::Locator::Css("#email"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(
        email.as_deref(),
        Some("alice@example.test"),
        "login_hint pre-fills"
    );
    let layout = browser
        .client
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth, document.activeElement.id];",
            vec![],
        )
        .await
        .unwrap();
    // Scripts are off for the page, not for WebDriver: execute still answers.
    let (scroll, inner) = (layout[0].as_f64(), layout[1].as_f64());
    let (Some(scroll), Some(inner)) = (scroll, inner) else {
        panic!("the page's widths are numbers: {layout:?}")
    };
    assert!(
        scroll <= inner,
        "no sideways scrolling at phone width: {layout:?}"
    );
    assert_eq!(layout[2], "password", "focus on the first field to fill");
    browser.fill("#name", "Alice Example").await;
    browser.fill("#password", PASSWORD).await;
    browser.screenshot("01-sign-in").await;
    submit_and_land(&browser, &site).await;
    browser.screenshot("02-back-at-the-application").await;
    let token = redeem(&app, &site).await;
    assert_eq!(token["provider"], "exchange");
    assert_eq!(token["email_address"], "alice@example.test");
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "mail.example.test");
    assert_eq!(account["name"], "Alice Example");
    browser.close().await;
}

#[tokio::test]
async fn discovery_fails_the_server_form_appears_then_succeeds() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let (env, app, site) = world(String::new()).await;
    env.host(
        "eas.nowhere.test",
        exchange(basic("bob@nowhere.test", PASSWORD)),
    );
    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.fill("#email", "bob@nowhere.test").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#host").await;
    let notice = browser.text(".notice.info").await;
    assert!(
        notice.contains("could not find your Exchange server"),
        "{notice}"
    );
    let source = browser.source().await;
    assert!(
        !source.contains(PASSWORD),
        "the password is never re-rendered"
    );
    browser.screenshot("03-server-needed").await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#host", "eas.nowhere.test").await;
    submit_and_land(&browser, &site).await;
    let token = redeem(&app, &site).await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "eas.nowhere.test");
    assert_eq!(account["discovery_method"], "explicit");
    browser.close().await;
}

#[tokio::test]
async fn a_foreign_autodiscover_server_is_asked_about_then_allowed() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let (env, app, site) = world(String::new()).await;
    hosted_exchange(&env, "dave@redir.test", PASSWORD);
    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.fill("#email", "dave@redir.test").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#allow").await;
    assert_eq!(
        browser.text("#consent-host").await,
        "autodiscover.hoster.test"
    );
    let hoster_got_a_password = || {
        env.fleet
            .seen_by("autodiscover.hoster.test")
            .iter()
            .any(|s| s.authorization.is_some())
    };
    assert!(
        !hoster_got_a_password(),
        "nothing before the user allows it"
    );
    browser.screenshot("08-consent").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#allow").await;
    browser
        .wait_for_url("the redirect uri", |u| u.starts_with(&site.callback()))
        .await;
    let token = redeem(&app, &site).await;
    let (_, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(account["exchange_server_host"], "mbx.hoster.test");
    assert!(hoster_got_a_password());
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_password_is_said_and_another_try_works() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let (env, app, site) = world(String::new()).await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    // What the page shows while the server works: the submission is held back after the
    // page's own handler ran, so that the browser stays on the page.
    browser.fill("#email", "alice@example.test").await;
    browser.fill("#password", "Wrong-guess-123").await;
    browser
        .client
        .execute(
            "document.querySelector('form').addEventListener('submit', e => e.preventDefault());",
            vec![],
        )
        .await
        .unwrap();
    browser.click("button[type=submit]").await;
    browser.wait_for("#progress:not([hidden])").await;
    let progress = browser.text("#progress-text").await;
    assert!(
        progress.contains("Finding your Exchange server"),
        "{progress}"
    );
    assert!(browser.has("button[type=submit]:disabled").await);
    browser.screenshot("04a-progress").await;

    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.fill("#email", "alice@example.test").await;
    browser.fill("#password", "Wrong-guess-123").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#password-error").await;
    let error = browser.text("#password-error").await;
    assert!(error.contains("refused"), "{error}");
    let described = browser
        .client
        .find(fantoccini::Locator::Css("#password"))
        .await
        .unwrap()
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(
        described.as_deref(),
        Some("password-error"),
        "the error is tied to the field"
    );
    assert!(!browser.source().await.contains("Wrong-guess-123"));
    browser.screenshot("04-wrong-password").await;
    assert!(
        site.landings().is_empty(),
        "no redirect on a wrong password"
    );
    browser.fill("#password", PASSWORD).await;
    submit_and_land(&browser, &site).await;
    redeem(&app, &site).await;
    browser.close().await;
}

#[tokio::test]
async fn an_unregistered_redirect_uri_shows_an_error_and_redirects_nowhere() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let (_env, app, site) = world(String::new()).await;
    let elsewhere = format!("http://{}/callback/../steal", site.addr);
    browser.goto(&authorize_url(&app, &elsewhere, "")).await;
    browser.wait_for("h1").await;
    let text = browser.text("main").await;
    assert!(text.contains("has not registered"), "{text}");
    assert!(!browser.has("form").await, "no form to fill");
    let url = browser.url().await;
    assert!(url.starts_with(&app.url("/oauth/authorize")), "{url}");
    browser.screenshot("05-unregistered-redirect").await;
    assert!(site.landings().is_empty());
    browser.close().await;
}

#[tokio::test]
async fn forged_forms_without_the_csrf_token_are_refused() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let mut app = TestApp::spawn(&env, |_| {}).await;
    // The forged page needs the daemon's address and the client: build the site after both.
    let site = AppSite::start(String::new()).await;
    app.use_client("Acme Mail", vec![site.callback()]).await;
    let forged = format!(
        r#"<!doctype html><form method="post" action="{action}">
        <input type="hidden" name="csrf" value="forged">
        <input type="hidden" name="client_id" value="{client}">
        <input type="hidden" name="redirect_uri" value="{callback}">
        <input type="hidden" name="scopes" value="email.read_only">
        <input type="hidden" name="step" value="account">
        <input type="hidden" name="email" value="alice@example.test">
        <input type="hidden" name="password" value="{PASSWORD}">
        <button id="go" type="submit">Win a prize</button></form>"#,
        action = app.url("/oauth/authorize"),
        client = app.client_id,
        callback = site.callback(),
    );
    let attacker = AppSite::start(forged).await;

    // The real page first, so that the browser holds the CSRF cookie.
    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.wait_for("#password").await;
    browser
        .goto(&format!("http://{}/forged", attacker.addr))
        .await;
    browser.click("#go").await;
    browser.wait_for("h1").await;
    let text = browser.text("main").await;
    assert!(text.contains("not sent from this page"), "{text}");
    browser.screenshot("06-forged-form").await;

    // The real page with its token removed: the cookie is there, the token is not.
    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.fill("#email", "alice@example.test").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .client
        .execute(
            "document.querySelector('input[name=csrf]').value = '';",
            vec![],
        )
        .await
        .unwrap();
    browser.click("button[type=submit]").await;
    browser.wait_for("h1").await;
    let text = browser.text("main").await;
    assert!(text.contains("not sent from this page"), "{text}");

    assert!(site.landings().is_empty(), "no code for a forged form");
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "a forged form sends no password anywhere"
    );
    browser.close().await;
}

#[tokio::test]
async fn exchange_online_offers_microsoft_sign_in_and_completes_it() {
    let Some(browser) = Browser::start(Scripts::On).await else {
        return;
    };
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/o365-full.xml"));
    let microsoft = FakeMicrosoft::start().await;
    let challenge = microsoft.challenge.clone();
    env.host("login.example.test", move |s| {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(s.body.as_bytes())
            .into_owned()
            .collect();
        let verifier = param(&form, "code_verifier").unwrap_or_default();
        let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let good = s.path == "/common/oauth2/v2.0/token"
            && param(&form, "grant_type") == Some("authorization_code")
            && param(&form, "code") == Some("ms-code-1")
            && param(&form, "client_secret") == Some("ms-secret")
            && challenge.lock().unwrap().as_deref() == Some(derived.as_str());
        if good {
            let body = format!(
                r#"{{"token_type":"Bearer","access_token":"ms-access","refresh_token":"ms-refresh","expires_in":3600,"id_token":"{}"}}"#,
                crate::hosted::id_token("carol@example.test")
            );
            Reply::xml(body.into_bytes()).header("Content-Type", "application/json")
        } else {
            Reply::xml(&br#"{"error":"invalid_grant"}"#[..]).with_status(400)
        }
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let authorize = format!("http://{}/authorize", microsoft.addr);
    let site = AppSite::start(String::new()).await;
    let mut app = TestApp::spawn(&env, |config| {
        config.api.listen = format!("127.0.0.1:{port}").parse().unwrap();
        config.hosted.public_url = Some(format!("http://127.0.0.1:{port}"));
        config.hosted.name = "Acme Connect".into();
        config.hosted.microsoft = Some(
            toml::from_str(&format!(
                "client_id = \"ms-app\"\nclient_secret = \"ms-secret\"\nauthorize_url = \"{authorize}\""
            ))
            .unwrap(),
        );
    })
    .await;
    app.use_client("Acme Mail", vec![site.callback()]).await;

    browser
        .goto(&authorize_url(&app, &site.callback(), ""))
        .await;
    browser.fill("#email", "carol@example.test").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("form[action='/oauth/microsoft']").await;
    let text = browser.text("main").await;
    assert!(text.contains("Microsoft 365"), "{text}");
    browser.screenshot("07-exchange-online").await;
    submit_and_land(&browser, &site).await;
    let token = redeem(&app, &site).await;
    assert_eq!(token["provider"], "office365");
    assert_eq!(token["email_address"], "carol@example.test");
    let asked = microsoft.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(param(&asked[0], "client_id"), Some("ms-app"));
    assert_eq!(param(&asked[0], "code_challenge_method"), Some("S256"));
    assert_eq!(
        param(&asked[0], "redirect_uri"),
        Some(format!("http://127.0.0.1:{port}/oauth/microsoft/callback").as_str())
    );
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "the password never went to Microsoft"
    );
    browser.close().await;
}

/// A parsed query string.
type Query = Vec<(String, String)>;

/// The Microsoft authorization endpoint, with a user who consents at once.
struct FakeMicrosoft {
    addr: std::net::SocketAddr,
    asked: Arc<Mutex<Vec<Query>>>,
    challenge: Arc<Mutex<Option<String>>>,
}

impl FakeMicrosoft {
    async fn start() -> Self {
        use axum::extract::RawQuery;
        use axum::response::Redirect;
        let asked = Arc::new(Mutex::new(Vec::new()));
        let challenge = Arc::new(Mutex::new(None));
        let (record, remember) = (asked.clone(), challenge.clone());
        let app = axum::Router::new().route(
            "/authorize",
            axum::routing::get(move |RawQuery(query): RawQuery| {
                let (record, remember) = (record.clone(), remember.clone());
                async move {
                    let query: Query =
                        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                            .into_owned()
                            .collect();
                    *remember.lock().unwrap() = param(&query, "code_challenge").map(str::to_owned);
                    let mut back = url::Url::parse(param(&query, "redirect_uri").unwrap()).unwrap();
                    back.query_pairs_mut()
                        .append_pair("code", "ms-code-1")
                        .append_pair("state", param(&query, "state").unwrap());
                    record.lock().unwrap().push(query);
                    Redirect::to(back.as_str())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            asked,
            challenge,
        }
    }
}

#[tokio::test]
async fn the_report_page_renders_in_chromium() {
    let Some(browser) = Browser::start(Scripts::Off).await else {
        return;
    };
    browser.client.set_window_size(1200, 1000).await.unwrap();
    let env = TestEnv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let [found, failed] = crate::diagnosis::report_pages(&env, dir.path()).await;
    for (page, name) in [(&failed, "09-report-failed"), (&found, "10-report-found")] {
        browser.goto(&format!("file://{}", page.display())).await;
        browser.wait_for("svg rect").await;
        assert!(browser.has(".headline").await);
        browser.screenshot(name).await;
    }
    browser.close().await;
}
