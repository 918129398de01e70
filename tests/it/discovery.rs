//! Each method alone, the preference order, broken candidates and both schemas.

use std::time::Duration;

use exdisco::report::{Evidence, Method, Outcome};
use hickory_proto::rr::RecordType;

use crate::support::*;

#[tokio::test]
async fn the_domain_itself_answers() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    // The Outlook schema names no ActiveSync URL (ASUrl is the Availability service): the
    // URL is the EXPR host's, once its endpoint answers.
    env.host("mail.example.test", |_| {
        Reply::fixture("activesync/sogo-options-anonymous.http")
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    assert_eq!(report.method, Some(Method::PoxDomain));
    assert!(report.confirmed);
    assert_eq!(report.evidence, Some(Evidence::Settings));
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://mail.example.test/Microsoft-Server-ActiveSync")
    );
    assert_eq!(
        report.ews_url.as_deref(),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert_eq!(report.ttl_seconds, Some(3600), "no TTL: one hour");
    let post = &env.fleet.seen_by("example.test")[0];
    assert_eq!(post.method, "POST");
    assert!(post.tls);
    assert!(
        post.body
            .contains("<EMailAddress>alice@example.test</EMailAddress>")
    );
}

#[tokio::test]
async fn autodiscover_host_answers_alone() {
    let env = TestEnv::start().await;
    env.dns.set("example.test", RecordType::A, Answer::NxDomain);
    env.host(
        "autodiscover.example.test",
        https_only(Reply::xml(settings_answer("exch01.example.test"))),
    );
    let report = env.discover("bob@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("exch01.example.test")
    );
    assert_eq!(report.method, Some(Method::PoxAutodiscover));
    assert!(
        has_attempt(&report, "https://example.test/", "dns_nxdomain"),
        "{:#?}",
        report.trail
    );
}

#[tokio::test]
async fn plain_http_redirect_alone() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        plain_http_redirect("https://mail.example.test/Autodiscover/Autodiscover.xml"),
    );
    env.host("mail.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::HttpRedirect));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    assert!(report.confirmed, "same registrable domain: trusted");
    let get = env
        .fleet
        .seen_by("autodiscover.example.test")
        .into_iter()
        .find(|s| !s.tls)
        .unwrap();
    assert_eq!(get.method, "GET");
    assert!(get.body.is_empty() && get.authorization.is_none());
    assert!(has_attempt(
        &report,
        "https://example.test/",
        "connection_refused"
    ));
}

#[tokio::test]
async fn srv_alone() {
    let env = TestEnv::start().await;
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "exch.example.test",
    );
    env.host("exch.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::Srv));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("exch01.example.test")
    );
    assert!(report.confirmed);
}

#[tokio::test]
async fn preference_order_beats_speed() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test")).delayed(Duration::from_millis(300))
    });
    env.host("autodiscover.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    let mut config = env.config();
    config.preference_wait.min = Duration::from_secs(2);
    let report = env.discover_with(config, "alice@example.test", None).await;
    assert_eq!(report.method, Some(Method::PoxDomain));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
}

#[tokio::test]
async fn both_answer_and_the_preferred_one_wins() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host("autodiscover.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        0,
        0,
        443,
        "exch.example.test",
    );
    env.host("exch.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::PoxDomain));
}

#[tokio::test]
async fn a_black_hole_is_superseded_not_waited_for() {
    let env = TestEnv::start().await;
    env.black_hole("example.test");
    env.host("autodiscover.example.test", |s| {
        if s.tls {
            Reply::xml(settings_answer("exch01.example.test"))
        } else {
            Reply::hang()
        }
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::PoxAutodiscover));
    let root = report
        .trail
        .iter()
        .find(|a| a.target.starts_with("https://example.test/"))
        .expect("the black hole is in the trail");
    assert_eq!(root.outcome, Outcome::Cancelled);
    assert_eq!(root.code.map(|c| c.as_str()), Some("superseded"));
}

#[tokio::test]
async fn a_slow_preferred_answer_past_its_patience_is_superseded() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test")).delayed(Duration::from_secs(2))
    });
    env.host("autodiscover.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::PoxAutodiscover));
    assert!(has_attempt(&report, "https://example.test/", "superseded"));
}

#[tokio::test]
async fn mobilesync_schema() {
    let env = TestEnv::start().await;
    env.host("example.test", |s| {
        if s.body.contains("mobilesync/requestschema/2006") {
            Reply::fixture("activesync/mobilesync-settings.xml")
        } else {
            Reply::fixture("pox/ex2010-error-600.xml")
        }
    });
    let mut config = env.config();
    config.schema = exdisco::discovery::Schema::MobileSync;
    let report = env.discover_with(config, "dave@example.test", None).await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("eas.example.test")
    );
    assert_eq!(
        report.activesync_url.as_deref(),
        Some("https://eas.example.test/Microsoft-Server-ActiveSync")
    );
}

#[tokio::test]
async fn autodiscover_error_answers_are_failures_with_codes() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/ex-error-500.xml"));
    env.host("autodiscover.example.test", |_| {
        Reply::fixture("pox/ex2010-error-600.xml")
    });
    let report = env.discover("nobody@example.test").await;
    assert!(!report.is_found());
    assert_eq!(report.error.as_ref().unwrap().code, "not_found");
    assert!(has_attempt(&report, "https://example.test/", "pox_error"));
    assert!(has_attempt(
        &report,
        "https://autodiscover.example.test/",
        "pox_error"
    ));
}

#[tokio::test]
async fn srv_order_follows_priority() {
    let env = TestEnv::start().await;
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        20,
        100,
        443,
        "backup.example.test",
    );
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "primary.example.test",
    );
    env.host("primary.example.test", |_| {
        Reply::xml(settings_answer("exch01.example.test"))
    });
    env.host("backup.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::Srv));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("exch01.example.test")
    );
    assert!(env.fleet.seen_by("backup.example.test").is_empty());
}

#[tokio::test]
async fn srv_falls_back_to_the_next_target() {
    let env = TestEnv::start().await;
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "primary.example.test",
    );
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        20,
        0,
        443,
        "backup.example.test",
    );
    env.refused("primary.example.test");
    env.host("backup.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::Srv));
    assert!(has_attempt(
        &report,
        "primary.example.test",
        "connection_refused"
    ));
}

#[tokio::test]
async fn srv_dot_target_and_dns_failures_are_told_apart() {
    let env = TestEnv::start().await;
    env.dns.srv("_autodiscover._tcp.dot.test", 0, 0, 0, ".");
    env.dns.set(
        "_autodiscover._tcp.fail.test",
        RecordType::SRV,
        Answer::ServFail,
    );
    env.dns.set(
        "_autodiscover._tcp.silent.test",
        RecordType::SRV,
        Answer::Silent,
    );
    for (domain, code) in [
        ("dot.test", "srv_no_service"),
        ("nx.test", "dns_nxdomain"),
        ("fail.test", "dns_servfail"),
        ("silent.test", "dns_timeout"),
    ] {
        let report = env.discover(&format!("alice@{domain}")).await;
        assert!(!report.is_found());
        assert!(
            has_attempt(&report, &format!("_autodiscover._tcp.{domain}."), code),
            "{domain}: {:?}",
            codes(&report)
        );
    }
}

#[tokio::test]
async fn srv_ports_other_than_443_are_dropped() {
    let env = TestEnv::start().await;
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        8443,
        "odd.example.test",
    );
    env.host("odd.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert!(!report.is_found());
    assert!(has_attempt(
        &report,
        "_autodiscover._tcp.example.test.",
        "srv_no_usable_target"
    ));
    assert!(env.fleet.seen_by("odd.example.test").is_empty());
}

#[tokio::test]
async fn bad_certificates_are_refused() {
    let env = TestEnv::start().await;
    env.host_with_cert("example.test", CertKind::Expired, |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host_with_cert("autodiscover.example.test", CertKind::WrongName, |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "self.example.test",
    );
    env.host_with_cert("self.example.test", CertKind::SelfSigned, |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert!(!report.is_found(), "{:?}", report.trail);
    assert!(has_attempt(&report, "https://example.test/", "tls"));
    assert!(has_attempt(
        &report,
        "https://autodiscover.example.test/",
        "tls"
    ));
    assert!(has_attempt(&report, "https://self.example.test/", "tls"));
    assert!(
        env.fleet.seen().iter().all(|s| !s.tls),
        "no https request got through"
    );
}

#[tokio::test]
async fn every_candidate_failing_returns_the_whole_trail() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| Reply::status(503));
    let report = env.discover("alice@example.test").await;
    let error = report.error.as_ref().unwrap();
    assert_eq!(error.code, "not_found");
    assert!(has_attempt(
        &report,
        "https://example.test/",
        "connection_refused"
    ));
    assert!(has_attempt(
        &report,
        "https://autodiscover.example.test/",
        "http_status"
    ));
    assert!(has_attempt(
        &report,
        "http://autodiscover.example.test/",
        "no_redirect"
    ));
    assert!(has_attempt(
        &report,
        "_autodiscover._tcp.example.test.",
        "dns_nxdomain"
    ));
}

#[tokio::test]
async fn an_autodiscover_endpoint_is_not_the_mailbox_host() {
    // Issue 11.2: without credentials, Exchange's autodiscover.DOMAIN answers 401 (Z-Push's
    // recorded answer); its ActiveSync path is not there. That proves Autodiscover, not where
    // the mailbox is.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        autodiscover_only("pox/zpush-401.http"),
    );
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.exchange_server_host, None, "{:#?}", report.trail);
    assert_eq!(report.error.as_ref().unwrap().code, "auth_required");
    let endpoint = report.autodiscover_endpoint.as_ref().expect("the endpoint");
    assert_eq!(
        endpoint.url,
        "https://autodiscover.example.test/autodiscover/autodiscover.xml"
    );
    assert!(endpoint.requires_auth && endpoint.trusted);
}

#[tokio::test]
async fn an_autodiscover_endpoint_does_not_cancel_the_activesync_probes() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        autodiscover_only("pox/zpush-401.http"),
    );
    env.host(
        "mail.example.test",
        activesync_only("activesync/sogo-options-anonymous.http"),
    );
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test"),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.method, Some(Method::ActiveSync));
    assert_eq!(report.evidence, Some(Evidence::ActiveSyncEndpoint));
    assert!(
        report.confirmed,
        "inside the domain, answering as ActiveSync"
    );
    assert!(report.autodiscover_endpoint.is_some());
}

#[tokio::test]
async fn the_overall_deadline_ends_a_discovery_of_black_holes() {
    let env = TestEnv::start().await;
    env.black_hole("example.test");
    env.black_hole("autodiscover.example.test");
    let mut config = env.config();
    config.deadline = Duration::from_millis(800);
    let report = env.discover_with(config, "alice@example.test", None).await;
    assert_eq!(report.error.as_ref().unwrap().code, "deadline");
}

#[tokio::test]
async fn a_server_reached_by_a_redirect_inside_the_domain_is_asked_as_activesync() {
    // autodiscover.DOMAIN sends the POST on to the CAS that serves the mailboxes (a load
    // balancer's 302, as in the lab's same-domain-302); without credentials that server is a
    // named server, not just an endpoint.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::redirect(
            302,
            "https://cas.example.test/autodiscover/autodiscover.xml",
        )),
    );
    env.host("cas.example.test", |_| Reply::fixture("pox/zpush-401.http"));
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("cas.example.test"),
        "{:#?}",
        report.trail
    );
    assert_eq!(report.evidence, Some(Evidence::ActiveSyncEndpoint));
    assert!(report.confirmed, "inside the domain");
}

#[tokio::test]
async fn the_library_takes_the_settings_the_file_and_the_flags_write() {
    // Issue 23: one discovery settings type for the file, the flags and the library.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, env.ca.pem()).unwrap();
    let mut settings = exdisco::discovery::Settings::default();
    settings.dns_servers = vec![env.dns.addr];
    settings.ca_files = vec![ca];
    settings.allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
    settings.https_port = env.fleet.addr.port();
    settings.http_port = env.fleet.addr.port();
    let pipeline = exdisco::discovery::Pipeline::from_settings(&settings).unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline.discover(&address, None).await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test"),
        "{:#?}",
        report.trail
    );
    settings.ca_files = vec![dir.path().join("missing.pem")];
    assert!(exdisco::discovery::Pipeline::from_settings(&settings).is_err());
}
