//! The hosted sign-in page over plain HTTP: headers, parameter checks, CSRF, rate limits and
//! the password never written back. The same flows run in a real browser in `browser`.

use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Autumn-2026-not-really";
const CALLBACK: &str = "https://app.example.test/oauth/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn page_url(app: &TestApp, redirect_uri: &str, response_type: &str, scopes: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", response_type)
        .append_pair("scopes", scopes)
        .append_pair("state", "s-1")
        .finish();
    app.url(&format!("/oauth/authorize?{query}"))
}

async fn hosted_app(env: &TestEnv) -> TestApp {
    let mut app = TestApp::spawn(env, |_| {}).await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    app
}

/// The sign-in page: its headers, its cookie and its CSRF token.
async fn open_page(app: &TestApp) -> (HeaderMap, String, String) {
    let response = http()
        .get(page_url(app, CALLBACK, "code", "email.read_only"))
        .send()
        .await
        .unwrap();
    let (cookie, token, headers) = hosted_page(response).await;
    (headers, cookie, token)
}

async fn submit(
    app: &TestApp,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let mut form = vec![
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scopes", "email.read_only"),
        ("state", "s-1"),
    ];
    form.extend_from_slice(fields);
    if !fields.iter().any(|(name, _)| *name == "step") {
        form.push(("step", "account"));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let mut request = http()
        .post(app.url("/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn pages_are_not_cached_not_framed_and_load_nothing_from_elsewhere() {
    let env = TestEnv::start().await;
    let app = hosted_app(&env).await;
    let (headers, cookie, _) = open_page(&app).await;
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self' https://app.example.test;",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert!(cookie.starts_with("exdisco_csrf="));
    let html = http()
        .get(page_url(&app, CALLBACK, "code", "email.read_only"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for external in ["http://", "https://"] {
        let outside = html
            .match_indices(external)
            .filter(|(at, _)| !html[*at..].starts_with(CALLBACK))
            .count();
        assert_eq!(
            outside, 0,
            "only the application's own URL is absolute: {html}"
        );
    }
    for asset in [
        "/oauth/assets/style.css",
        "/oauth/assets/progress.js",
        "/oauth/assets/logo",
    ] {
        let response = http().get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn bad_clients_and_redirect_uris_get_a_page_and_no_redirect() {
    let env = TestEnv::start().await;
    let app = hosted_app(&env).await;
    for uri in [
        "https://app.example.test/oauth/callback/",
        "https://app.example.test/oauth/callback?x=1",
        "https://evil.test/oauth/callback",
        "",
    ] {
        let response = http()
            .get(page_url(&app, uri, "code", "email.read_only"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{uri}");
        assert!(response.headers().get("location").is_none(), "{uri}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("<form"), "{uri}");
    }
    let response = http()
        .get(app.url("/oauth/authorize?client_id=cli_nobody&redirect_uri=x&response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn protocol_errors_go_back_to_a_registered_redirect_uri() {
    let env = TestEnv::start().await;
    let app = hosted_app(&env).await;
    for (response_type, scopes, error) in [
        ("token", "email.read_only", "unsupported_response_type"),
        ("code", "email.read_only,root", "invalid_scope"),
    ] {
        let response = http()
            .get(page_url(&app, CALLBACK, response_type, scopes))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(CALLBACK));
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("error".into(), error.into())), "{pairs:?}");
        assert!(pairs.contains(&("state".into(), "s-1".into())), "{pairs:?}");
    }
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_do_nothing() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = hosted_app(&env).await;
    let (_, cookie, token) = open_page(&app).await;
    let (_, other_cookie, _) = open_page(&app).await;
    let fields = |csrf: &'static str| {
        vec![
            ("email", "alice@example.test"),
            ("password", PASSWORD),
            ("step", "server"),
            ("exchange_server_host", "eas.example.test"),
            ("csrf", csrf),
        ]
    };
    let leaked: &'static str = Box::leak(token.clone().into_boxed_str());
    let cases = [
        (None, leaked, "no cookie"),
        (Some(cookie.as_str()), "", "no token"),
        (Some(cookie.as_str()), "forged", "a forged token"),
        (
            Some(other_cookie.as_str()),
            leaked,
            "another browser's cookie",
        ),
    ];
    for (cookie, csrf, why) in cases {
        let (status, headers, html) = submit(&app, cookie, &fields(csrf)).await;
        assert_eq!(status, 403, "{why}");
        assert!(headers.get("location").is_none(), "{why}");
        assert!(html.contains("not sent from this page"), "{why}");
    }
    // The right cookie and token, posted by a page of another origin.
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields(leaked))
        .extend_pairs([
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scopes", "email.read_only"),
        ])
        .finish();
    let response = http()
        .post(app.url("/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .header("origin", "https://evil.example.net")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "another origin");
    assert!(
        env.fleet.seen().is_empty(),
        "a refused form reaches no server"
    );
    let (status, headers, _) = submit(&app, Some(&cookie), &fields(leaked)).await;
    assert_eq!(status, 303, "the real form works");
    assert!(headers["location"].to_str().unwrap().starts_with(CALLBACK));
}

#[tokio::test]
async fn the_password_is_never_written_back_and_limits_apply() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let mut app = TestApp::spawn(&env, |config| {
        config.api.authorize_per_account_per_minute = 2;
    })
    .await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    let (_, cookie, token) = open_page(&app).await;
    let wrong = "Wrong-but-secret-guess";
    let fields = [
        ("email", "alice@example.test"),
        ("password", wrong),
        ("step", "server"),
        ("exchange_server_host", "eas.example.test"),
        ("csrf", token.as_str()),
    ];
    let (status, headers, html) = submit(&app, Some(&cookie), &fields).await;
    assert_eq!(status, 401);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!html.contains(wrong), "the password is not re-rendered");
    assert!(html.contains("id=\"password-error\""));
    assert!(html.contains("aria-describedby=\"password-error\""));
    assert!(
        html.contains("value=\"eas.example.test\""),
        "the host is kept"
    );
    submit(&app, Some(&cookie), &fields).await;
    let (status, headers, html) = submit(&app, Some(&cookie), &fields).await;
    assert_eq!(status, 429, "the API's per-account limit");
    assert!(headers.contains_key("retry-after"));
    assert!(html.contains("Too many attempts"));
    assert!(!html.contains(wrong));
}

#[tokio::test]
async fn exchange_online_without_a_microsoft_app_explains_and_offers_no_button() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/o365-full.xml"));
    let app = hosted_app(&env).await;
    let (_, cookie, token) = open_page(&app).await;
    let (status, _, html) = submit(
        &app,
        Some(&cookie),
        &[
            ("email", "carol@example.test"),
            ("password", PASSWORD),
            ("csrf", token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("Microsoft 365"));
    assert!(html.contains("has not set up Microsoft sign-in"));
    assert!(!html.contains("/oauth/microsoft\""));
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn a_forged_microsoft_callback_is_refused() {
    let env = TestEnv::start().await;
    let app = hosted_app(&env).await;
    for query in ["", "?code=x&state=bm90LXNlYWxlZA", "?code=x&state=%%%"] {
        let response = http()
            .get(app.url(&format!("/oauth/microsoft/callback{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn the_operator_names_the_page_and_sets_its_logo() {
    let env = TestEnv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.png");
    std::fs::write(&logo, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let logo_path = logo.clone();
    let mut app = TestApp::spawn(&env, move |config| {
        config.hosted.name = "Acme Connect".into();
        config.hosted.logo_file = Some(logo_path);
    })
    .await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    let html = http()
        .get(page_url(&app, CALLBACK, "code", "email.read_only"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<title>Connect your mailbox · Acme Connect</title>"));
    assert!(html.contains("Acme Mail asks to connect"));
    let response = http()
        .get(app.url("/oauth/assets/logo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        &response.bytes().await.unwrap()[..],
        b"\x89PNG\r\n\x1a\nnot really"
    );
}

/// An ID token as the token endpoint returns it (the signature is not looked at).
pub fn id_token(account: &str) -> String {
    use base64::Engine;
    let claims = format!(r#"{{"preferred_username":"{account}","tid":"t"}}"#);
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The Microsoft dance without a browser: the Exchange Online page, its "Sign in with
/// Microsoft" form, then the callback as Microsoft would call it. Returns the callback's
/// answer.
async fn microsoft_round_trip(signed_in_as: &'static str) -> (u16, HeaderMap, String) {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/o365-full.xml"));
    env.host("login.example.test", move |s| {
        if s.body.contains("grant_type=authorization_code") && s.body.contains("code=ms-code") {
            let body = format!(
                r#"{{"access_token":"ms-access","refresh_token":"ms-refresh","id_token":"{}"}}"#,
                id_token(signed_in_as)
            );
            Reply::xml(body.into_bytes()).header("Content-Type", "application/json")
        } else {
            Reply::xml(&br#"{"error":"invalid_grant"}"#[..]).with_status(400)
        }
    });
    let mut app = TestApp::spawn(&env, |config| {
        config.hosted.microsoft = Some(
            toml::from_str(
                "client_id = \"ms-app\"\nclient_secret = \"ms-secret\"\nauthorize_url = \"https://login.example.test/common/oauth2/v2.0/authorize\"",
            )
            .unwrap(),
        );
    })
    .await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    let (_, cookie, token) = open_page(&app).await;
    let (status, _, html) = submit(
        &app,
        Some(&cookie),
        &[
            ("email", "carol@example.test"),
            ("password", PASSWORD),
            ("csrf", token.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("action=\"/oauth/microsoft\""), "{html}");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &token)
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scopes", "email.read_only")
        .append_pair("state", "s-1")
        .append_pair("name", "Carol")
        .append_pair("email", "carol@example.test")
        .finish();
    let started = http()
        .post(app.url("/oauth/microsoft"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let to_microsoft = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        to_microsoft
            .as_str()
            .starts_with("https://login.example.test/common/oauth2/v2.0/authorize?")
    );
    let pairs: Vec<(String, String)> = to_microsoft.query_pairs().into_owned().collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("login_hint"), "carol@example.test");
    let sealed_state = get("state");
    assert!(!sealed_state.contains("carol"), "the state is sealed");
    let callback = format!(
        "/oauth/microsoft/callback?code=ms-code&state={}",
        url::form_urlencoded::byte_serialize(sealed_state.as_bytes()).collect::<String>()
    );
    // Another browser (no cookie) cannot finish this sign-in.
    let elsewhere = http().get(app.url(&callback)).send().await.unwrap();
    assert_eq!(elsewhere.status(), 403);
    let response = http()
        .get(app.url(&callback))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn microsoft_sign_in_completes_for_the_mailbox_account() {
    let (status, headers, _) = microsoft_round_trip("Carol@Example.test").await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap();
    assert!(location.starts_with(CALLBACK) && location.contains("code=exd_code_"));
    assert!(location.ends_with("state=s-1"));
}

#[tokio::test]
async fn microsoft_sign_in_as_another_account_connects_nothing() {
    let (status, headers, html) = microsoft_round_trip("mallory@example.test").await;
    assert_eq!(status, 409);
    assert!(headers.get("location").is_none());
    assert!(html.contains("signed in to Microsoft as mallory@example.test"));
}

#[tokio::test]
async fn an_imap_only_mailbox_is_told_so_on_the_page() {
    // Issue 22.4 on the hosted page: the domain's own Autodiscover names IMAP/SMTP only (a web
    // hoster's recorded answer); the page says so in the user's words and sends no password.
    let env = TestEnv::start().await;
    env.host("example.test", autodiscover_only("pox/cpanel-imap.xml"));
    let app = hosted_app(&env).await;
    let page = page_url(&app, CALLBACK, "code", "email.read_only");
    let fields = [
        ("name", "Alice Example"),
        ("email", "alice@example.test"),
        ("password", PASSWORD),
    ];
    let (status, html) = sign_in_through_page(&page, &fields)
        .await
        .expect_err("no code for an IMAP mailbox");
    assert_eq!(status, 200);
    assert!(html.contains("This is not an Exchange mailbox"), "{html}");
    assert!(html.contains("s28.cpanelhost.example:143"), "{html}");
    assert!(env.fleet.seen_by("s28.cpanelhost.example").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_that_will_not_sync_is_told_why_on_the_page() {
    // Issue 25 on the hosted page: with `connect.verify = "sync"`, a quarantined device (the
    // Inbox-only hierarchy of the sync check's fakes) is said in the user's words, with the
    // code for their IT department, and no code goes back to the application.
    use exdisco::discovery::activesync::wbxml::{Element, folder};
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let expected = basic("alice@example.test", PASSWORD);
    env.host("mail.example.test", move |seen: &Seen| {
        if seen.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::status(401).header("WWW-Authenticate", "Basic realm=\"mail\"");
        }
        match seen.query_param("Cmd").as_deref() {
            Some("Provision") => Reply::recorded(&fixture("horde/provision-200.http")),
            Some("FolderSync") => {
                let inbox = Element::new(folder::PAGE, folder::FOLDER_SYNC)
                    .with(Element::new(folder::PAGE, folder::STATUS).text_node("1"))
                    .with(
                        Element::new(folder::PAGE, folder::CHANGES).with(
                            Element::new(folder::PAGE, folder::ADD)
                                .with(Element::new(folder::PAGE, folder::TYPE).text_node("2")),
                        ),
                    );
                let mut reply = Reply::status(200);
                reply.body = exdisco::discovery::activesync::wbxml::encode(&inbox);
                reply
            }
            _ => activesync_ok(),
        }
    });
    let mut app = TestApp::spawn(&env, |config| {
        config.connect.verify = exdisco::connect::VerifyMode::Sync;
    })
    .await;
    app.use_client("Acme Mail", vec![CALLBACK.to_owned()]).await;
    let page = page_url(&app, CALLBACK, "code", "email.read_only");
    let fields = [
        ("name", "Alice Example"),
        ("email", "alice@example.test"),
        ("password", PASSWORD),
    ];
    let (status, html) = sign_in_through_page(&page, &fields)
        .await
        .expect_err("no code for a mailbox that will not sync");
    assert_eq!(status, 422);
    assert!(html.contains("Your mailbox cannot sync yet"), "{html}");
    assert!(
        html.contains("holds new devices until an administrator allows them"),
        "{html}"
    );
    assert!(html.contains("device_quarantined"), "{html}");
}
