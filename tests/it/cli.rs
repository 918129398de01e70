//! The built `exdisco` binary against the same fakes, configured through its flags.

use std::io::Write;

use assert_cmd::Command;
use serde_json::Value;

use crate::support::*;

const PASSWORD: &str = "s3cret-never-logged";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.lines().last().unwrap_or("null")).unwrap()
    }
}

/// The binary with `args`, pointed at `env`'s fakes.
pub async fn exdisco(env: &TestEnv, args: Vec<String>, stdin: Option<String>) -> Run {
    exdisco_with_env(env, args, stdin, Vec::new()).await
}

/// [`exdisco`] with more environment variables.
pub async fn exdisco_with_env(
    env: &TestEnv,
    args: Vec<String>,
    stdin: Option<String>,
    vars: Vec<(String, String)>,
) -> Run {
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(env.ca.pem().as_bytes()).unwrap();
    let port = env.fleet.addr.port().to_string();
    let dns = env.dns.addr.to_string();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::cargo_bin("exdisco").unwrap();
        cmd.args(&args)
            .args([
                "--dns-server",
                &dns,
                "--allow-net",
                "127.0.0.0/8",
                "--timeout",
                "8",
            ])
            .args(["--https-port", &port, "--http-port", &port])
            .arg("--ca-file")
            .arg(ca.path())
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .env_remove("EXDISCO_PASSWORD")
            .env_remove("RUST_LOG")
            .envs(vars);
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let output = cmd.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_json_finds_the_host() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    env.host("mail.example.test", |_| {
        Reply::fixture("activesync/sogo-options-anonymous.http")
    });
    let run = exdisco(
        &env,
        args(&["discover", "Alice@Example.test", "--json"]),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["email"], "alice@example.test");
    assert_eq!(json["exchange_server_host"], "mail.example.test");
    assert_eq!(json["method"], "pox_domain");
    assert_eq!(json["confirmed"], true);
    assert_eq!(
        json["activesync_url"],
        "https://mail.example.test/Microsoft-Server-ActiveSync"
    );
    assert_eq!(
        json["ews_url"],
        "https://mail.example.test/EWS/Exchange.asmx"
    );
    assert!(json["trail"].as_array().is_some_and(|t| !t.is_empty()));
    assert!(json["seconds"].as_f64().is_some());
    assert!(json["error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_exits_1_with_the_trail() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    let run = exdisco(
        &env,
        args(&["discover", "alice@example.test", "--json"]),
        None,
    )
    .await;
    assert_eq!(run.code, 1);
    let json = run.json();
    assert!(json["exchange_server_host"].is_null());
    assert_eq!(json["error"]["code"], "not_found");
    assert!(json["trail"].as_array().unwrap().len() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_shows_host_and_trail() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let run = exdisco(&env, args(&["discover", "alice@example.test"]), None).await;
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with("mail.example.test"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("pox_domain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_address_exits_2_without_traffic() {
    let env = TestEnv::start().await;
    let run = exdisco(&env, args(&["discover", "alice@localhost", "--json"]), None).await;
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["error"]["code"], "invalid_address");
    assert!(env.dns.queried().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_host_turns_discovery_off() {
    let env = TestEnv::start().await;
    let run = exdisco(
        &env,
        args(&[
            "discover",
            "alice@example.test",
            "--host",
            "EAS.Example.test",
            "--json",
        ]),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["exchange_server_host"], "eas.example.test");
    assert_eq!(json["method"], "explicit");
    assert!(env.dns.queried().is_empty());
    assert!(env.fleet.seen().is_empty());
    let bad = exdisco(
        &env,
        args(&[
            "discover",
            "alice@example.test",
            "--host",
            "10.0.0.1",
            "--json",
        ]),
        None,
    )
    .await;
    assert_eq!(bad.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_from_stdin_are_used_and_never_printed() {
    let env = TestEnv::start().await;
    env.refused("example.test");
    let expected = basic("alice", PASSWORD);
    env.host("autodiscover.example.test", move |s| {
        match &s.authorization {
            Some(auth) if *auth == expected => Reply::xml(settings_answer("mail.example.test")),
            _ => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"x\""),
        }
    });
    let run = exdisco(
        &env,
        args(&[
            "-vvv",
            "discover",
            "alice@example.test",
            "--username",
            "alice",
            "--password-stdin",
            "--json",
        ]),
        Some(format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    let encoded = basic("alice", PASSWORD);
    assert!(!run.stderr.contains(encoded.trim_start_matches("Basic ")));
    assert!(
        run.stderr.contains("attempt finished"),
        "trace logging was on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_flag_does_not_exist() {
    let env = TestEnv::start().await;
    let run = exdisco(
        &env,
        args(&["discover", "alice@example.test", "--password", "x"]),
        None,
    )
    .await;
    assert_eq!(run.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_the_classified_outcome() {
    let env = TestEnv::start().await;
    let expected = basic("alice", PASSWORD);
    env.host("eas.example.test", move |s| match &s.authorization {
        Some(auth) if *auth == expected => Reply::status(200)
            .header("MS-Server-ActiveSync", "15.1")
            .header("MS-ASProtocolVersions", "14.1,16.0,16.1")
            .header("MS-ASProtocolCommands", "Sync,FolderSync"),
        _ => Reply::status(401).header("Www-Authenticate", "basic realm=\"eas\""),
    });
    let anonymous = exdisco(&env, args(&["probe", "eas.example.test", "--json"]), None).await;
    assert_eq!(anonymous.code, 0, "{}", anonymous.stderr);
    assert_eq!(anonymous.json()["code"], "auth_required");
    let run = exdisco(
        &env,
        args(&[
            "probe",
            "eas.example.test",
            "--username",
            "alice",
            "--password-stdin",
            "--json",
        ]),
        Some(format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["code"], "activesync_confirmed");
    assert_eq!(
        json["versions"],
        serde_json::json!(["14.1", "16.0", "16.1"])
    );
    assert_eq!(json["server_build"], "15.1");
    assert_eq!(json["trail"].as_array().unwrap().len(), 2);
    let human = exdisco(&env, args(&["probe", "eas.example.test"]), None).await;
    assert!(
        human.stdout.starts_with("auth_required"),
        "{}",
        human.stdout
    );
    let bad = exdisco(
        &env,
        args(&["probe", "http://eas.example.test/x", "--json"]),
        None,
    )
    .await;
    assert_eq!(bad.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_verify_checks_the_password() {
    let env = TestEnv::start().await;
    env.host("example.test", |_| {
        Reply::xml(settings_answer("mail.example.test"))
    });
    let expected = basic("alice", PASSWORD);
    env.host("mail.example.test", move |s| match &s.authorization {
        Some(auth) if *auth == expected => Reply::status(200)
            .header("MS-ASProtocolVersions", "16.1")
            .header("MS-ASProtocolCommands", "Sync"),
        _ => Reply::status(401).header("WWW-Authenticate", "Basic realm=\"x\""),
    });
    let verify = [
        "discover",
        "alice@example.test",
        "--username",
        "alice",
        "--password-stdin",
        "--verify",
        "--json",
    ];
    let run = exdisco(&env, args(&verify), Some(format!("{PASSWORD}\n"))).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["credentials_valid"], true);
    assert_eq!(json["provider"], "exchange");
    assert_eq!(json["verification"]["code"], "activesync_confirmed");
    let wrong = exdisco(&env, args(&verify), Some("wrong\n".to_owned())).await;
    assert_eq!(wrong.json()["credentials_valid"], false);
    let missing = exdisco(
        &env,
        args(&["discover", "alice@example.test", "--verify"]),
        None,
    )
    .await;
    assert_eq!(missing.code, 2);
}

#[test]
fn serve_validates_its_configuration_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = Command::cargo_bin("exdisco").unwrap();
        cmd.current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"]);
        for (name, value) in envs {
            cmd.env(name, value);
        }
        cmd.env_remove("EXDISCO_KEY")
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap()
    };
    let bad = run(&[("EXDISCO_API__MAX_IN_FLIGHT", "many")]);
    assert_eq!(
        bad.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = run(&[("EXDISCO_API__LISTN", "127.0.0.1:1")]);
    assert_eq!(unknown.status.code(), Some(64));
    let no_key = run(&[]);
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("exdisco init"));
}

#[test]
fn init_creates_the_key_once_and_clients_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let exdisco = |args: &[&str]| {
        let output = Command::cargo_bin("exdisco")
            .unwrap()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(exdisco(&["init"]).contains("created"));
    let key = std::fs::read_to_string(dir.path().join("exdisco.key")).unwrap();
    assert!(exdisco(&["init"]).contains("kept"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("exdisco.key")).unwrap(),
        key
    );
    let added: Value = serde_json::from_str(&exdisco(&["client", "add", "crm", "--json"])).unwrap();
    assert!(
        added["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("exd_cs_")
    );
    let listed: Value = serde_json::from_str(&exdisco(&["client", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["client_id"], added["client_id"]);
    assert!(
        !listed
            .to_string()
            .contains(added["client_secret"].as_str().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_reads_the_configuration_file_then_the_environment_then_its_flags() {
    // Issue 23: every command reads the same configuration as `serve`.
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |s| {
        if s.body.contains("mobilesync") {
            Reply::shape("pox/ex-mobilesync-settings.xml", s)
        } else {
            Reply::status(500)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exdisco.toml");
    std::fs::write(&file, "[discovery]\nschema = \"mobilesync\"\n").unwrap();
    let file = file.display().to_string();
    let schemas = |env: &TestEnv| -> Vec<bool> {
        env.fleet
            .autodiscover_seen_by("autodiscover.example.test")
            .iter()
            .filter(|s| s.method == "POST")
            .map(|s| s.body.contains("mobilesync"))
            .collect()
    };
    let run = exdisco(
        &env,
        args(&["discover", "--config", &file, "alice@example.test"]),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(schemas(&env), [true], "the file's schema first");

    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| Reply::status(500));
    let vars = vec![("EXDISCO_DISCOVERY__SCHEMA".to_owned(), "outlook".to_owned())];
    exdisco_with_env(
        &env,
        args(&["discover", "--config", &file, "alice@example.test"]),
        None,
        vars.clone(),
    )
    .await;
    assert_eq!(
        schemas(&env).first(),
        Some(&false),
        "EXDISCO_* over the file: the Outlook schema first"
    );
    let env = TestEnv::start().await;
    env.refused("example.test");
    env.host("autodiscover.example.test", |_| Reply::status(500));
    exdisco_with_env(
        &env,
        args(&[
            "discover",
            "--config",
            &file,
            "--schema",
            "mobilesync",
            "alice@example.test",
        ]),
        None,
        vars,
    )
    .await;
    assert_eq!(schemas(&env), [true], "the flag over both");
}
