//! Against a real ActiveSync server nobody on the team wrote: SOGo with its ActiveSync module,
//! started by `.ci/sogo-setup` (ignored by default; `.ci/run` runs it with `--ignored`).

use exdisco::discovery::{KnownHost, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::Outcome;
use url::Url;

use crate::support::tls_proxy::TlsProxy;
use crate::support::*;

const SOGO_URL: &str = "https://sogo.example.test/SOGo/Microsoft-Server-ActiveSync";

struct Sogo {
    env: TestEnv,
    _proxy: TlsProxy,
    user: String,
    password: String,
}

/// The SOGo under test. These tests run only when asked for (`--ignored`), so a missing
/// server is a failure with instructions, not a silent pass.
async fn sogo() -> Sogo {
    let (Ok(addr), Ok(user), Ok(password)) = (
        std::env::var("EXDISCO_SOGO_ADDR"),
        std::env::var("EXDISCO_SOGO_USER"),
        std::env::var("EXDISCO_SOGO_PASSWORD"),
    ) else {
        panic!("no SOGo: run `eval \"$(bash .ci/sogo-setup start)\"` in the same shell first");
    };
    let env = TestEnv::start().await;
    let proxy = TlsProxy::start(env.ca.clone(), addr.parse().unwrap()).await;
    for host in ["sogo.example.test", "example.test", "mail.example.test"] {
        env.dns.a(host, FLEET_IP);
    }
    Sogo {
        env,
        _proxy: proxy,
        user,
        password,
    }
}

impl Sogo {
    fn pipeline(&self) -> Pipeline {
        let mut config = self.env.config();
        config.http.ports.https = self._proxy.addr.port();
        config.http.ports.http = self._proxy.addr.port();
        Pipeline::builder(config).build().unwrap()
    }
}

#[tokio::test]
#[ignore = "needs SOGo: run by .ci/run after .ci/sogo-setup"]
async fn sogo_probe_with_missing_wrong_and_good_credentials() {
    let sogo = sogo().await;
    let pipeline = sogo.pipeline();
    let url = Url::parse(SOGO_URL).unwrap();

    let (anonymous, _) = pipeline.probe(&url, None).await;
    assert_eq!(anonymous.code, "auth_required", "{anonymous:?}");

    let wrong = Credentials::new(sogo.user.clone(), "not-the-password");
    let (refused, trail) = pipeline.probe(&url, Some(&wrong)).await;
    assert_eq!(refused.code, "auth_rejected", "{refused:?}");
    assert!(
        trail
            .iter()
            .any(|a| a.authenticated && a.outcome == Outcome::Failed)
    );

    let good = Credentials::new(sogo.user.clone(), sogo.password.clone());
    let (confirmed, _) = pipeline.probe(&url, Some(&good)).await;
    assert_eq!(confirmed.code, "activesync_confirmed", "{confirmed:?}");
    assert_eq!(confirmed.versions, ["2.5", "12.0", "12.1", "14.0", "14.1"]);
    assert_eq!(confirmed.server_build.as_deref(), Some("14.1"));
    assert!(confirmed.commands.iter().any(|c| c == "FolderSync"));
}

#[tokio::test]
#[ignore = "needs SOGo: run by .ci/run after .ci/sogo-setup"]
async fn sogo_verify_on_an_explicit_host() {
    let sogo = sogo().await;
    let pipeline = sogo.pipeline();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let good = Credentials::new(sogo.user.clone(), sogo.password.clone());
    let mut known = KnownHost::explicit("sogo.example.test");
    known.activesync_url = Some(SOGO_URL.to_owned());
    let report = pipeline
        .known_host(&address, known.clone(), Some(&good))
        .await
        .unwrap();
    assert_eq!(
        report.credentials_valid,
        Some(true),
        "{:?}",
        report.verification
    );
    let wrong = Credentials::new(sogo.user.clone(), "still-not-it");
    let report = pipeline
        .known_host(&address, known, Some(&wrong))
        .await
        .unwrap();
    assert_eq!(report.credentials_valid, Some(false));
}

#[tokio::test]
#[ignore = "needs SOGo: run by .ci/run after .ci/sogo-setup"]
async fn sogo_html_pages_are_not_autodiscover_or_activesync_answers() {
    let sogo = sogo().await;
    let pipeline = sogo.pipeline();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let report = pipeline.discover(&address, None).await;
    assert!(!report.is_found(), "{:?}", report.trail);
    assert!(
        codes(&report).contains(&"pox_doctype"),
        "{:?}",
        codes(&report)
    );
}

#[tokio::test]
#[ignore = "needs SOGo: run by .ci/run after .ci/sogo-setup"]
async fn sogo_sync_check_lists_folders_and_keeps_its_device() {
    use exdisco::code::Code;
    use exdisco::discovery::activesync::sync::DeviceIdentity;
    let sogo = sogo().await;
    let pipeline = sogo.pipeline();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let good = Credentials::new(sogo.user.clone(), sogo.password.clone());
    let identity = DeviceIdentity::for_account("alice@example.test");
    let mut known = KnownHost::explicit("sogo.example.test");
    known.activesync_url = Some(SOGO_URL.to_owned());
    let mut devices = Vec::new();
    for _ in 0..2 {
        let mut report = pipeline
            .known_host(&address, known.clone(), Some(&good))
            .await
            .unwrap();
        pipeline.check_sync(&mut report, &good, &identity).await;
        let sync = report.sync.clone().expect("a sync check");
        assert_eq!(sync.code, Code::SyncConfirmed, "{sync:?}");
        // The SOGo of .ci/sogo-setup has no IMAP server behind it: its hierarchy is the
        // calendar, the contacts and the tasks, no mail folder (seen on the real server).
        assert_eq!(sync.folders, Some(3), "{sync:?}");
        for kind in ["calendar", "contacts", "tasks"] {
            assert_eq!(sync.folder_types.get(kind), Some(&1), "{sync:?}");
        }
        assert_eq!(sync.protocol_version.as_deref(), Some("14.1"));
        devices.push(sync.device_id);
    }
    assert_eq!(devices[0], devices[1], "the same device on a second run");
    let wrong = Credentials::new(sogo.user.clone(), "still-not-it");
    let mut report = pipeline
        .known_host(&address, known, Some(&wrong))
        .await
        .unwrap();
    pipeline.check_sync(&mut report, &wrong, &identity).await;
    assert_eq!(report.error.map(|f| f.code), Some(Code::AuthFailed));
    assert!(report.sync.is_none());
}
