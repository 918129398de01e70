//! The sync check (Provision, FolderSync) against fakes. Where each answer comes from:
//! - Horde's own answers, recorded (`fixtures/horde/options-200.http`, `provision-200.http`,
//!   `foldersync-200.http`): the success path of a server without a policy (policy status 2).
//! - The two-step policy acknowledgement: [MS-ASPROV] 4.1 (the Provision examples: a
//!   temporary key, its acknowledgement with status 1, the final key), encoded with the
//!   crate's WBXML encoder.
//! - FolderSync status 142 in a 200: [MS-ASPROV] 4.1.1 "Phase 1: Enforcement" (verbatim
//!   shape). 449: [MS-ASHTTP] 3.2.5.1. 451 with `X-MS-Location`: [MS-ASHTTP] 3.2.5.1.1.
//!   503 with `X-MS-ASThrottle`: [MS-ASHTTP] 2.2.2.1.3. Statuses 126, 129, 130, 177 in a
//!   FolderSync answer: [MS-ASCMD] 2.2.2 common status codes (a FolderSync answer carries
//!   them in its `Status`, as Z-Push's `GetUserDevicePermission` sends 129 and 177).
//! - `RemoteWipe` in a Provision answer: [MS-ASPROV] 2.2.2.45.
//! - The quarantined device's Inbox-only hierarchy: Exchange's documented behaviour for
//!   Allow/Block/Quarantine (the device sees its quarantine notice in the Inbox); no
//!   recording of it is at hand.

use std::sync::{Arc, Mutex};

use exdisco::code::Code;
use exdisco::discovery::activesync::sync::DeviceIdentity;
use exdisco::discovery::activesync::wbxml::{self, Bounds, Element, folder, provision, settings};
use exdisco::discovery::{KnownHost, Pipeline};
use exdisco::domain::{Credentials, EmailAddress};
use exdisco::report::Report;

use crate::support::*;

pub const PASSWORD: &str = "Sync-check-2026";

fn creds() -> Credentials {
    Credentials::new("alice@example.test", PASSWORD)
}

/// An ActiveSync server: OPTIONS as Horde answers it (or with `versions`), and `command` for
/// each POSTed command.
pub fn server(
    versions: &'static str,
    command: impl Fn(&str, &Seen) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let expected = basic("alice@example.test", PASSWORD);
    move |s: &Seen| {
        if s.authorization.as_deref() != Some(expected.as_str()) {
            return Reply::status(401)
                .header("WWW-Authenticate", "Basic realm=\"Horde ActiveSync\"");
        }
        if s.method == "OPTIONS" {
            return Reply::status(200)
                .header("MS-ASProtocolVersions", versions)
                .header(
                    "MS-ASProtocolCommands",
                    "Sync,SendMail,SmartForward,SmartReply,GetAttachment,GetHierarchy,CreateCollection,DeleteCollection,MoveCollection,FolderSync,FolderCreate,FolderDelete,FolderUpdate,MoveItems,GetItemEstimate,MeetingResponse,ResolveRecipients,ValidateCert,Provision,Search,Ping,Notify,ItemOperations,Settings",
                )
                .header("MS-Server-ActiveSync", "14.1");
        }
        command(&s.query_param("Cmd").unwrap_or_default(), s)
    }
}

pub fn horde(command: &str, _: &Seen) -> Reply {
    match command {
        "Provision" => Reply::recorded(&fixture("horde/provision-200.http")),
        "FolderSync" => Reply::recorded(&fixture("horde/foldersync-200.http")),
        _ => Reply::status(400),
    }
}

pub fn wbxml_reply(root: &Element) -> Reply {
    let mut reply = Reply::status(200).header("Content-Type", "application/vnd.ms-sync.wbxml");
    reply.body = wbxml::encode(root);
    reply
}

fn folder_sync_status(status: &str) -> Reply {
    wbxml_reply(
        &Element::new(folder::PAGE, folder::FOLDER_SYNC)
            .with(Element::new(folder::PAGE, folder::STATUS).text_node(status)),
    )
}

async fn check_at(env: &TestEnv, host: &str) -> (Report, Pipeline) {
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let mut report = pipeline
        .known_host(&address, KnownHost::explicit(host), Some(&creds()))
        .await
        .unwrap();
    assert_eq!(report.credentials_valid, Some(true), "{report:?}");
    let identity = DeviceIdentity::for_account("alice@example.test");
    pipeline.check_sync(&mut report, &creds(), &identity).await;
    (report, pipeline)
}

fn posts(env: &TestEnv) -> Vec<Seen> {
    env.fleet
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect()
}

#[tokio::test]
async fn horde_recorded_syncs_and_the_device_is_the_same_on_a_second_run() {
    let env = TestEnv::start().await;
    env.host(
        "mail.example.test",
        server("2.5,12.0,12.1,14.0,14.1", horde),
    );
    let (report, _) = check_at(&env, "mail.example.test").await;
    let sync = report.sync.as_ref().unwrap();
    assert_eq!(sync.code, Code::SyncConfirmed, "{sync:?}");
    assert!(report.error.is_none());
    assert_eq!(sync.protocol_version.as_deref(), Some("14.1"));
    assert_eq!(sync.folders, Some(6));
    assert_eq!(sync.folder_types["inbox"], 1);
    assert_eq!(
        sync.folder_types["user_mail"], 2,
        "Junk and Trash are type 12 at Horde"
    );
    assert!(
        !sync.policy_acknowledged,
        "Horde has no policy for this client (status 2)"
    );
    let identity = DeviceIdentity::for_account("alice@example.test");
    assert_eq!(sync.device_id, identity.device_id);

    let sent = posts(&env);
    let commands: Vec<String> = sent.iter().filter_map(|s| s.query_param("Cmd")).collect();
    assert_eq!(commands, ["Provision", "FolderSync"]);
    for request in &sent {
        assert_eq!(
            request.query_param("DeviceId").as_deref(),
            Some(identity.device_id.as_str())
        );
        assert_eq!(
            request.query_param("DeviceType").as_deref(),
            Some("exdisco")
        );
        assert_eq!(
            request.query_param("User").as_deref(),
            Some("alice@example.test")
        );
        assert_eq!(request.header("ms-asprotocolversion"), Some("14.1"));
        assert_eq!(
            request.header("content-type"),
            Some("application/vnd.ms-sync.wbxml")
        );
    }
    // 14.1 sends the device's information in the first Provision ([MS-ASPROV] 2.2.2.53).
    let first = wbxml::decode(&sent[0].raw_body, Bounds::default()).unwrap();
    assert!(
        first
            .child(settings::PAGE, settings::DEVICE_INFORMATION)
            .is_some()
    );
    assert_eq!(sent[1].header("x-ms-policykey"), Some("0"));
    // Each command is in the trail, which explains the result.
    let commands: Vec<(&str, Option<&str>)> = report
        .trail
        .iter()
        .filter(|a| a.step == exdisco::report::Step::SyncCheck)
        .map(|a| (a.outcome.as_str(), a.detail.as_deref()))
        .collect();
    assert_eq!(
        commands,
        [
            ("answered", Some("Provision: http 200")),
            ("answered", Some("FolderSync: http 200"))
        ]
    );

    // A second run: the same partnership.
    let (again, _) = check_at(&env, "mail.example.test").await;
    assert_eq!(again.sync.unwrap().device_id, identity.device_id);
    let ids: Vec<Option<String>> = posts(&env)
        .iter()
        .map(|s| s.query_param("DeviceId"))
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.as_deref() == Some(identity.device_id.as_str()))
    );
}

#[tokio::test]
async fn a_policy_is_acknowledged_in_two_steps_and_its_final_key_is_carried() {
    let env = TestEnv::start().await;
    let steps = Arc::new(Mutex::new(0));
    let counter = steps.clone();
    env.host(
        "mail.example.test",
        server("2.5,12.0,12.1,14.0,14.1,16.0,16.1", move |command, seen| {
            match command {
                "Provision" => {
                    let request = wbxml::decode(&seen.raw_body, Bounds::default()).unwrap();
                    let policy = request
                        .child(provision::PAGE, provision::POLICIES)
                        .and_then(|p| p.child(provision::PAGE, provision::POLICY))
                        .unwrap();
                    let acknowledged = policy.child_text(provision::PAGE, provision::POLICY_KEY);
                    *counter.lock().unwrap() += 1;
                    let (key, data) = match acknowledged.as_deref() {
                        // [MS-ASPROV] 4.1: the temporary key with the policy document.
                        None => ("1307199584", true),
                        Some("1307199584") => {
                            assert_eq!(
                                policy
                                    .child_text(provision::PAGE, provision::STATUS)
                                    .as_deref(),
                                Some("1"),
                                "acknowledged with status 1"
                            );
                            ("3942919513", false)
                        }
                        Some(other) => panic!("acknowledged {other}"),
                    };
                    let mut answer_policy = Element::new(provision::PAGE, provision::POLICY)
                        .with(
                            Element::new(provision::PAGE, provision::POLICY_TYPE)
                                .text_node("MS-EAS-Provisioning-WBXML"),
                        )
                        .with(Element::new(provision::PAGE, provision::STATUS).text_node("1"))
                        .with(Element::new(provision::PAGE, provision::POLICY_KEY).text_node(key));
                    if data {
                        answer_policy = answer_policy.with(
                            Element::new(provision::PAGE, provision::DATA)
                                .with(Element::new(provision::PAGE, 0x0D)),
                        );
                    }
                    wbxml_reply(
                        &Element::new(provision::PAGE, provision::PROVISION)
                            .with(Element::new(provision::PAGE, provision::STATUS).text_node("1"))
                            .with(
                                Element::new(provision::PAGE, provision::POLICIES)
                                    .with(answer_policy),
                            ),
                    )
                }
                "FolderSync" if seen.header("x-ms-policykey") == Some("3942919513") => {
                    Reply::recorded(&fixture("horde/foldersync-200.http"))
                }
                _ => Reply::status(449),
            }
        }),
    );
    let (report, _) = check_at(&env, "mail.example.test").await;
    let sync = report.sync.unwrap();
    assert_eq!(sync.code, Code::SyncConfirmed, "{sync:?}");
    assert!(sync.policy_acknowledged);
    assert_eq!(sync.protocol_version.as_deref(), Some("16.1"));
    assert_eq!(*steps.lock().unwrap(), 2);
}

#[tokio::test]
async fn why_a_mailbox_will_not_sync_is_said_with_its_code_and_remedy() {
    let cases: Vec<(&str, Reply, Code)> = vec![
        (
            "status 142",
            folder_sync_status("142"),
            Code::ProvisioningRequired,
        ),
        ("http 449", Reply::status(449), Code::ProvisioningRequired),
        (
            "status 126",
            folder_sync_status("126"),
            Code::UserDisabledForSync,
        ),
        ("status 129", folder_sync_status("129"), Code::DeviceBlocked),
        ("status 130", folder_sync_status("130"), Code::AccessDenied),
        (
            "status 177",
            folder_sync_status("177"),
            Code::MaxDevicesReached,
        ),
        (
            "http 451",
            Reply::status(451).header(
                "X-MS-Location",
                "https://outlook.office365.com/Microsoft-Server-ActiveSync",
            ),
            Code::MailboxMoved,
        ),
        (
            "http 503 throttled",
            Reply::status(503).header("X-MS-ASThrottle", "CommandFrequency"),
            Code::Throttled,
        ),
        (
            "inbox only",
            wbxml_reply(
                &Element::new(folder::PAGE, folder::FOLDER_SYNC)
                    .with(Element::new(folder::PAGE, folder::STATUS).text_node("1"))
                    .with(Element::new(folder::PAGE, folder::SYNC_KEY).text_node("1"))
                    .with(
                        Element::new(folder::PAGE, folder::CHANGES)
                            .with(Element::new(folder::PAGE, folder::COUNT).text_node("1"))
                            .with(
                                Element::new(folder::PAGE, folder::ADD)
                                    .with(
                                        Element::new(folder::PAGE, folder::SERVER_ID)
                                            .text_node("1"),
                                    )
                                    .with(
                                        Element::new(folder::PAGE, folder::PARENT_ID)
                                            .text_node("0"),
                                    )
                                    .with(
                                        Element::new(folder::PAGE, folder::DISPLAY_NAME)
                                            .text_node("Inbox"),
                                    )
                                    .with(Element::new(folder::PAGE, folder::TYPE).text_node("2")),
                            ),
                    ),
            ),
            Code::DeviceQuarantined,
        ),
        ("http 500", Reply::status(500), Code::HttpServerError),
    ];
    for (name, folder_sync, expected) in cases {
        let env = TestEnv::start().await;
        env.host(
            "mail.example.test",
            server("14.0,14.1", move |command, seen| match command {
                "FolderSync" => folder_sync.clone(),
                other => horde(other, seen),
            }),
        );
        let (report, _) = check_at(&env, "mail.example.test").await;
        let sync = report.sync.as_ref().unwrap();
        assert_eq!(sync.code, expected, "{name}: {sync:?}");
        let error = report
            .error
            .as_ref()
            .expect("a failed check is the report's error");
        assert_eq!(error.code, expected, "{name}");
        assert!(report.remedy.is_some(), "{name}: a remedy");
        assert_eq!(
            report.exchange_server_host.as_deref(),
            Some("mail.example.test"),
            "{name}: the host stays"
        );
        let failed = report
            .trail
            .iter()
            .filter(|a| a.step == exdisco::report::Step::SyncCheck)
            .any(|a| a.code == Some(expected));
        assert!(
            failed || expected == Code::DeviceQuarantined || name.starts_with("status"),
            "{name}: the failing command is in the trail"
        );
        if expected == Code::Throttled {
            assert_eq!(sync.throttle.as_deref(), Some("CommandFrequency"));
        }
    }
}

#[tokio::test]
async fn a_remote_wipe_is_reported_and_never_acknowledged() {
    let env = TestEnv::start().await;
    env.host(
        "mail.example.test",
        server("14.1", |command, _| match command {
            "Provision" => wbxml_reply(
                &Element::new(provision::PAGE, provision::PROVISION)
                    .with(Element::new(provision::PAGE, provision::STATUS).text_node("1"))
                    .with(Element::new(provision::PAGE, provision::REMOTE_WIPE)),
            ),
            _ => Reply::status(400),
        }),
    );
    let (report, _) = check_at(&env, "mail.example.test").await;
    let sync = report.sync.unwrap();
    assert_eq!(sync.code, Code::RemoteWipeRequested);
    assert!(sync.remote_wipe_requested);
    assert_eq!(
        posts(&env).len(),
        1,
        "nothing after the directive: no acknowledgement"
    );
}

#[tokio::test]
async fn a_server_with_only_old_versions_gets_no_command() {
    let env = TestEnv::start().await;
    env.host("mail.example.test", server("2.0,2.5", horde));
    let (report, _) = check_at(&env, "mail.example.test").await;
    assert_eq!(report.sync.unwrap().code, Code::ProtocolVersionRefused);
    assert!(posts(&env).is_empty());
}

#[tokio::test]
async fn a_wrong_password_gets_no_sync_check() {
    let env = TestEnv::start().await;
    env.host("mail.example.test", server("14.1", horde));
    let pipeline = Pipeline::builder(env.config()).build().unwrap();
    let address = EmailAddress::parse("alice@example.test").unwrap();
    let wrong = Credentials::new("alice@example.test", "wrong");
    let mut report = pipeline
        .known_host(
            &address,
            KnownHost::explicit("mail.example.test"),
            Some(&wrong),
        )
        .await
        .unwrap();
    pipeline
        .check_sync(
            &mut report,
            &wrong,
            &DeviceIdentity::for_account("alice@example.test"),
        )
        .await;
    assert_eq!(report.error.unwrap().code, Code::AuthFailed);
    assert!(report.sync.is_none());
    assert!(posts(&env).is_empty());
}

/// The daemon with `connect.verify = "sync"`: an account that syncs is stored with what the
/// check proved; one that will not is refused with its own error type, code and remedy, and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_proves_sync_before_it_stores_an_account() {
    use crate::support::app::TestApp;
    use serde_json::json;
    let env = TestEnv::start().await;
    env.host(
        "mail.example.test",
        server("2.5,12.0,12.1,14.0,14.1", horde),
    );
    env.host(
        "quarantine.example.test",
        server("14.1", |command, seen| match command {
            "FolderSync" => wbxml_reply(
                &Element::new(folder::PAGE, folder::FOLDER_SYNC)
                    .with(Element::new(folder::PAGE, folder::STATUS).text_node("1"))
                    .with(
                        Element::new(folder::PAGE, folder::CHANGES).with(
                            Element::new(folder::PAGE, folder::ADD)
                                .with(
                                    Element::new(folder::PAGE, folder::DISPLAY_NAME)
                                        .text_node("Inbox"),
                                )
                                .with(Element::new(folder::PAGE, folder::TYPE).text_node("2")),
                        ),
                    ),
            ),
            other => horde(other, seen),
        }),
    );
    let app = TestApp::spawn(&env, |config| {
        config.connect.verify = exdisco::connect::VerifyMode::Sync;
    })
    .await;
    let authorize = |host: &str| {
        json!({
            "client_id": app.client_id, "email_address": "alice@example.test",
            "provider": "exchange", "scopes": "email.read_only",
            "settings": {"username": "alice@example.test", "password": PASSWORD,
                         "exchange_server_host": host},
        })
    };
    let (status, _, answer) = app
        .post("/connect/authorize", &authorize("quarantine.example.test"))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["type"], "sync_check_failed");
    assert_eq!(answer["code"], "device_quarantined");
    assert_eq!(
        answer["remedy_action"]["action"], "ask_administrator",
        "{answer}"
    );
    assert!(answer["remedy"].as_str().unwrap().contains("quarantined"));

    let (status, _, answer) = app
        .post("/connect/authorize", &authorize("mail.example.test"))
        .await;
    assert_eq!(status, 200, "{answer}");
    let code = answer["code"].as_str().unwrap();
    let (status, _, token) = app
        .post(
            "/connect/token",
            &json!({"client_id": app.client_id, "client_secret": app.client_secret, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{token}");
    let (status, account) = app.account(token["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let identity = DeviceIdentity::for_account("alice@example.test");
    assert_eq!(
        account["sync_check"]["protocol_version"], "14.1",
        "{account}"
    );
    assert_eq!(
        account["sync_check"]["device_id"],
        identity.device_id.as_str()
    );
    assert!(account["sync_check"]["checked_at"].as_i64().unwrap() > 0);
}

/// The command line: `discover --verify=sync` and `probe --sync` print the check, and exit 1
/// with the code and the remedy when the mailbox will not sync; `--verify` alone sends no
/// command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_runs_the_sync_check_when_asked() {
    use crate::cli::{args, exdisco};
    let env = TestEnv::start().await;
    env.host("mail.example.test", server("14.0,14.1", horde));
    env.host(
        "blocked.example.test",
        server("14.1", |command, seen| match command {
            "FolderSync" => wbxml_reply(
                &Element::new(folder::PAGE, folder::FOLDER_SYNC)
                    .with(Element::new(folder::PAGE, folder::STATUS).text_node("129")),
            ),
            other => horde(other, seen),
        }),
    );
    let discover = |host: &str, verify: &str| {
        args(&[
            "discover",
            "alice@example.test",
            "--host",
            host,
            "--username",
            "alice@example.test",
            "--password-stdin",
            verify,
        ])
    };
    let run = exdisco(
        &env,
        discover("mail.example.test", "--verify"),
        Some(PASSWORD.into()),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(posts(&env).is_empty(), "--verify alone is OPTIONS only");

    let run = exdisco(
        &env,
        discover("mail.example.test", "--verify=sync"),
        Some(PASSWORD.into()),
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("sync_confirmed (ActiveSync 14.1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("6 folders"), "{}", run.stdout);

    let run = exdisco(
        &env,
        discover("blocked.example.test", "--verify=sync"),
        Some(PASSWORD.into()),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("device_blocked"), "{}", run.stdout);
    assert!(
        run.stdout.contains("administrator must allow it"),
        "{}",
        run.stdout
    );

    let run = exdisco(
        &env,
        args(&[
            "probe",
            "mail.example.test",
            "--username",
            "alice@example.test",
            "--password-stdin",
            "--sync",
            "--device-id",
            "ABC123",
            "--json",
        ]),
        Some(PASSWORD.into()),
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(json["sync"]["code"], "sync_confirmed");
    assert_eq!(
        json["sync"]["device_id"], "ABC123",
        "the device id can be given"
    );
}
