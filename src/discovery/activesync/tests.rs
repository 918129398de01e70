use reqwest::header::{HeaderName, HeaderValue};

use super::*;

/// Reads a raw HTTP response head from `fixtures/activesync`.
fn fixture(name: &str) -> (StatusCode, HeaderMap) {
    let path = format!("{}/fixtures/activesync/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    (StatusCode::from_u16(status).unwrap(), headers)
}

fn outcome(name: &str, authenticated: bool) -> Probe {
    let (status, headers) = fixture(name);
    let url = Url::parse("https://mail.example.test/Microsoft-Server-ActiveSync").unwrap();
    classify(&url, status, &headers, authenticated).report
}

#[test]
fn exchange_200_is_confirmed_with_versions_commands_and_build() {
    let probe = outcome("options-exchange2016-200.http", true);
    assert_eq!(probe.outcome, ProbeOutcome::Confirmed);
    assert_eq!(probe.code, "activesync_confirmed");
    assert!(probe.versions.contains(&"16.1".to_owned()));
    assert_eq!(probe.versions.len(), 9);
    assert!(probe.commands.contains(&"FolderSync".to_owned()));
    assert_eq!(probe.server_build.as_deref(), Some("15.1"));
}

#[test]
fn anonymous_401_shows_the_endpoint_and_authenticated_401_refuses() {
    assert_eq!(
        outcome("options-exchange2016-401.http", false).outcome,
        ProbeOutcome::AuthRequired
    );
    assert_eq!(
        outcome("options-exchange2016-401.http", true).outcome,
        ProbeOutcome::CredentialsRefused
    );
}

#[test]
fn bearer_only_is_modern_auth_not_a_wrong_password() {
    for authenticated in [false, true] {
        let probe = outcome("options-office365-401-bearer.http", authenticated);
        assert_eq!(probe.outcome, ProbeOutcome::ModernAuthOnly);
    }
}

#[test]
fn moved_451_points_to_the_new_url() {
    let (status, headers) = fixture("options-451-moved.http");
    let url = Url::parse("https://mail.example.test/Microsoft-Server-ActiveSync").unwrap();
    let step = classify(&url, status, &headers, false);
    assert_eq!(step.report.outcome, ProbeOutcome::Moved);
    assert_eq!(
        step.moved_to.as_deref(),
        Some("https://eas2.example.test/Microsoft-Server-ActiveSync")
    );
}

#[test]
fn a_web_page_is_not_activesync() {
    assert_eq!(
        outcome("options-webpage-200.http", false).outcome,
        ProbeOutcome::NotActiveSync
    );
}

#[test]
fn header_names_are_case_insensitive_and_lists_are_trimmed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "ms-asprotocolversions",
        HeaderValue::from_static(" 2.5, 12.0 ,14.1,"),
    );
    headers.insert(
        "MS-ASPROTOCOLCOMMANDS",
        HeaderValue::from_static("Sync,FolderSync"),
    );
    let url = Url::parse("https://mail.example.test/Microsoft-Server-ActiveSync").unwrap();
    let probe = classify(&url, StatusCode::OK, &headers, false).report;
    assert_eq!(probe.versions, ["2.5", "12.0", "14.1"]);
    assert_eq!(probe.outcome, ProbeOutcome::Confirmed);
    let mut lower = HeaderMap::new();
    lower.insert(
        "www-authenticate",
        HeaderValue::from_static("basic realm=\"SOGo\""),
    );
    let probe = classify(&url, StatusCode::UNAUTHORIZED, &lower, true).report;
    assert_eq!(probe.outcome, ProbeOutcome::CredentialsRefused);
}

#[test]
fn forbidden_and_server_errors() {
    let url = Url::parse("https://mail.example.test/Microsoft-Server-ActiveSync").unwrap();
    let empty = HeaderMap::new();
    assert_eq!(
        classify(&url, StatusCode::FORBIDDEN, &empty, true)
            .report
            .outcome,
        ProbeOutcome::Forbidden
    );
    assert_eq!(
        classify(&url, StatusCode::BAD_GATEWAY, &empty, true)
            .report
            .outcome,
        ProbeOutcome::ServerError
    );
    assert_eq!(
        classify(&url, StatusCode::NOT_FOUND, &empty, false)
            .report
            .outcome,
        ProbeOutcome::NotActiveSync
    );
    assert_eq!(
        classify(&url, StatusCode::UNAUTHORIZED, &empty, false)
            .report
            .outcome,
        ProbeOutcome::NotActiveSync
    );
}

#[test]
fn sogo_answers_as_recorded() {
    let anonymous = outcome("sogo-options-anonymous.http", false);
    assert_eq!(
        anonymous.outcome,
        ProbeOutcome::AuthRequired,
        "lower-case basic realm"
    );
    let wrong = outcome("sogo-options-wrong-password.http", true);
    assert_eq!(wrong.outcome, ProbeOutcome::CredentialsRefused);
    let good = outcome("sogo-options-good-password.http", true);
    assert_eq!(good.outcome, ProbeOutcome::Confirmed);
    assert_eq!(good.versions, ["2.5", "12.0", "12.1", "14.0", "14.1"]);
    assert_eq!(good.server_build.as_deref(), Some("14.1"));
}
