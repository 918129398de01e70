//! A host's answers to anonymous requests are the host's, whichever domain led there, and
//! one pipeline's discoveries share them (`Config::shared_answer_ttl`): the ActiveSync probe
//! of a found host, and a hoster's 401 to an anonymous Autodiscover POST. Never a password's
//! answer: consent still sends the password.

use exdisco::discovery::Pipeline;
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::Report;

use crate::support::*;

fn posts_to(env: &TestEnv, host: &str) -> Vec<Option<String>> {
    env.fleet
        .seen_by(host)
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.authorization)
        .collect()
}

fn shared_in_trail(report: &Report) -> bool {
    report.trail.iter().any(|a| {
        a.detail
            .as_deref()
            .is_some_and(|d| d.contains("another discovery"))
    })
}

/// Two customer domains of one hoster, each redirecting by plain HTTP to its Autodiscover.
fn two_customers(env: &TestEnv) {
    hosted_exchange(env, "dave@redir.test", "Hosted-2026-not-really");
    env.refused("redir2.test");
    env.host(
        "autodiscover.redir2.test",
        plain_http_redirect("https://autodiscover.hoster.test/autodiscover/autodiscover.xml"),
    );
}

#[tokio::test]
async fn a_hosters_anonymous_401_is_asked_once_for_all_its_domains() {
    let env = TestEnv::start().await;
    two_customers(&env);
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let first = pipeline
        .discover(&EmailAddress::parse("dave@redir.test").unwrap(), None)
        .await;
    let second = pipeline
        .discover(&EmailAddress::parse("erin@redir2.test").unwrap(), None)
        .await;
    for report in [&first, &second] {
        let consent = report.needs_consent.as_ref().expect("consent asked");
        assert_eq!(consent.host, "autodiscover.hoster.test");
    }
    assert_eq!(posts_to(&env, "autodiscover.hoster.test"), vec![None]);
    assert!(
        shared_in_trail(&second) && !shared_in_trail(&first),
        "{:#?} {:#?}",
        first.trail,
        second.trail
    );

    // A remembered 401 never stands in for a password the user consented to send.
    let credentials = Credentials::new("dave@redir.test", "Hosted-2026-not-really");
    let consented = pipeline
        .discover_with_consent(
            &EmailAddress::parse("dave@redir.test").unwrap(),
            Some(&credentials),
            &["autodiscover.hoster.test".to_owned()],
        )
        .await;
    assert_eq!(
        consented.exchange_server_host.as_deref(),
        Some("mbx.hoster.test")
    );
    let posts = posts_to(&env, "autodiscover.hoster.test");
    assert!(posts.iter().any(Option::is_some), "{posts:?}");

    // With nothing shared, every discovery asks.
    let mut config = env.config();
    config.shared_answer_ttl = std::time::Duration::ZERO;
    let unshared = Pipeline::builder(config).build().unwrap();
    for address in ["dave@redir.test", "erin@redir2.test"] {
        unshared
            .discover(&EmailAddress::parse(address).unwrap(), None)
            .await;
    }
    let anonymous = posts_to(&env, "autodiscover.hoster.test")
        .iter()
        .filter(|a| a.is_none())
        .count();
    // The first discovery's, the consented one's (anonymous first, then the password), and
    // one for each domain without sharing.
    assert_eq!(anonymous, 1 + 1 + 2);
}

#[tokio::test]
async fn the_probe_of_a_host_found_for_many_domains_is_made_once() {
    let env = TestEnv::start().await;
    for domain in ["one.test", "two.test", "three.test"] {
        env.refused(domain);
        env.host(
            &format!("autodiscover.{domain}"),
            https_only(Reply::xml(exdisco::fleet::settings_answer(
                "mbx.shared.test",
            ))),
        );
    }
    env.host("mbx.shared.test", |_| activesync_ok());
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let mut reports = Vec::new();
    for domain in ["one.test", "two.test", "three.test"] {
        let address = EmailAddress::parse(&format!("user@{domain}")).unwrap();
        reports.push(pipeline.discover(&address, None).await);
    }
    let options = env
        .fleet
        .seen_by("mbx.shared.test")
        .iter()
        .filter(|s| s.method == "OPTIONS")
        .count();
    assert_eq!(options, 1);
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(
            report.exchange_server_host.as_deref(),
            Some("mbx.shared.test")
        );
        let probe = report.activesync.as_ref().expect("probed");
        assert!(probe.outcome.shows_endpoint(), "{probe:?}");
        assert_eq!(shared_in_trail(report), i > 0);
    }
}
