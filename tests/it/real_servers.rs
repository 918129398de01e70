//! Right answers on real servers (issue 11): every fake answers with a recorded shape from
//! `fixtures/` (Exchange 2010/2013, Z-Push, mailcow, Zimbra, a web hoster, Autodiscover v2).
//! Each test fails on the engine that read `ASUrl` as ActiveSync, reported Autodiscover
//! endpoints as hosts, or let a redirect extend trust.

use exdisco::discovery::{KnownHost, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::{Evidence, Method};

use crate::support::*;

const PASSWORD: &str = "Real-Shapes-2026";

fn creds(address: &str) -> Credentials {
    Credentials::new(address, PASSWORD)
}

/// A recorded Autodiscover server: the 401 it sends without credentials, then by schema.
fn autodiscover_server(
    challenge: &'static str,
    outlook: &'static str,
    mobilesync: &'static str,
    user: &str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let expected = basic(user, PASSWORD);
    move |s: &Seen| {
        if !s.is_autodiscover() {
            return Reply::status(404);
        }
        match &s.authorization {
            Some(auth) if *auth == expected && s.body.contains("mobilesync") => {
                Reply::shape(mobilesync, s)
            }
            Some(auth) if *auth == expected => Reply::shape(outlook, s),
            _ => Reply::fixture(challenge),
        }
    }
}

#[tokio::test]
async fn asurl_is_the_availability_service_so_verify_probes_the_activesync_path() {
    // Issue 11.1: Exchange 2010's answer carries ASUrl = /ews/exchange.asmx and no ActiveSync
    // URL. Verification must probe /Microsoft-Server-ActiveSync on the EXPR host.
    let env = TestEnv::start().await;
    env.refused("rs2010.example");
    env.host(
        "autodiscover.rs2010.example",
        autodiscover_server(
            "pox/zpush-401.http",
            "pox/ex2010-outlook.xml",
            "pox/ex-mobilesync-settings.xml",
            "rhea@rs2010.example",
        ),
    );
    env.host(
        "mail.rs2010.example",
        exchange(basic("rhea@rs2010.example", PASSWORD)),
    );
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("rhea@rs2010.example").unwrap();
    let report = pipeline
        .discover_and_verify(&address, &creds("rhea@rs2010.example"))
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.rs2010.example")
    );
    assert_eq!(
        report.ews_url.as_deref(),
        Some("https://mail.rs2010.example/ews/exchange.asmx")
    );
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://mail.rs2010.example/Microsoft-Server-ActiveSync")
    );
    assert_eq!(report.credentials_valid, Some(true), "{:#?}", report.trail);
    assert!(
        env.fleet
            .seen_by("mail.rs2010.example")
            .iter()
            .all(|s| s.path == "/Microsoft-Server-ActiveSync"),
        "the EWS URL is never probed as ActiveSync"
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_failure() {
    // Issue 11.4: the domain's own Autodiscover refuses the password; an anonymous ActiveSync
    // guess must not turn that into a found host.
    let env = TestEnv::start().await;
    autodiscover_refusing_passwords(&env, PASSWORD);
    let wrong = Credentials::new("alice@example.test", "not-the-password");
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&wrong))
        .await;
    assert_eq!(report.exchange_server_host, None, "{:#?}", report.trail);
    assert_eq!(report.error.as_ref().unwrap().code, "auth_failed");
    assert!(
        report
            .trail
            .iter()
            .any(|a| a.target == "https://mail.example.test/Microsoft-Server-ActiveSync"),
        "what else was learned stays in the trail"
    );
}

#[tokio::test]
async fn zpush_answers_only_the_mobilesync_schema() {
    // Issue 11.7: Z-Push answers the Outlook schema with an empty 500 and the mobilesync schema
    // with the settings (served as text/html).
    let env = TestEnv::start().await;
    env.refused("rszpush.example");
    env.host(
        "autodiscover.rszpush.example",
        autodiscover_server(
            "pox/zpush-401.http",
            "pox/zpush-500.http",
            "pox/zpush-mobilesync.http",
            "zack@rszpush.example",
        ),
    );
    env.host("push.rszpush.example", |_| {
        Reply::fixture("activesync/zpush-eas-options-200.http")
    });
    let report = env
        .discover_with(
            env.config(),
            "zack@rszpush.example",
            Some(&creds("zack@rszpush.example")),
        )
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("push.rszpush.example"),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.evidence, Some(Evidence::Settings));
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://push.rszpush.example/Microsoft-Server-ActiveSync")
    );
}

#[tokio::test]
async fn mailcow_imap_settings_are_not_exchange_and_mobilesync_names_activesync() {
    let env = TestEnv::start().await;
    env.refused("rsmcow.example");
    env.host(
        "autodiscover.rsmcow.example",
        autodiscover_server(
            "pox/mailcow-401.http",
            "pox/mailcow-imap.http",
            "pox/mailcow-mobilesync.http",
            "max@rsmcow.example",
        ),
    );
    let report = env
        .discover_with(
            env.config(),
            "max@rsmcow.example",
            Some(&creds("max@rsmcow.example")),
        )
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.rsmcow.example"),
        "not the IMAP host: {:#?}",
        report.trail
    );
    assert!(codes(&report).contains(&"pox_not_exchange"));
}

#[tokio::test]
async fn a_web_hosters_imap_only_answer_is_not_an_exchange_host() {
    let env = TestEnv::start().await;
    env.host("example.test", autodiscover_only("pox/cpanel-imap.xml"));
    let report = env
        .discover_with(env.config(), "alice@example.test", None)
        .await;
    assert_ne!(
        report.exchange_server_host.as_deref(),
        Some("s28.cpanelhost.example")
    );
    assert!(codes(&report).contains(&"pox_not_exchange"));
}

#[tokio::test]
async fn zimbra_upper_case_basic_and_an_ews_only_block() {
    let env = TestEnv::start().await;
    env.refused("rszimbra.example");
    env.host(
        "autodiscover.rszimbra.example",
        autodiscover_server(
            "pox/zimbra-401.http",
            "pox/zimbra-ews.http",
            "pox/zimbra-mobilesync.http",
            "zora@rszimbra.example",
        ),
    );
    let report = env
        .discover_with(
            env.config(),
            "zora@rszimbra.example",
            Some(&creds("zora@rszimbra.example")),
        )
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("webmail.rszimbra.example")
    );
    assert_eq!(
        report.ews_url.as_deref(),
        Some("https://webmail.rszimbra.example/ews/Exchange.asmx")
    );
}

#[tokio::test]
async fn anonymous_v2_on_the_domains_own_host_names_the_mailbox_server() {
    // Issue 11.3: Exchange 2016 CU3+ answers v2 without authentication; the address stays on
    // the domain's own server.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        autodiscover_with_v2("pox/zpush-401.http"),
    );
    let report = env
        .discover_with(env.config(), "alice@example.test", None)
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("owa.example.test"),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.method, Some(Method::AutodiscoverV2));
    assert!(
        report.confirmed,
        "named by the domain's own Autodiscover host"
    );
    assert_eq!(
        report.ews_url.as_deref(),
        Some("https://owa.example.test/EWS/Exchange.asmx")
    );
    let get = env
        .fleet
        .seen_by("autodiscover.example.test")
        .into_iter()
        .find(|s| s.path == "/autodiscover/autodiscover.json")
        .expect("the v2 request");
    assert!(get.authorization.is_none());
    assert!(
        env.fleet
            .seen()
            .iter()
            .all(|s| !s.host.contains("office365"))
    );
}

#[tokio::test]
async fn v2_user_not_found_is_no_answer() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |s| {
        if s.path == "/autodiscover/autodiscover.json" {
            Reply::xml(fixture("v2/v2-onprem-usernotfound.json"))
        } else {
            Reply::status(404)
        }
    });
    let report = env
        .discover_with(env.config(), "nobody@example.test", None)
        .await;
    assert_eq!(report.exchange_server_host, None);
    assert!(codes(&report).contains(&"v2_error"), "{:?}", codes(&report));
}

#[tokio::test]
async fn an_activesync_451_to_a_foreign_host_gets_no_password() {
    // Issue 11.6: a 451 whose X-MS-Location names another domain is asked anonymously; a
    // server there that accepts any password never sees one.
    let env = TestEnv::start().await;
    let expected = basic("alice@example.test", PASSWORD);
    env.host("mail.example.test", move |s| match &s.authorization {
        Some(auth) if *auth == expected => Reply::status(451).header(
            "X-MS-Location",
            "https://mail.evil.test/Microsoft-Server-ActiveSync",
        ),
        _ => Reply::fixture("activesync/sogo-options-anonymous.http"),
    });
    env.host("mail.evil.test", |s| match &s.authorization {
        Some(_) => activesync_ok(),
        None => Reply::fixture("activesync/sogo-options-anonymous.http"),
    });
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let credentials = creds("alice@example.test");
    let known = KnownHost::explicit("mail.example.test");
    let report = pipeline
        .known_host(&address, known, Some(&credentials))
        .await
        .unwrap();
    assert!(
        env.fleet
            .seen_by("mail.evil.test")
            .iter()
            .all(|s| s.authorization.is_none()),
        "the password stays in the domain"
    );
    assert_ne!(report.credentials_valid, Some(true));
    let consent = report.needs_consent.as_ref().expect("needs consent");
    assert_eq!(consent.host, "mail.evil.test");
    assert_eq!(consent.reason, "activesync_move_outside_domain");
}

#[tokio::test]
async fn an_anonymous_redirect_url_to_a_foreign_host_gets_no_password() {
    // Issue 11.6: the root domain's anonymous 200 with redirectUrl to a foreign host, while
    // autodiscover.DOMAIN is still answering.
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        redirect_url_answer("autodiscover.evil.test")
    });
    env.host("autodiscover.evil.test", |s| match &s.authorization {
        Some(_) => Reply::xml(settings_answer("mail.evil.test")),
        None => Reply::fixture("pox/zpush-401.http"),
    });
    let expected = basic("alice@example.test", PASSWORD);
    env.host("autodiscover.example.test", move |s| {
        match &s.authorization {
            Some(auth) if *auth == expected => Reply::xml(settings_answer("mail.example.test"))
                .delayed(std::time::Duration::from_millis(50)),
            _ => Reply::fixture("pox/zpush-401.http"),
        }
    });
    let report = env
        .discover_with(
            env.config(),
            "alice@example.test",
            Some(&creds("alice@example.test")),
        )
        .await;
    assert!(
        env.fleet
            .seen_by("autodiscover.evil.test")
            .iter()
            .all(|s| s.authorization.is_none())
    );
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    assert_eq!(
        report.needs_consent.as_ref().map(|c| c.host.as_str()),
        Some("autodiscover.evil.test")
    );
}
