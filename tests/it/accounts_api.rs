//! The platform's account management API (issue 26.4) as plain HTTP: a client sees only its
//! own accounts, a wrong secret gets 401, the SDK's form of the secret and the Basic pair
//! both prove the client. The SDK itself drives it in `nylas_sdk.rs`.

use serde_json::Value;

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Manage-2026-pass";

async fn get(app: &TestApp, path: &str, user: &str, password: Option<&str>) -> (u16, Value) {
    let response = app
        .http
        .get(app.url(path))
        .basic_auth(user, password)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_client_sees_only_its_own_accounts() {
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let mut app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("eas.example.test"));
    let token = app.connect(&request).await;
    let account = token["account_id"].as_str().unwrap().to_owned();
    let (first_id, first_secret) = (app.client_id.clone(), app.client_secret.clone());

    let list = format!("/a/{first_id}/accounts");
    let (status, listed) = get(&app, &list, &first_secret, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, _) = get(&app, &list, &first_id, Some(&first_secret)).await;
    assert_eq!(status, 200, "client_id:client_secret proves the client too");
    let (status, _) = get(&app, &list, "not-the-secret", None).await;
    assert_eq!(status, 401);

    app.use_client("Other App", vec![]).await;
    let (other_id, other_secret) = (app.client_id.clone(), app.client_secret.clone());
    let (status, listed) = get(
        &app,
        &format!("/a/{other_id}/accounts"),
        &other_secret,
        None,
    )
    .await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(0)));
    let (status, _) = get(
        &app,
        &format!("/a/{other_id}/accounts/{account}"),
        &other_secret,
        None,
    )
    .await;
    assert_eq!(status, 404, "another client's account is not found");
    let (status, _) = get(&app, &list, &other_secret, None).await;
    assert_eq!(
        status, 401,
        "one client's secret does not open another's path"
    );
    let (status, _) = get(&app, &format!("{list}?limit=x"), &first_secret, None).await;
    assert_eq!(status, 400);
}
