//! The hosted page as a standard OAuth 2.0 authorization server, driven by a client library
//! nobody here wrote (the `oauth2` crate: authorization code with PKCE), then every RFC
//! error case by hand: RFC 6749 4.1.3 and 5.2, RFC 7636, RFC 8414.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};
use serde_json::{Value, json};

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Spring-2026-not-really";
const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";

async fn oauth_app(env: &TestEnv) -> TestApp {
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let mut app = TestApp::spawn(env, |_| {}).await;
    app.use_client("OAuth App", vec![CALLBACK.to_owned()]).await;
    app
}

/// The sign-in form's fields for Alice on her server.
fn alice() -> Vec<(&'static str, &'static str)> {
    vec![
        ("email", "alice@example.test"),
        ("password", PASSWORD),
        ("step", "server"),
        ("exchange_server_host", "eas.example.test"),
    ]
}

/// The oauth2 crate's HTTP client, over this crate's reqwest.
async fn send(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut answer = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(answer.body(body).expect("a response"))
}

#[tokio::test]
async fn the_oauth2_crate_gets_a_token_with_pkce() {
    let env = TestEnv::start().await;
    let app = oauth_app(&env).await;
    let client = BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(app.url("/oauth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(CALLBACK.to_owned()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (page, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("email.read_only".into()))
        .add_scope(Scope::new("calendar.read_only".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The crate writes `scope` space-delimited (RFC 6749 3.3).
    assert!(
        page.as_str()
            .contains("scope=email.read_only+calendar.read_only")
    );
    let landed = sign_in_through_page(page.as_str(), &alice()).await.unwrap();
    assert!(landed.as_str().starts_with(CALLBACK), "{landed}");
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query_param(&landed, "code").unwrap();
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&send)
        .await
        .unwrap();
    assert_eq!(token.token_type().as_ref(), "bearer");
    assert!(token.expires_in().is_some());
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["calendar.read_only", "email.read_only"]);
    let (status, account) = app.account(token.access_token().secret()).await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["email_address"], "alice@example.test");
    // A code works once, whichever endpoint redeems it.
    let (status, _, answer) = app.post("/connect/token", &app.token_request(&code)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["type"], "invalid_grant");
}

/// A code for Alice, bound to `challenge`, from the hosted page.
async fn code_for(app: &TestApp, client_id: &str, challenge: Option<&str>) -> String {
    let mut page = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    page.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "email.read_only");
    if let Some(challenge) = challenge {
        page.query_pairs_mut()
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
    }
    let landed = sign_in_through_page(page.as_str(), &alice()).await.unwrap();
    query_param(&landed, "code").expect("a code")
}

/// POSTs a form to `/oauth/token`, with HTTP Basic when `basic` is given.
async fn token(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749_and_7636() {
    let env = TestEnv::start().await;
    let app = oauth_app(&env).await;
    let client = (app.client_id.as_str(), app.client_secret.as_str());
    let code = code_for(&app, client.0, Some(CHALLENGE)).await;
    let grant = |verifier: &'static str, redirect: &'static str| {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ]
    };
    // 5.2: invalid_client, 401 with WWW-Authenticate for a client that used Basic.
    let (status, headers, answer) = token(
        &app,
        Some((client.0, "exd_cs_wrong")),
        &grant(VERIFIER, CALLBACK),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(headers["www-authenticate"], r#"Basic realm="exdisco""#);
    // unsupported_grant_type, invalid_request.
    let (status, _, answer) = token(&app, Some(client), &[("grant_type", "password")]).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, _, answer) =
        token(&app, Some(client), &[("grant_type", "authorization_code")]).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(answer["error_description"].is_string());
    // RFC 7636 4.6: a wrong verifier is invalid_grant, and spends the code.
    let (status, _, answer) = token(
        &app,
        Some(client),
        &grant("wrong-verifier-wrong-verifier-wrong-verifier-x", CALLBACK),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _, answer) = token(&app, Some(client), &grant(VERIFIER, CALLBACK)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "spent"
    );
    // 4.1.3: the redirect URI must be the one the code was sent to.
    let code = code_for(&app, client.0, Some(CHALLENGE)).await;
    let other = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, answer) = token(&app, Some(client), &other).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A PKCE-bound code needs its verifier at /connect/token too.
    let code = code_for(&app, client.0, Some(CHALLENGE)).await;
    let (status, _, answer) = app.post("/connect/token", &app.token_request(&code)).await;
    assert_eq!(
        (status, answer["type"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The client authenticated by form fields (client_secret_post), all good.
    let code = code_for(&app, client.0, Some(CHALLENGE)).await;
    let post = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", client.0),
        ("client_secret", client.1),
    ];
    let (status, headers, answer) = token(&app, None, &post).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(answer["token_type"], "Bearer");
}

#[tokio::test]
async fn public_clients_must_use_pkce_and_name_the_redirect_uri() {
    let env = TestEnv::start().await;
    let app = oauth_app(&env).await;
    let public =
        exdisco::connect::add_public_client(&app.store, "Phone App", vec![CALLBACK.into()])
            .await
            .unwrap();
    // Without a challenge the page sends the browser back with invalid_request.
    let mut page = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    page.query_pairs_mut()
        .append_pair("client_id", &public)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("response_type", "code")
        .append_pair("scope", "email.read_only");
    let landed = sign_in_through_page(page.as_str(), &alice()).await.unwrap();
    assert_eq!(
        query_param(&landed, "error").as_deref(),
        Some("invalid_request")
    );
    // `plain` is refused: S256 only.
    page.query_pairs_mut()
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "plain");
    let landed = sign_in_through_page(page.as_str(), &alice()).await.unwrap();
    assert_eq!(
        query_param(&landed, "error").as_deref(),
        Some("invalid_request")
    );
    // With PKCE: the code redeems with the client's id only, the verifier and the URI.
    let code = code_for(&app, &public, Some(CHALLENGE)).await;
    let without_uri = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", public.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let (status, _, answer) = token(&app, None, &without_uri).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let code = code_for(&app, &public, Some(CHALLENGE)).await;
    let mut complete = without_uri.to_vec();
    complete[1] = ("code", code.as_str());
    complete.push(("redirect_uri", CALLBACK));
    let (status, _, answer) = token(&app, None, &complete).await;
    assert_eq!(status, 200, "{answer}");
    // A public client's id is not enough for the queue.
    let response = app
        .http
        .post(app.url("/v1/discoveries"))
        .basic_auth(&public, Some(""))
        .json(&json!({"domain": "example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn metadata_names_the_endpoints_rfc_8414() {
    let env = TestEnv::start().await;
    let app = oauth_app(&env).await;
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = format!("http://{}", app.addr);
    assert_eq!(metadata["issuer"], base);
    assert_eq!(metadata["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{base}/oauth/authorize")
    );
    assert_eq!(
        metadata["revocation_endpoint"],
        format!("{base}/oauth/revoke")
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["authorization_code"])
    );
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("email.read_only"))
    );
}

#[tokio::test]
async fn connect_token_redeems_a_pkce_code_with_its_verifier() {
    // Issue 22.5: docs/api.md says a code issued with a PKCE challenge redeems with its verifier
    // at either token endpoint; /connect/token took no code_verifier.
    let env = TestEnv::start().await;
    let app = oauth_app(&env).await;
    let code = code_for(&app, &app.client_id, Some(CHALLENGE)).await;
    let mut request = app.token_request(&code);
    let (status, _, answer) = app.post("/connect/token", &request).await;
    assert_eq!(status, 400, "without its verifier: {answer}");
    assert_eq!(answer["type"], "invalid_grant");

    let code = code_for(&app, &app.client_id, Some(CHALLENGE)).await;
    let mut request_wrong = app.token_request(&code);
    request_wrong["code_verifier"] = "not-the-verifier-not-the-verifier-not-the-verif".into();
    let (status, _, answer) = app.post("/connect/token", &request_wrong).await;
    assert_eq!(status, 400, "{answer}");

    let code = code_for(&app, &app.client_id, Some(CHALLENGE)).await;
    request = app.token_request(&code);
    request["code_verifier"] = VERIFIER.into();
    request["redirect_uri"] = CALLBACK.into();
    let (status, _, answer) = app.post("/connect/token", &request).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].as_str().is_some());
}
