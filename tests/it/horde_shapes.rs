//! Horde Groupware's answers (recorded from the real server, `fixtures/horde/`), played by a
//! fake that behaves as Horde does: Autodiscover checks only the password (pitfall 2), answers
//! the Outlook schema with IMAP/SMTP and the mobilesync schema with the ActiveSync URL, which
//! drops the port (pitfall 1); ActiveSync checks the user too and sends its `MS-AS*` headers
//! with every 401 (pitfall 4). The tests against the real server are in `horde.rs`.
//!
//! Issue 22.1: with default settings and the right password, Horde is found and verified; a
//! wrong password still gets no more attempts than the budget allows.

use base64::Engine;
use exdisco::discovery::Pipeline;
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::{Code, ProbeOutcome};

use crate::support::*;

const ADDRESS: &str = "test@horde.test";
const PASSWORD: &str = "EasTest-Passw0rd";

/// The password of a Basic header, whatever its user name.
fn password_of(authorization: &str) -> Option<String> {
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

/// Horde as recorded: see the module's comment.
fn horde(s: &Seen) -> Reply {
    if s.is_autodiscover() {
        let right = s
            .authorization
            .as_deref()
            .and_then(password_of)
            .is_some_and(|p| p == PASSWORD);
        return match (right, s.body.contains("mobilesync")) {
            (false, _) => Reply::fixture("horde/ad-401.http"),
            (true, true) => Reply::fixture("horde/ad-mobilesync.http"),
            (true, false) => Reply::fixture("horde/ad-outlook-imap.http"),
        };
    }
    if s.authorization.as_deref() == Some(basic(ADDRESS, PASSWORD).as_str()) {
        Reply::fixture("horde/options-200.http")
    } else {
        Reply::fixture("horde/options-401.http")
    }
}

fn horde_env(env: &TestEnv) {
    env.host("horde.test", horde);
    env.host("autodiscover.horde.test", horde);
}

fn with_password(env: &TestEnv, password: &str) -> usize {
    env.fleet
        .seen()
        .iter()
        .filter(|s| {
            s.authorization
                .as_deref()
                .and_then(password_of)
                .is_some_and(|p| p == password)
        })
        .count()
}

#[tokio::test]
async fn horde_is_found_and_verified_with_default_settings() {
    let env = TestEnv::start().await;
    horde_env(&env);
    let config = env.config();
    let cap = config.limits.credential_attempts_per_discovery;
    let pipeline = Pipeline::builder(config).build().unwrap();
    let address = EmailAddress::parse(ADDRESS).unwrap();
    let report = pipeline
        .discover_and_verify(&address, &Credentials::new(ADDRESS, PASSWORD))
        .await;
    assert!(report.error.is_none(), "{:#?}", report.trail);
    assert_eq!(report.exchange_server_host.as_deref(), Some("horde.test"));
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://horde.test/Microsoft-Server-ActiveSync"),
        "the URL as Horde gave it (pitfall 1: no port added back)"
    );
    assert_eq!(report.credentials_valid, Some(true));
    assert!(report.confirmed);
    assert!(
        !codes(&report).contains(&"credential_budget"),
        "an accepted password spends no budget: {:#?}",
        report.trail
    );
    assert!(
        with_password(&env, PASSWORD) > cap as usize,
        "the Outlook answer, the mobilesync fallback and the verification all got the \
         accepted password"
    );
    let anonymous_fallbacks = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.is_autodiscover() && s.authorization.is_none())
        .filter(|s| s.body.contains("mobilesync"))
        .count();
    assert_eq!(
        anonymous_fallbacks, 0,
        "a URL that just answered the password is not asked anonymously again"
    );
}

#[tokio::test]
async fn a_wrong_password_gets_no_more_attempts_than_before() {
    let env = TestEnv::start().await;
    horde_env(&env);
    let config = env.config();
    let per_discovery = config.limits.credential_attempts_per_discovery as usize;
    let per_account = config.limits.credential_attempts_per_account as usize;
    let pipeline = Pipeline::builder(config).build().unwrap();
    let address = EmailAddress::parse(ADDRESS).unwrap();
    let wrong = Credentials::new(ADDRESS, "not-the-password");
    let report = pipeline.discover_and_verify(&address, &wrong).await;
    assert_eq!(
        report.error.as_ref().map(|f| f.code),
        Some(Code::AuthFailed)
    );
    assert!(report.exchange_server_host.is_none());
    assert!(with_password(&env, "not-the-password") <= per_discovery);

    // The right password, accepted, does not lift the budget for any other password.
    let right = pipeline
        .discover_and_verify(&address, &Credentials::new(ADDRESS, PASSWORD))
        .await;
    assert_eq!(right.credentials_valid, Some(true), "{:#?}", right.trail);
    for _ in 0..4 {
        pipeline.discover_and_verify(&address, &wrong).await;
    }
    assert!(
        with_password(&env, "not-the-password") <= per_account,
        "wrong passwords stay within the account's budget: {}",
        with_password(&env, "not-the-password")
    );
    let spent = pipeline.discover_and_verify(&address, &wrong).await;
    assert_eq!(
        spent.error.as_ref().map(|f| f.code),
        Some(Code::CredentialBudget),
        "{:#?}",
        spent.trail
    );
}

#[tokio::test]
async fn the_user_name_horde_ignores_is_checked_where_the_mailbox_is() {
    // Pitfall 2: Horde's Autodiscover takes any user name with the right password; its
    // ActiveSync does not. The report ends where the credentials work: nowhere.
    let env = TestEnv::start().await;
    horde_env(&env);
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse(ADDRESS).unwrap();
    let report = pipeline
        .discover_and_verify(&address, &Credentials::new("someone-else", PASSWORD))
        .await;
    let failure = report.error.as_ref().expect("refused");
    assert_eq!(failure.code, Code::AuthFailed, "{:#?}", report.trail);
    assert!(report.exchange_server_host.is_none());
    assert!(
        failure.message.contains("horde.test"),
        "{}",
        failure.message
    );
    assert_eq!(report.credentials_valid, Some(false));
}

#[tokio::test]
async fn without_the_password_no_endpoint_is_the_mailbox_host() {
    // Pitfall 4: Horde's anonymous 401s carry every MS-AS* header; they prove an endpoint,
    // never a login, and an Autodiscover endpoint is never reported as the mailbox's host.
    let env = TestEnv::start().await;
    horde_env(&env);
    let report = env.discover(ADDRESS).await;
    assert!(report.exchange_server_host.is_none(), "{:#?}", report.trail);
    assert_eq!(
        report.error.as_ref().map(|f| f.code),
        Some(Code::AuthRequired)
    );
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let url = url::Url::parse("https://horde.test/Microsoft-Server-ActiveSync").unwrap();
    let (probe, _) = pipeline.probe(&url, None).await;
    assert_eq!(probe.outcome, ProbeOutcome::AuthRequired);
    assert!(!probe.versions.is_empty(), "the 401 did carry the versions");
}
