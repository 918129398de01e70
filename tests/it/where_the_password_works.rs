//! Issue 22.2 to 22.4: a report ends where the password works. A mailbox that moved (ActiveSync
//! 451, recorded shape `activesync/eas-451-o365.http`) is where it moved; a refusal by the
//! domain's own Autodiscover outweighs an anonymous answer; a domain whose Autodiscover names
//! only IMAP/SMTP (`pox/cpanel-imap.xml`, `pox/mailcow-imap.http`) is said to be that.

use exdisco::discovery::{KnownHost, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::{Code, Provider};

use crate::cli::{args, exdisco};
use crate::support::app::TestApp;
use crate::support::*;

const PASSWORD: &str = "Moved-Mailbox-2026";
const ONPREM_URL: &str = "https://mail.example.test/Microsoft-Server-ActiveSync";

/// An Exchange 2016 ActiveSync endpoint that answers alice's password with the recorded 451
/// to Exchange Online ([MS-ASHTTP] 3.1.5.2.2). The recording's lab name for Exchange Online is
/// put back to the real one, which the provider is told by.
fn moved_to(env: &TestEnv, location_host: &'static str) {
    let expected = basic("alice@example.test", PASSWORD);
    env.host("mail.example.test", move |s| match &s.authorization {
        Some(auth) if *auth == expected => {
            let raw = String::from_utf8(fixture("activesync/eas-451-o365.http")).unwrap();
            Reply::recorded(
                raw.replace("outlook.office365.example", location_host)
                    .as_bytes(),
            )
        }
        _ => Reply::fixture("activesync/options-exchange2016-401.http"),
    });
}

/// Alice's password checked on the on-premises host she names (`exchange_server_host`).
async fn verify_on_premises(env: &TestEnv) -> exdisco::report::Report {
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let credentials = Credentials::new("alice@example.test", PASSWORD);
    pipeline
        .known_host(
            &address,
            KnownHost::explicit("mail.example.test"),
            Some(&credentials),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_mailbox_moved_to_exchange_online_is_reported_there() {
    let env = TestEnv::start().await;
    moved_to(&env, "outlook.office365.com");
    env.host(
        "outlook.office365.com",
        activesync_only("activesync/options-office365-401-bearer.http"),
    );
    let report = verify_on_premises(&env).await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("outlook.office365.com"),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.provider, Some(Provider::Office365));
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://outlook.office365.com/Microsoft-Server-ActiveSync")
    );
    assert_eq!(report.moved_from.as_deref(), Some(ONPREM_URL));
    assert!(
        env.fleet
            .seen_by("outlook.office365.com")
            .iter()
            .all(|s| s.authorization.is_none()),
        "Exchange Online takes no password"
    );

    // The daemon answers as for any Exchange Online mailbox, and stores nothing.
    let app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("alice@example.test", PASSWORD, Some("mail.example.test"));
    let (status, _, body) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "provider_error");
    assert!(
        body["message"].as_str().unwrap().contains("office365"),
        "{body}"
    );
}

#[tokio::test]
async fn a_move_outside_the_domain_is_the_consent_case_and_the_old_host_is_not_reported() {
    let env = TestEnv::start().await;
    moved_to(&env, "mail.hoster.test");
    env.host("mail.hoster.test", |s| match &s.authorization {
        Some(_) => activesync_ok(),
        None => Reply::fixture("activesync/sogo-options-anonymous.http"),
    });
    let report = verify_on_premises(&env).await;
    assert!(
        report.exchange_server_host.is_none(),
        "not the host it moved out of: {:?}",
        report.exchange_server_host
    );
    assert!(!report.confirmed);
    assert_eq!(
        report.error.as_ref().map(|f| f.code),
        Some(Code::NeedsConsent)
    );
    assert_eq!(
        report.needs_consent.as_ref().map(|c| c.host.as_str()),
        Some("mail.hoster.test")
    );
    assert!(
        env.fleet
            .seen_by("mail.hoster.test")
            .iter()
            .all(|s| s.authorization.is_none())
    );

    // The daemon asks for consent; given, the password follows the move, and the account
    // lives where the mailbox moved.
    let app = TestApp::spawn(&env, |_| {}).await;
    let mut request =
        app.exchange_request("alice@example.test", PASSWORD, Some("mail.example.test"));
    let (status, _, body) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["consent"]["host"], "mail.hoster.test");
    request["settings"]["consented_autodiscover_host"] = "mail.hoster.test".into();
    let token = app.connect(&request).await;
    let (status, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(account["exchange_server_host"], "mail.hoster.test");
}

#[tokio::test]
async fn a_refusal_by_the_domains_autodiscover_outweighs_an_anonymous_v2_answer() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    // Anonymous or with the wrong password: mailcow's recorded 401; v2 without one.
    env.host(
        "autodiscover.example.test",
        autodiscover_with_v2("pox/mailcow-401.http"),
    );
    env.host(
        "owa.example.test",
        exchange(basic("alice@example.test", "the-right-one")),
    );
    let wrong = Credentials::new("alice@example.test", "not-the-password");
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&wrong))
        .await;
    let failure = report.error.as_ref().expect("refused");
    assert_eq!(failure.code, Code::AuthFailed, "{:#?}", report.trail);
    assert!(report.exchange_server_host.is_none());
    assert!(failure.message.contains("owa.example.test"));

    // The command line verifies by default and says so with exit status 1.
    let run = exdisco(
        &env,
        args(&[
            "discover",
            "--json",
            "--username",
            "alice@example.test",
            "--password-stdin",
            "alice@example.test",
        ]),
        Some("not-the-password\n".into()),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "auth_failed");
    assert!(json["exchange_server_host"].is_null());
}

#[tokio::test]
async fn a_password_refused_by_activesync_is_refused_by_discover() {
    // Without --no-verify, `discover` with a password ends where the password works.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |s| {
        if s.is_autodiscover() {
            Reply::xml(settings_answer("mail.example.test"))
        } else {
            Reply::status(404)
        }
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", "the-right-one")),
    );
    let discover = |extra: &[&str]| {
        let mut list = vec![
            "discover",
            "--json",
            "--username",
            "alice@example.test",
            "--password-stdin",
        ];
        list.extend_from_slice(extra);
        list.push("alice@example.test");
        args(&list)
    };
    let run = exdisco(&env, discover(&[]), Some("wrong\n".into())).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "auth_failed");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mail.example.test"),
        "the host in the detail only: {json}"
    );
    let run = exdisco(&env, discover(&["--no-verify"]), Some("wrong\n".into())).await;
    assert_eq!(run.code, 0, "--no-verify only discovers: {}", run.stdout);
}

#[tokio::test]
async fn an_imap_only_domain_is_told_so_with_its_servers() {
    let env = TestEnv::start().await;
    env.host("example.test", autodiscover_only("pox/cpanel-imap.xml"));
    let report = env
        .discover_with(env.config(), "alice@example.test", None)
        .await;
    let failure = report.error.as_ref().expect("not Exchange");
    assert_eq!(failure.code, Code::ImapOnly, "{:#?}", report.trail);
    let servers: Vec<String> = report.mail_servers.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        servers,
        [
            "imap s28.cpanelhost.example:143 (ssl)",
            "pop3 s28.cpanelhost.example:995 (ssl)",
            "smtp s28.cpanelhost.example:587 (starttls)",
        ]
    );
    assert!(report.remedy.as_ref().unwrap().to_string().contains("IMAP"));
    assert!(
        env.fleet.seen_by("s28.cpanelhost.example").is_empty(),
        "nothing is sent to the IMAP host for Exchange's sake"
    );
}

#[tokio::test]
async fn mailcows_imap_answer_outranks_a_failing_mobilesync_fallback() {
    // The Outlook schema gets mailcow's recorded IMAP/SMTP answer to the password; the
    // mobilesync fallback ends in an HTTP error (the 400 of issue 22.4).
    let env = TestEnv::start().await;
    env.refused("rsmcow.example");
    let expected = basic("max@rsmcow.example", PASSWORD);
    env.host("autodiscover.rsmcow.example", move |s| {
        if !s.is_autodiscover() {
            return Reply::status(404);
        }
        match &s.authorization {
            Some(auth) if *auth == expected && s.body.contains("mobilesync") => Reply::status(400),
            Some(auth) if *auth == expected => Reply::shape("pox/mailcow-imap.http", s),
            _ => Reply::fixture("pox/mailcow-401.http"),
        }
    });
    let credentials = Credentials::new("max@rsmcow.example", PASSWORD);
    let report = env
        .discover_with(env.config(), "max@rsmcow.example", Some(&credentials))
        .await;
    assert_eq!(
        report.error.as_ref().map(|f| f.code),
        Some(Code::ImapOnly),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.mail_servers.len(), 2, "IMAP and SMTP");
    assert_eq!(report.mail_servers[0].server, "imap.rsmcow.example");
    assert!(env.fleet.seen_by("imap.rsmcow.example").is_empty());

    // The daemon says so, with the servers, for the platform's IMAP connector.
    let app = TestApp::spawn(&env, |_| {}).await;
    let request = app.exchange_request("max@rsmcow.example", PASSWORD, None);
    let (status, _, body) = app.post("/connect/authorize", &request).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "imap_only");
    assert_eq!(body["mail_servers"][0]["protocol"], "imap");
    assert_eq!(body["mail_servers"][0]["server"], "imap.rsmcow.example");
    assert_eq!(body["mail_servers"][0]["port"], 993);
}

#[tokio::test]
async fn a_consented_hosts_acceptance_does_not_spare_the_domains_budget() {
    // Rule 19: only a host that speaks for the domain can prove a password right. A host the
    // user consented to may accept anything; were its acceptance believed, every later attempt
    // at the domain's own servers would go unbudgeted.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |s| {
        Reply::redirect(302, &format!("https://autodiscover.partner.test{}", s.path))
    });
    env.host("autodiscover.partner.test", |s| match &s.authorization {
        // Accepts any password.
        Some(_) => Reply::xml(settings_answer("mail.example.test")),
        None => Reply::fixture("pox/zpush-401.http"),
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", "the-right-one")),
    );
    let mut config = env.config();
    config.limits.credential_attempts_per_account = 1;
    let pipeline = Pipeline::builder(config).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let guess = Credentials::new("alice@example.test", "a-guess");
    let report = pipeline
        .discover_and_verify_with_consent(&address, &guess, &["autodiscover.partner.test".into()])
        .await;
    assert!(
        env.fleet
            .seen_by("autodiscover.partner.test")
            .iter()
            .any(|s| s.authorization.is_some()),
        "the consented host got the password: {:#?}",
        report.trail
    );
    assert!(
        env.fleet
            .seen_by("mail.example.test")
            .iter()
            .all(|s| s.authorization.is_none()),
        "the account's one attempt is spent; the partner's 200 proved nothing: {:#?}",
        report.trail
    );
    assert_eq!(
        report.verification.as_ref().map(|p| p.code),
        Some(Code::CredentialBudget)
    );
}
