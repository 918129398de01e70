//! redirectAddr, redirectUrl and 30x chains, loops and the hop limit.

use exdisco::report::Method;

use crate::support::*;

fn redirect_url_xml(url: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account><Action>redirectUrl</Action><RedirectUrl>{url}</RedirectUrl></Account>
  </Response>
</Autodiscover>"#
    )
    .into_bytes()
}

#[tokio::test]
async fn redirect_addr_restarts_with_the_new_address() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        redirect_addr_answer("alice@subdomain.example.test")
    });
    env.host("autodiscover.subdomain.example.test", |s| {
        if s.body.contains("alice@subdomain.example.test") {
            Reply::xml(settings_answer("mail.example.test"))
        } else {
            Reply::status(400)
        }
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    assert_eq!(
        report.redirected_email.as_deref(),
        Some("alice@subdomain.example.test")
    );
    assert_eq!(report.method, Some(Method::PoxAutodiscover));
    assert_eq!(report.email, "alice@example.test");
    // What the fleet saw, checked here: an assert inside a handler only drops a connection.
    let first = env.fleet.autodiscover_seen_by("example.test");
    assert!(first.iter().all(|s| s.body.contains("alice@example.test")));
    assert!(!first.is_empty());
}

#[tokio::test]
async fn redirect_url_is_reposted() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| {
        redirect_url_answer("mail.example.test")
    });
    env.host("mail.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::PoxAutodiscover));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    let reposted = env.fleet.autodiscover_seen_by("mail.example.test");
    assert_eq!(reposted.len(), 1);
    assert_eq!(reposted[0].method, "POST");
}

#[tokio::test]
async fn a_302_chain_is_followed_by_hand() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::redirect(
            302,
            "https://hop.example.test/autodiscover/autodiscover.xml",
        )),
    );
    env.host("hop.example.test", |_| {
        Reply::redirect(
            301,
            "https://mail.example.test/Autodiscover/Autodiscover.xml",
        )
    });
    env.host("mail.example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mail.example.test")
    );
    let last = env.fleet.autodiscover_seen_by("mail.example.test");
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].method.as_str(), last[0].path.as_str()),
        ("POST", "/Autodiscover/Autodiscover.xml"),
        "the POST is re-sent to the Location's path, not turned into a GET"
    );
}

#[tokio::test]
async fn loops_end_with_a_loop_code() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::xml(redirect_url_xml(
            "https://a.example.test/autodiscover/autodiscover.xml",
        ))),
    );
    env.host("a.example.test", |_| {
        Reply::xml(redirect_url_xml(
            "https://autodiscover.example.test/autodiscover/autodiscover.xml",
        ))
    });
    let report = env.discover("alice@example.test").await;
    assert!(!report.is_found());
    assert!(
        codes(&report).contains(&"redirect_loop"),
        "{:?}",
        codes(&report)
    );
    assert_eq!(env.fleet.seen_by("a.example.test").len(), 1);
}

#[tokio::test]
async fn address_redirect_loops_end() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        redirect_addr_answer("alice@subdomain.example.test")
    });
    env.host("subdomain.example.test", |_| {
        Reply::xml(
            br#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account><Action>redirectAddr</Action><RedirectAddr>alice@example.test</RedirectAddr></Account>
  </Response>
</Autodiscover>"#
                .to_vec(),
        )
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.error.as_ref().unwrap().code, "redirect_loop");
}

#[tokio::test]
async fn the_hop_limit_holds() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host(
        "autodiscover.example.test",
        https_only(Reply::redirect(
            302,
            "https://r1.example.test/autodiscover/autodiscover.xml",
        )),
    );
    for i in 1..=15 {
        let next = format!(
            "https://r{}.example.test/autodiscover/autodiscover.xml",
            i + 1
        );
        env.host(&format!("r{i}.example.test"), move |_| {
            Reply::redirect(302, &next)
        });
    }
    let report = env.discover("alice@example.test").await;
    assert!(!report.is_found());
    assert!(
        codes(&report).contains(&"redirect_limit"),
        "{:?}",
        codes(&report)
    );
    let reached: usize = (1..=15)
        .map(|i| env.fleet.seen_by(&format!("r{i}.example.test")).len())
        .sum();
    assert_eq!(reached, 10, "exactly the hop budget was spent");
}
