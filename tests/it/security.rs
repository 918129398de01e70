//! One test (at least) per security rule that touches discovery; each fails if its rule breaks.

use std::net::Ipv4Addr;
use std::time::Duration;

use exdisco::discovery::Pipeline;
use exdisco::domain::Credentials;
use exdisco::domain::EmailAddress;
use exdisco::report::{Evidence, Method};
use hickory_proto::rr::RecordType;

use crate::support::*;

const PASSWORD: &str = "correct horse battery staple";

fn creds() -> Credentials {
    Credentials::new("alice@example.test", PASSWORD)
}

fn basic_challenge(realm: &str) -> Reply {
    Reply::status(401).header("WWW-Authenticate", &format!("Basic realm=\"{realm}\""))
}

/// A host that answers settings only to the right Basic credentials.
fn guarded(expected: String) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| match &s.authorization {
        Some(auth) if *auth == expected => Reply::xml(settings_answer("mail.example.test")),
        _ => basic_challenge("exchange"),
    }
}

#[tokio::test]
async fn rule_1_credentials_follow_a_challenge_over_verified_https_only() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        guarded(basic("alice@example.test", PASSWORD)),
    );
    // Every candidate at once, so that the plain-HTTP GET happens beside the https POSTs.
    let mut config = env.config();
    config.second_wave_delay = Duration::ZERO;
    let report = env
        .discover_with(config, "alice@example.test", Some(&creds()))
        .await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    let seen = env.fleet.seen_by("autodiscover.example.test");
    assert!(
        seen.iter()
            .filter(|s| s.authorization.is_some())
            .all(|s| s.tls)
    );
    let plain = seen
        .iter()
        .find(|s| !s.tls)
        .expect("the http redirect GET happened");
    assert!(
        plain.authorization.is_none(),
        "no credentials over plain http"
    );
    assert!(
        seen.iter().any(|s| s.tls && s.authorization.is_none()),
        "anonymous first"
    );
}

#[tokio::test]
async fn rule_1_no_credentials_to_a_host_with_a_bad_certificate() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host_with_cert(
        "autodiscover.example.test",
        CertKind::SelfSigned,
        guarded(basic("alice@example.test", PASSWORD)),
    );
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert!(!report.is_found());
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn rule_3_foreign_srv_target_gets_no_credentials_and_is_not_confirmed() {
    let env = TestEnv::start().await;
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "autodiscover.attacker.test",
    );
    env.host("autodiscover.attacker.test", |_| {
        basic_challenge("give me your password")
    });
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert!(
        env.fleet
            .seen_by("autodiscover.attacker.test")
            .iter()
            .all(|s| s.authorization.is_none())
    );
    assert!(codes(&report).contains(&"credentials_withheld"));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("autodiscover.attacker.test")
    );
    assert!(
        !report.confirmed,
        "a foreign SRV target is only a candidate"
    );
    assert_eq!(report.evidence, Some(Evidence::ActiveSyncEndpoint));
    let consent = report.needs_consent.as_ref().expect("needs consent");
    assert_eq!(consent.host, "autodiscover.attacker.test");
    assert_eq!(consent.reason, "srv_target_outside_domain");
}

#[tokio::test]
async fn rule_3_foreign_settings_over_http_redirect_are_unconfirmed() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        plain_http_redirect("https://autodiscover.attacker.test/autodiscover/autodiscover.xml"),
    );
    env.host("autodiscover.attacker.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert_eq!(report.method, Some(Method::HttpRedirect));
    assert!(!report.confirmed);
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn rule_4_a_redirect_outside_the_domain_needs_consent() {
    // Issue 11.5: the domain's own autodiscover host 302s the POST to a foreign host. That
    // never extends trust, whoever sent it: the foreign host is asked anonymously, and the
    // report names it as needing consent.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::redirect(
            302,
            "https://autodiscover.evil.test/autodiscover/autodiscover.xml",
        )),
    );
    let evil = guarded(basic("alice@example.test", PASSWORD));
    env.host("autodiscover.evil.test", move |s| {
        if s.is_autodiscover() {
            evil(s)
        } else {
            Reply::status(404)
        }
    });
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "no password leaves the domain"
    );
    assert!(!report.confirmed);
    let consent = report.needs_consent.as_ref().expect("needs consent");
    assert_eq!(consent.host, "autodiscover.evil.test");
    assert_eq!(consent.reason, "redirect_outside_domain");
    assert_eq!(
        consent.from,
        "https://autodiscover.example.test/autodiscover/autodiscover.xml"
    );
    assert_eq!(report.error.as_ref().unwrap().code, "needs_consent");

    // With the caller's consent for this discovery, the host gets the password.
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline
        .discover_with_consent(&address, Some(&creds()), &["autodiscover.evil.test".into()])
        .await;
    assert!(report.confirmed, "{:#?}", report.trail);
    assert_eq!(report.evidence, Some(Evidence::Settings));
    assert_eq!(report.needs_consent, None);
    assert!(
        env.fleet
            .seen_by("autodiscover.evil.test")
            .iter()
            .any(|s| s.authorization.is_some())
    );
}

#[tokio::test]
async fn rule_4_untrusted_redirect_addr_drops_credentials() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "autodiscover.attacker.test",
    );
    env.host("autodiscover.attacker.test", |_| {
        Reply::xml(
            br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Action>redirectAddr</Action><RedirectAddr>alice@phish.test</RedirectAddr></Account></Response></Autodiscover>"#.to_vec(),
        )
    });
    env.host("phish.test", |_| basic_challenge("phish"));
    env.host("autodiscover.phish.test", |_| basic_challenge("phish"));
    let _report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert!(
        !env.fleet.seen_by("phish.test").is_empty(),
        "the redirect was followed"
    );
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn rule_6_never_walks_up_the_domain_tree() {
    let env = TestEnv::start().await;
    for parent in [
        "sub.example.test",
        "autodiscover.sub.example.test",
        "example.test",
        "autodiscover.example.test",
        "autodiscover.test",
    ] {
        env.host(parent, |_| Reply::xml(settings_answer("mail.example.test")));
    }
    let report = env.discover("alice@mail.sub.example.test").await;
    assert!(!report.is_found());
    assert!(env.fleet.seen().is_empty(), "{:?}", env.fleet.seen());
}

#[tokio::test]
async fn rule_7_a_redirect_to_http_is_refused() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::redirect(
            302,
            "http://mail.example.test/autodiscover/autodiscover.xml",
        )),
    );
    env.host("mail.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert!(codes(&report).contains(&"insecure_redirect"));
    assert!(
        env.fleet
            .autodiscover_seen_by("mail.example.test")
            .is_empty()
    );
}

#[tokio::test]
async fn rule_8_hostile_redirect_urls_are_refused() {
    for (location, code) in [
        (
            "http://mail.example.test/autodiscover/autodiscover.xml",
            "insecure_redirect",
        ),
        ("javascript:alert(1)", "insecure_redirect"),
        (
            "https://127.0.0.1/autodiscover/autodiscover.xml",
            "redirect_refused",
        ),
        (
            "https://mail.example.test/owa/auth/logon.aspx",
            "redirect_refused",
        ),
    ] {
        let env = TestEnv::start().await;
        env.refused("example.test");
        let body = format!(
            r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Action>redirectUrl</Action><RedirectUrl>{location}</RedirectUrl></Account></Response></Autodiscover>"#
        );
        env.host(
            "autodiscover.example.test",
            https_only(Reply::xml(body.clone())),
        );
        env.host("mail.example.test", |_| {
            Reply::xml(settings_answer("mail.example.test"))
        });
        let report = env.discover("alice@example.test").await;
        assert!(!report.is_found(), "{location}");
        assert!(
            codes(&report).contains(&code),
            "{location}: {:?}",
            codes(&report)
        );
        assert!(
            env.fleet
                .autodiscover_seen_by("mail.example.test")
                .is_empty()
        );
        assert!(env.fleet.seen_by("127.0.0.1").is_empty());
    }
}

#[tokio::test]
async fn rule_12_private_and_loopback_targets_are_refused_by_default() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.dns
        .a("autodiscover.example.test", Ipv4Addr::new(10, 0, 0, 1));
    let mut config = env.config();
    config.allow_nets.clear();
    let report = env.discover_with(config, "alice@example.test", None).await;
    assert!(!report.is_found());
    assert!(has_attempt(
        &report,
        "https://example.test/",
        "forbidden_address"
    ));
    assert!(has_attempt(
        &report,
        "https://autodiscover.example.test/",
        "forbidden_address"
    ));
    assert!(env.fleet.seen().is_empty());
}

#[tokio::test]
async fn rule_12_one_forbidden_address_refuses_the_name() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.dns.a("example.test", Ipv4Addr::new(169, 254, 169, 254));
    let report = env.discover("alice@example.test").await;
    assert!(has_attempt(
        &report,
        "https://example.test/",
        "forbidden_address"
    ));
    assert!(env.fleet.seen_by("example.test").is_empty());
}

#[tokio::test]
async fn rule_15_huge_bodies_are_cut_while_streaming() {
    for chunked in [false, true] {
        let env = TestEnv::start().await;
        env.host("example.test", move |_| {
            let reply = Reply::xml(vec![b' '; 4 * 1024 * 1024]);
            if chunked { reply.chunked() } else { reply }
        });
        let report = env.discover("alice@example.test").await;
        assert!(
            has_attempt(&report, "https://example.test/", "body_too_large"),
            "chunked {chunked}"
        );
    }
}

#[tokio::test]
async fn rule_15_doctype_is_refused() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(&br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"/>"#[..])
    });
    let report = env.discover("alice@example.test").await;
    assert!(has_attempt(&report, "https://example.test/", "pox_doctype"));
}

#[tokio::test]
async fn rule_16_a_silent_server_times_out() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::hang());
    let mut config = env.config();
    config.http.timeouts.read = Duration::from_millis(300);
    config.http.timeouts.request = Duration::from_millis(600);
    let report = env.discover_with(config, "alice@example.test", None).await;
    assert!(
        has_attempt(&report, "https://example.test/", "timeout"),
        "{:?}",
        codes(&report)
    );
}

#[tokio::test]
async fn rule_19_a_wrong_password_is_tried_as_few_times_as_possible() {
    let env = TestEnv::start().await;
    let wrong = Credentials::new("alice@example.test", "wrong");
    for host in [
        "example.test",
        "autodiscover.example.test",
        "exch.example.test",
    ] {
        env.host(host, guarded(basic("alice@example.test", PASSWORD)));
    }
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "exch.example.test",
    );
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&wrong))
        .await;
    assert_eq!(
        report.error.as_ref().unwrap().code,
        "auth_failed",
        "{:?}",
        codes(&report)
    );
    let sent = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.authorization.is_some())
        .count();
    assert_eq!(sent, 2, "the per-discovery credential budget");
}

#[tokio::test]
async fn rule_19_attempts_per_account_are_capped_across_discoveries() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        guarded(basic("alice@example.test", PASSWORD)),
    );
    let wrong = Credentials::new("alice@example.test", "wrong");
    let mut config = env.config();
    config.limits.credential_attempts_per_account = 3;
    let pipeline = exdisco::discovery::Pipeline::builder(config)
        .build()
        .unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    for _ in 0..5 {
        pipeline.discover(&address, Some(&wrong)).await;
    }
    let sent = env
        .fleet
        .seen()
        .iter()
        .filter(|s| s.authorization.is_some())
        .count();
    assert_eq!(sent, 3);
}

#[tokio::test]
async fn bearer_only_means_modern_auth_not_a_wrong_password() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| {
        Reply::status(401).header(
            "WWW-Authenticate",
            "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\"",
        )
    });
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    assert_eq!(report.error.as_ref().unwrap().code, "modern_auth_only");
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn rule_20_reports_never_carry_the_password() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        guarded(basic("alice@example.test", PASSWORD)),
    );
    let report = env
        .discover_with(env.config(), "alice@example.test", Some(&creds()))
        .await;
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains(PASSWORD));
    assert!(!json.contains(&basic("alice@example.test", PASSWORD)));
    assert!(!format!("{:?}", creds()).contains(PASSWORD));
}

#[tokio::test]
async fn dns_queries_are_fully_qualified_with_no_search_list() {
    let env = TestEnv::start().await;
    env.dns.set("example.test", RecordType::A, Answer::NxDomain);
    let _ = env.discover("alice@example.test").await;
    let queried = env.dns.queried();
    assert!(!queried.is_empty());
    for name in queried {
        assert!(name.ends_with("example.test"), "unexpected query {name}");
    }
}
