//! The platform SDK (npm `nylas` 6.x, pinned in `tests/nylas/package.json`), unchanged, run by
//! `node` against the daemon: native authentication, `/account`, revocation, and hosted
//! authentication (`urlForAuthentication`, the sign-in page, `exchangeCodeForToken`). It
//! skips without `node` and `tests/nylas/node_modules` (`npm ci --prefix tests/nylas`),
//! unless `EXDISCO_REQUIRE_NODE` is set, as `.ci/run` does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Sdk-2026-not-really";
const CALLBACK: &str = "http://127.0.0.1:9/nylas/callback";

fn sdk_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nylas");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if node && dir.join("node_modules/nylas").is_dir() {
        return Some(dir);
    }
    skip(
        "NODE",
        "no node or no tests/nylas/node_modules (npm ci --prefix tests/nylas)",
    );
    None
}

/// `node sdk.js ARGS` with the app's client; its JSON line.
async fn sdk(dir: &Path, app: &TestApp, args: &[&str]) -> Value {
    let output = tokio::process::Command::new("node")
        .arg(dir.join("sdk.js"))
        .args(args)
        .env("API_SERVER", app.url(""))
        .env("CLIENT_ID", &app.client_id)
        .env("CLIENT_SECRET", &app.client_secret)
        .env("EMAIL", "alice@example.test")
        .env("PASSWORD", PASSWORD)
        .env("HOST", "eas.example.test")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sdk.js {args:?}: {stdout} {stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("sdk.js {args:?}: {stdout}"))
}

#[tokio::test]
async fn the_platform_sdk_works_unchanged() {
    let Some(dir) = sdk_dir() else { return };
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let mut app = TestApp::spawn(&env, |_| {}).await;
    app.use_client("SDK App", vec![CALLBACK.to_owned()]).await;
    // Native authentication: JSON sent as text/plain, the token as the Basic user name.
    let native = sdk(&dir, &app, &["native"]).await;
    assert_eq!(native["tokenEmail"], "alice@example.test", "{native}");
    assert_eq!(native["email"], "alice@example.test", "{native}");
    assert!(native["accountId"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(native["afterRevoke"], 401, "revoked: {native}");
    // Hosted authentication: the SDK's URL, the page, then its GET /oauth/token.
    let url = sdk(&dir, &app, &["auth-url", CALLBACK]).await;
    let fields = [
        ("email", "alice@example.test"),
        ("password", PASSWORD),
        ("step", "server"),
        ("exchange_server_host", "eas.example.test"),
    ];
    let landed = sign_in_through_page(url["url"].as_str().unwrap(), &fields)
        .await
        .unwrap();
    assert_eq!(query_param(&landed, "state").as_deref(), Some("sdk-state"));
    let code = query_param(&landed, "code").unwrap();
    let hosted = sdk(&dir, &app, &["exchange", &code]).await;
    assert_eq!(hosted["email"], "alice@example.test", "{hosted}");
    assert_eq!(hosted["accountId"], native["accountId"], "the same account");
    assert_eq!(hosted["afterRevoke"], 401, "{hosted}");
}

#[tokio::test]
async fn the_sdks_account_management_works_unchanged() {
    // Issue 26.4: Nylas.accounts.list/find/delete, account.tokenInfo/revokeAll/upgrade, with
    // the client secret as the Basic user name as the SDK sends it.
    let Some(dir) = sdk_dir() else { return };
    let env = TestEnv::start().await;
    env.host(
        "eas.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let app = TestApp::spawn(&env, |_| {}).await;
    let managed = sdk(&dir, &app, &["manage"]).await;
    let listed = managed["listed"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{managed}");
    assert_eq!(listed[0]["email"], "alice@example.test");
    assert_eq!(managed["found"]["authenticationType"], "password");
    assert_eq!(managed["info"]["scopes"], "email.read_only");
    assert_eq!(managed["info"]["state"], "valid");
    assert_eq!(managed["keptByRevokeAll"], 200, "the token named is kept");
    assert_eq!(managed["upgrade"], 400, "no billing here, said clearly");
    assert_eq!(managed["afterRevokeAll"], 401);
    assert_eq!(managed["stateAfter"], "invalid");
    assert_eq!(managed["findAfterDelete"], 404);
    // Deleted with its sealed secret and tokens.
    let db = rusqlite::Connection::open(&app.config.store.path).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    let tokens: i64 = db
        .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!((rows, tokens), (0, 0));
}
