use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|err| panic!("{full}: {err}"))
}

fn settings(path: &str) -> Settings {
    match parse_answer(&fixture(path)).unwrap() {
        Answer::Settings(settings) => settings,
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn outlook_settings_prefer_expr_and_read_urls() {
    let s = settings("pox/outlook-settings.xml");
    assert_eq!(s.expr_server.as_deref(), Some("mail.example.test"));
    assert!(s.exch_server.unwrap().contains('@'));
    assert_eq!(
        s.activesync_url.as_deref(),
        Some("https://mail.example.test/Microsoft-Server-ActiveSync")
    );
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://mail.example.test/EWS/Exchange.asmx")
    );
    assert_eq!(s.ttl_hours, Some(2));
    assert_eq!(s.display_name.as_deref(), Some("Alice Example"));
    assert!(!s.microsoft_online);
}

#[test]
fn exch_only_settings() {
    let s = settings("pox/outlook-settings-no-expr.xml");
    assert_eq!(s.expr_server, None);
    assert_eq!(s.exch_server.as_deref(), Some("exch01.example.test"));
}

#[test]
fn office365_settings_flag_microsoft_online() {
    let s = settings("pox/office365-settings.xml");
    assert!(s.microsoft_online);
    assert_eq!(s.expr_server.as_deref(), Some("outlook.office365.com"));
}

#[test]
fn redirects_and_errors() {
    assert_eq!(
        parse_answer(&fixture("pox/outlook-redirect-addr.xml")).unwrap(),
        Answer::RedirectAddr("alice@subdomain.example.test".into())
    );
    assert_eq!(
        parse_answer(&fixture("pox/outlook-redirect-url.xml")).unwrap(),
        Answer::RedirectUrl("https://mail.example.test/autodiscover/autodiscover.xml".into())
    );
    assert!(matches!(
        parse_answer(&fixture("pox/outlook-error-500.xml")).unwrap(),
        Answer::Error { code, .. } if code == "500"
    ));
    assert!(matches!(
        parse_answer(&fixture("pox/generic-error-600.xml")).unwrap(),
        Answer::Error { code, .. } if code == "600"
    ));
}

#[test]
fn mobilesync_answers() {
    let s = settings("activesync/mobilesync-settings.xml");
    assert_eq!(
        s.activesync_url.as_deref(),
        Some("https://eas.example.test/Microsoft-Server-ActiveSync")
    );
    assert_eq!(
        parse_answer(&fixture("activesync/mobilesync-redirect.xml")).unwrap(),
        Answer::RedirectAddr("dave@subdomain.example.test".into())
    );
    assert!(matches!(
        parse_answer(&fixture("activesync/mobilesync-error.xml")).unwrap(),
        Answer::Error { code, .. } if code == "2"
    ));
}

#[test]
fn doctype_is_refused() {
    let body = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response>&lol2;</Response></Autodiscover>"#;
    assert_eq!(parse_answer(body), Err(ParseError::Doctype));
}

#[test]
fn unknown_entities_are_not_expanded() {
    let body = br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response>&xxe;</Response></Autodiscover>"#;
    assert!(matches!(
        parse_answer(body),
        Err(ParseError::Invalid { .. })
    ));
}

#[test]
fn predefined_entities_and_char_refs_are_read() {
    let body = br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><User><DisplayName>A &amp; B&#33;</DisplayName></User><Account><Action>settings</Action></Account></Response></Autodiscover>"#;
    let Answer::Settings(s) = parse_answer(body).unwrap() else {
        panic!()
    };
    assert_eq!(s.display_name.as_deref(), Some("A & B!"));
}

#[test]
fn deep_nesting_is_refused() {
    let mut body = String::from(
        r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">"#,
    );
    body.push_str(&"<a>".repeat(100));
    body.push_str(&"</a>".repeat(100));
    body.push_str("</Autodiscover>");
    assert!(matches!(
        parse_answer(body.as_bytes()),
        Err(ParseError::Invalid { .. })
    ));
}

#[test]
fn wrong_root_and_garbage_are_refused() {
    assert!(parse_answer(b"<html><body>hello</body></html>").is_err());
    assert!(parse_answer(b"not xml at all").is_err());
    assert!(parse_answer(b"").is_err());
    assert!(
        parse_answer(br#"<Autodiscover xmlns="urn:other"><Response/></Autodiscover>"#).is_err()
    );
}

#[test]
fn request_bodies_name_their_schemas() {
    let outlook = request_body(Schema::Outlook, "a&b@example.test");
    assert!(outlook.contains("outlook/requestschema/2006"));
    assert!(outlook.contains("outlook/responseschema/2006a"));
    assert!(outlook.contains("a&amp;b@example.test"));
    let mobile = request_body(Schema::MobileSync, "a@example.test");
    assert!(mobile.contains("mobilesync/requestschema/2006"));
    assert!(mobile.contains("mobilesync/responseschema/2006"));
}

#[test]
fn sogo_html_page_is_not_an_autodiscover_answer() {
    let raw = fixture("activesync/sogo-autodiscover-post.http");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(parse_answer(&raw[split + 4..]), Err(ParseError::Doctype));
}
