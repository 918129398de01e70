//! ActiveSync probes, credential checks and Exchange Online detection (issue 3).

use exdisco::domain::Credentials;
use exdisco::report::{Evidence, Method, Provider};
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::MX;
use hickory_proto::rr::{Name, RData};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;

const PASSWORD: &str = "hunter2-but-longer";

fn creds() -> Credentials {
    Credentials::new("alice@example.test", PASSWORD)
}

fn mx(env: &TestEnv, domain: &str, host: &str) {
    let name = Name::from_str(&format!("{host}.")).unwrap();
    env.dns.set(
        domain,
        RecordType::MX,
        Answer::Records(vec![RData::MX(MX::new(10, name))]),
    );
}

#[tokio::test]
async fn activesync_probes_find_the_host_when_autodiscover_is_silent() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("owa.example.test", |s| {
        if s.is_autodiscover() {
            Reply::status(404)
        } else {
            activesync_ok()
        }
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.method,
        Some(Method::ActiveSync),
        "{:?}",
        codes(&report)
    );
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("owa.example.test")
    );
    assert_eq!(report.evidence, Some(Evidence::ActiveSync));
    let probe = report.activesync.as_ref().unwrap();
    assert_eq!(probe.code, "activesync_confirmed");
    assert!(probe.versions.contains(&"16.1".to_owned()));
    assert_eq!(probe.server_build.as_deref(), Some("15.1"));
    assert!(report.trail.iter().any(|a| a.step.as_str() == "activesync"));
}

#[tokio::test]
async fn an_mx_host_inside_the_domain_is_probed() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    mx(&env, "example.test", "mx1.example.test");
    env.host(
        "mx1.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let report = env.discover("alice@example.test").await;
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("mx1.example.test")
    );
    assert_eq!(
        report.evidence,
        Some(Evidence::ActiveSyncEndpoint),
        "401 to an anonymous probe"
    );
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "discovery spends no password"
    );
}

#[tokio::test]
async fn a_web_page_at_the_activesync_path_is_not_activesync() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("webmail.example.test", |_| {
        Reply::xml(&b"<html><body>Welcome</body></html>"[..]).header("Content-Type", "text/html")
    });
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.error.as_ref().unwrap().code, "not_found");
    assert!(
        has_attempt(&report, "https://webmail.example.test/", "not_activesync"),
        "{:?}",
        codes(&report)
    );
}

#[tokio::test]
async fn the_activesync_url_from_autodiscover_is_probed_to_confirm_it() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let report = env.discover("alice@example.test").await;
    assert_eq!(report.method, Some(Method::PoxDomain));
    let probe = report.activesync.as_ref().expect("confirmation probe");
    assert_eq!(probe.code, "auth_required");
    assert_eq!(
        probe.url,
        "https://mail.example.test/Microsoft-Server-ActiveSync"
    );
    assert_eq!(report.provider, Some(Provider::Exchange));
}

#[tokio::test]
async fn verify_accepts_the_right_password_with_one_credentialed_request() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let pipeline = exdisco::discovery::Pipeline::builder(env.config())
        .build()
        .unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline.discover_and_verify(&address, &creds()).await;
    assert_eq!(report.credentials_valid, Some(true));
    let verification = report.verification.as_ref().unwrap();
    assert_eq!(verification.code, "activesync_confirmed");
    assert!(verification.authenticated);
    let with_password: Vec<_> = env
        .fleet
        .seen()
        .into_iter()
        .filter(|s| s.authorization.is_some())
        .collect();
    assert_eq!(with_password.len(), 1);
    assert_eq!(with_password[0].method, "OPTIONS");
}

#[tokio::test]
async fn verify_reports_a_wrong_password() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host(
        "mail.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    let pipeline = exdisco::discovery::Pipeline::builder(env.config())
        .build()
        .unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    let wrong = Credentials::new("alice@example.test", "nope");
    let report = pipeline.discover_and_verify(&address, &wrong).await;
    assert_eq!(report.credentials_valid, Some(false));
    assert_eq!(report.verification.as_ref().unwrap().code, "auth_rejected");
}

#[tokio::test]
async fn probe_outcomes_are_classified() {
    let env = TestEnv::start().await;
    env.host("bearer.example.test", |_| {
        Reply::status(401).header(
            "WWW-Authenticate",
            "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\"",
        )
    });
    env.host("forbidden.example.test", |_| Reply::status(403));
    env.host("broken.example.test", |_| Reply::status(503));
    env.host("page.example.test", |_| Reply::xml(&b"<html/>"[..]));
    env.host("moved.example.test", |_| {
        Reply::status(451).header(
            "X-MS-Location",
            "https://eas2.example.test/Microsoft-Server-ActiveSync",
        )
    });
    env.host(
        "eas2.example.test",
        exchange(basic("alice@example.test", PASSWORD)),
    );
    env.host("loop.example.test", |_| {
        Reply::status(451).header(
            "X-MS-Location",
            "https://loop.example.test/Microsoft-Server-ActiveSync",
        )
    });
    env.host_with_cert("badcert.example.test", CertKind::Expired, |_| {
        activesync_ok()
    });
    let pipeline = exdisco::discovery::Pipeline::builder(env.config())
        .build()
        .unwrap();
    let credentials = creds();
    for (host, code) in [
        ("bearer.example.test", "modern_auth_only"),
        ("forbidden.example.test", "forbidden"),
        ("broken.example.test", "server_error"),
        ("page.example.test", "not_activesync"),
        ("moved.example.test", "activesync_confirmed"),
        ("loop.example.test", "activesync_moved"),
        ("badcert.example.test", "tls"),
        ("nowhere.example.test", "dns_nxdomain"),
    ] {
        let url = url::Url::parse(&format!("https://{host}/Microsoft-Server-ActiveSync")).unwrap();
        let (probe, trail) = pipeline.probe(&url, Some(&credentials)).await;
        assert_eq!(probe.code, code, "{host}: {probe:?}");
        assert!(!trail.is_empty(), "{host}: the trail records the probe");
    }
    assert!(
        env.fleet
            .seen_by("bearer.example.test")
            .iter()
            .all(|s| s.authorization.is_none())
    );
    let moved = pipeline
        .probe(
            &url::Url::parse("https://moved.example.test/Microsoft-Server-ActiveSync").unwrap(),
            None,
        )
        .await
        .0;
    assert_eq!(
        moved.moves,
        ["https://eas2.example.test/Microsoft-Server-ActiveSync"]
    );
}

#[tokio::test]
async fn untrusted_hosts_get_no_password_when_verifying() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.dns.srv(
        "_autodiscover._tcp.example.test",
        10,
        0,
        443,
        "autodiscover.attacker.test",
    );
    let inner = exchange(basic("alice@example.test", PASSWORD));
    env.host("autodiscover.attacker.test", move |s| {
        if s.is_autodiscover() {
            Reply::status(401).header("WWW-Authenticate", "Basic realm=\"attacker\"")
        } else {
            inner(s)
        }
    });
    let pipeline = exdisco::discovery::Pipeline::builder(env.config())
        .build()
        .unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline.discover_and_verify(&address, &creds()).await;
    assert!(!report.confirmed);
    assert_eq!(
        report.verification.as_ref().unwrap().code,
        "credentials_withheld"
    );
    assert_eq!(report.credentials_valid, None);
    assert!(env.fleet.seen().iter().all(|s| s.authorization.is_none()));
}

#[tokio::test]
async fn exchange_online_is_found_through_autodiscover_v2_and_gets_no_password() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    mx(
        &env,
        "example.test",
        "example-test.mail.protection.outlook.com",
    );
    env.host("outlook.office365.com", |s| {
        if s.path.starts_with("/autodiscover/autodiscover.json/v1.0/alice@example.test") {
            Reply::xml(&br#"{"Protocol":"ActiveSync","Url":"https://outlook.office365.com/Microsoft-Server-ActiveSync"}"#[..])
                .header("Content-Type", "application/json")
        } else {
            Reply::status(401).header("WWW-Authenticate", "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\"")
        }
    });
    let pipeline = exdisco::discovery::Pipeline::builder(env.config())
        .build()
        .unwrap();
    let address = exdisco::domain::EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline.discover_and_verify(&address, &creds()).await;
    assert_eq!(
        report.method,
        Some(Method::AutodiscoverV2),
        "{:?}",
        codes(&report)
    );
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("outlook.office365.com")
    );
    assert_eq!(report.provider, Some(Provider::Office365));
    assert!(report.confirmed);
    let verification = report.verification.as_ref().unwrap();
    assert_eq!(verification.code, "modern_auth_only");
    assert_eq!(report.credentials_valid, None);
    assert!(
        env.fleet.seen().iter().all(|s| s.authorization.is_none()),
        "no password to Microsoft"
    );
}

#[tokio::test]
async fn v2_is_not_asked_when_the_mx_is_not_exchange_online() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    mx(&env, "example.test", "mx.other.test");
    env.host("outlook.office365.com", |_| Reply::status(500));
    let report = env.discover("alice@example.test").await;
    assert!(!report.is_found());
    assert!(
        env.fleet.seen_by("outlook.office365.com").is_empty(),
        "the address never left for Microsoft"
    );
}

#[tokio::test]
async fn microsoft_online_settings_mean_office365() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| Reply::fixture("pox/o365-full.xml"));
    let report = env.discover("carol@example.test").await;
    assert_eq!(report.provider, Some(Provider::Office365));
    assert_eq!(
        report.exchange_server_host.as_deref(),
        Some("outlook.office365.example")
    );
}

#[derive(Debug)]
struct OneCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A server that answers the first request of each connection and closes the connection,
/// without a word, on the second: what a pooled connection looks like when the server has
/// just closed it (SOGo does, now and then).
async fn closes_on_second_request(
    env: &TestEnv,
    host: &str,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = env.ca.certified_key(host, CertKind::Valid);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCertificate(key)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let expected = basic("alice@example.test", PASSWORD);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let (acceptor, expected) = (acceptor.clone(), expected.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buffer = vec![0u8; 8192];
                let mut head = String::new();
                while !head.contains("\r\n\r\n") {
                    let Ok(n) = tls.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
                let answer = if head.contains(&format!("authorization: {expected}"))
                    || head.contains(&format!("Authorization: {expected}"))
                {
                    "HTTP/1.1 200 OK\r\nMS-ASProtocolVersions: 14.1,16.1\r\nMS-ASProtocolCommands: Sync,FolderSync\r\nContent-Length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.flush().await;
                // The second request on this connection: read it, then close without answering.
                let _ = tls.read(&mut buffer).await;
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_connection_closed_as_it_is_reused_costs_one_more_connection_not_the_probe() {
    let env = TestEnv::start().await;
    env.dns.a("eas.example.test", FLEET_IP);
    let (addr, connections) = closes_on_second_request(&env, "eas.example.test").await;
    let mut config = env.config();
    config.http.ports.https = addr.port();
    let pipeline = exdisco::discovery::Pipeline::builder(config)
        .build()
        .unwrap();
    let url = url::Url::parse("https://eas.example.test/Microsoft-Server-ActiveSync").unwrap();
    let (probe, _) = pipeline.probe(&url, Some(&creds())).await;
    assert_eq!(probe.code, "activesync_confirmed", "{probe:?}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "the anonymous request, then the credentials again on a new connection"
    );
}
