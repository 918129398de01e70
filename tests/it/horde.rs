//! Against a real Autodiscover and ActiveSync server nobody on the team wrote: Horde Groupware
//! 5.2 with Horde_ActiveSync 2.41 (Debian's packages), started on loopback by
//! `../shared/real-servers/horde/up`, which `.ci/run` calls. Ignored by default; `.ci/run`
//! runs them with `--ignored horde::`. Only the name server is ours (the in-process fake
//! answers `horde.test` and `autodiscover.horde.test` with 127.0.0.1): the settings are the
//! defaults, apart from Horde's ports and its certificate authority.

use std::time::Duration;

use exdisco::batch::{BatchConfig, DomainCache, DoneLines, run_batch};
use exdisco::discovery::{Config, Pipeline, read_certificates};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::Code;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::support::app::TestApp;
use crate::support::*;

struct Horde {
    env: TestEnv,
    ca: std::path::PathBuf,
    https_port: u16,
    http_port: u16,
    address: String,
    password: String,
}

/// The Horde under test: `HORDE_CA`, `HORDE_HTTPS_PORT`, `HORDE_HTTP_PORT`, `HORDE_MAIL` and
/// `HORDE_PASSWORD` as `.ci/run` exports them from `env.sh`. These tests run only when asked
/// for, so a missing server is a failure with instructions, not a silent pass.
async fn horde() -> Horde {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("no Horde: run ../shared/real-servers/horde/up and export {name} (see .ci/run)")
        })
    };
    let env = TestEnv::start().await;
    for host in ["horde.test", "autodiscover.horde.test"] {
        env.dns.a(host, FLEET_IP);
    }
    Horde {
        env,
        ca: var("HORDE_CA").into(),
        https_port: var("HORDE_HTTPS_PORT").parse().unwrap(),
        http_port: var("HORDE_HTTP_PORT").parse().unwrap(),
        address: var("HORDE_MAIL"),
        password: var("HORDE_PASSWORD"),
    }
}

impl Horde {
    /// The default configuration, pointed at Horde's ports, certificate and our name server.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.dns.name_servers = vec![self.env.dns.addr];
        config.http.extra_roots = read_certificates(&self.ca).unwrap();
        config.http.ports.https = self.https_port;
        config.http.ports.http = self.http_port;
        config.allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
        config
    }

    fn address(&self) -> EmailAddress {
        EmailAddress::parse(&self.address).unwrap()
    }
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn horde_is_found_and_verified_with_its_password() {
    let horde = horde().await;
    let pipeline = Pipeline::builder(horde.config()).build().unwrap();
    let credentials = Credentials::new(horde.address.clone(), horde.password.clone());
    let report = pipeline
        .discover_and_verify(&horde.address(), &credentials)
        .await;
    assert!(report.error.is_none(), "{:#?}", report.trail);
    let host = report.exchange_server_host.as_deref().unwrap();
    assert!(host.ends_with("horde.test"), "{host}");
    assert_eq!(report.credentials_valid, Some(true), "{:#?}", report.trail);
    let activesync = report.activesync_url.as_deref().unwrap();
    assert_eq!(
        activesync,
        format!("https://{host}/Microsoft-Server-ActiveSync"),
        "pitfall 1: the URL as Horde wrote it, without its port"
    );
    let verification = report.verification.as_ref().unwrap();
    assert!(verification.versions.contains(&"14.1".to_owned()));
    assert!(!codes(&report).contains(&"credential_budget"));
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn horde_without_the_password_names_no_host_and_a_wrong_one_is_refused() {
    let horde = horde().await;
    let pipeline = Pipeline::builder(horde.config()).build().unwrap();
    let anonymous = pipeline.discover(&horde.address(), None).await;
    assert!(
        anonymous.exchange_server_host.is_none(),
        "an Autodiscover endpoint is not the mailbox host: {:#?}",
        anonymous.trail
    );
    assert_eq!(
        anonymous.error.as_ref().map(|f| f.code),
        Some(Code::AuthRequired)
    );
    let wrong = Credentials::new(horde.address.clone(), "not-the-password");
    let refused = pipeline.discover_and_verify(&horde.address(), &wrong).await;
    assert!(refused.exchange_server_host.is_none());
    assert_eq!(
        refused.error.as_ref().map(|f| f.code),
        Some(Code::AuthFailed),
        "{:#?}",
        refused.trail
    );
    // Pitfall 2: Horde's Autodiscover ignores the Basic user name; its ActiveSync does not.
    let other_user = Credentials::new("someone-else", horde.password.clone());
    let report = pipeline
        .discover_and_verify(&horde.address(), &other_user)
        .await;
    assert_ne!(report.credentials_valid, Some(true), "{:#?}", report.trail);
    assert!(report.exchange_server_host.is_none());
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn horde_anonymous_options_carry_activesync_headers_but_prove_no_login() {
    // Pitfall 4: the bare 401 already advertises MS-ASProtocolVersions.
    let horde = horde().await;
    let pipeline = Pipeline::builder(horde.config()).build().unwrap();
    let url = url::Url::parse("https://horde.test/Microsoft-Server-ActiveSync").unwrap();
    let (anonymous, _) = pipeline.probe(&url, None).await;
    assert_eq!(anonymous.code, Code::AuthRequired);
    assert!(!anonymous.versions.is_empty());
    let credentials = Credentials::new(horde.address.clone(), horde.password.clone());
    let (good, _) = pipeline.probe(&url, Some(&credentials)).await;
    assert_eq!(good.code, Code::ActiveSyncConfirmed);
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn horde_account_through_authorize_and_token() {
    let horde = horde().await;
    let (ca, https, http) = (horde.ca.clone(), horde.https_port, horde.http_port);
    let app = TestApp::spawn(&horde.env, move |config| {
        config.discovery.ca_files = vec![ca];
        config.discovery.https_port = https;
        config.discovery.http_port = http;
    })
    .await;
    let request = app.exchange_request(&horde.address, &horde.password, None);
    let token = app.connect(&request).await;
    let (status, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        account["exchange_server_host"]
            .as_str()
            .unwrap()
            .ends_with("horde.test"),
        "{account}"
    );
    assert_eq!(account["provider"], "exchange");
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn a_batch_of_hordes_address_agrees_with_discover() {
    // A batch carries no password (jobs hold at most a reference to one): it agrees with the
    // anonymous discovery, which names no host.
    let horde = horde().await;
    let pipeline = Pipeline::builder(horde.config()).build().unwrap();
    let single = pipeline.discover(&horde.address(), None).await;
    let cache = DomainCache::new(10, Duration::from_secs(60));
    let mut output = Vec::new();
    let input = format!("{}\n", horde.address);
    let summary = run_batch(
        &pipeline,
        &cache,
        input.as_bytes(),
        &mut output,
        &DoneLines::default(),
        &BatchConfig::default(),
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.done, 1);
    let record: Value =
        serde_json::from_slice(output.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(record["exchange_server_host"].is_null(), "{record}");
    assert_eq!(
        record["error"]["code"],
        single.error.as_ref().unwrap().code.as_str()
    );
}

#[tokio::test]
#[ignore = "needs Horde: run by .ci/run after ../shared/real-servers/horde/up"]
async fn horde_sync_check_lists_folders_and_keeps_its_device() {
    use exdisco::discovery::activesync::sync::DeviceIdentity;
    let horde = horde().await;
    let pipeline = Pipeline::builder(horde.config()).build().unwrap();
    let credentials = Credentials::new(horde.address.clone(), horde.password.clone());
    let identity = DeviceIdentity::for_account(&horde.address);
    let mut devices = Vec::new();
    for _ in 0..2 {
        let mut report = pipeline
            .discover_and_verify(&horde.address(), &credentials)
            .await;
        pipeline
            .check_sync(&mut report, &credentials, &identity)
            .await;
        let sync = report.sync.clone().expect("a sync check");
        assert_eq!(sync.code, Code::SyncConfirmed, "{sync:?}");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(sync.protocol_version.as_deref(), Some("14.1"));
        assert!(sync.folder_types.contains_key("inbox"), "{sync:?}");
        assert!(sync.folders.unwrap_or(0) >= 4, "{sync:?}");
        devices.push(sync.device_id);
    }
    assert_eq!(devices[0], devices[1], "the same device on a second run");
    let wrong = Credentials::new(horde.address.clone(), "not-the-password");
    let mut report = pipeline.discover_and_verify(&horde.address(), &wrong).await;
    pipeline.check_sync(&mut report, &wrong, &identity).await;
    assert_eq!(report.error.map(|f| f.code), Some(Code::AuthFailed));
    assert!(report.sync.is_none());
}
