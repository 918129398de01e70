use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|err| panic!("{full}: {err}"))
}

/// The body of a fixture: a whole `.http` answer loses its head; `{{...}}` placeholders are
/// filled for `sven@rs2013.example`.
fn body(path: &str) -> Vec<u8> {
    let raw = fixture(path);
    let crlf = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|at| at + 2);
    let body = match crlf.into_iter().chain(lf).min() {
        Some(start) if path.ends_with(".http") => raw[start..].to_vec(),
        _ => raw,
    };
    String::from_utf8(body)
        .unwrap()
        .replace("{{email}}", "sven@rs2013.example")
        .replace("{{local}}", "sven")
        .replace("{{domain}}", "rs2013.example")
        .replace("{{redirect_host}}", "ad.eu.rs2013.example")
        .into_bytes()
}

fn settings(path: &str) -> Settings {
    match parse_answer(&body(path)).unwrap() {
        Answer::Settings(settings) => settings,
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn asurl_is_the_availability_service_not_activesync() {
    // Exchange 2010: no EwsUrl at all; ASUrl is the EWS endpoint to bind to.
    let s = settings("pox/ex2010-outlook.xml");
    assert_eq!(s.expr_server.as_deref(), Some("mail.rs2010.example"));
    assert_eq!(
        s.exch_server.as_deref(),
        Some("MBX-SERVER.mail.internal.rs2010.example")
    );
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://mail.rs2010.example/ews/exchange.asmx")
    );
    assert_eq!(
        s.activesync_url, None,
        "the Outlook schema has no ActiveSync URL"
    );
    assert!(!s.microsoft_online);
}

#[test]
fn exchange_2013_guid_exch_and_expr_host() {
    let s = settings("pox/ex2013-outlook.xml");
    assert_eq!(s.expr_server.as_deref(), Some("mail.rs2013.example"));
    assert!(s.exch_server.unwrap().contains('@'));
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://mail.rs2013.example/EWS/Exchange.asmx")
    );
    assert_eq!(s.activesync_url, None);
}

#[test]
fn exchange_2016_mapihttp_answer_names_exhttp() {
    let s = settings("pox/ex2016-mapihttp.xml");
    assert_eq!(s.expr_server, None);
    assert_eq!(s.exch_server, None);
    assert_eq!(s.exhttp_server.as_deref(), Some("mail.rs2013.example"));
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://mail.rs2013.example/ews/exchange.asmx")
    );
}

#[test]
fn exchange_online_answers_flag_microsoft_online() {
    let s = settings("pox/o365-full.xml");
    assert!(s.microsoft_online);
    assert_eq!(s.expr_server.as_deref(), Some("outlook.office365.example"));
    let s = settings("pox/o365-exch-only.xml");
    assert!(s.microsoft_online);
    assert_eq!(s.expr_server, None);
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://outlook.office365.example/EWS/Exchange.asmx")
    );
}

#[test]
fn zimbra_exch_block_with_only_urls() {
    let s = settings("pox/zimbra-ews.http");
    assert_eq!(s.exch_server, None);
    assert_eq!(
        s.ews_url.as_deref(),
        Some("https://webmail.rszimbra.example/ews/Exchange.asmx")
    );
}

#[test]
fn imap_only_answers_are_not_exchange() {
    for path in ["pox/cpanel-imap.xml", "pox/mailcow-imap.http"] {
        match parse_answer(&body(path)).unwrap() {
            Answer::NotExchange { protocols, .. } => assert!(protocols.contains("IMAP"), "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn imap_only_answers_name_their_servers() {
    let Answer::NotExchange { servers, .. } = parse_answer(&body("pox/cpanel-imap.xml")).unwrap()
    else {
        panic!("cpanel is not Exchange")
    };
    let summary: Vec<String> = servers.iter().map(ToString::to_string).collect();
    assert_eq!(
        summary,
        [
            "imap s28.cpanelhost.example:143 (ssl)",
            "pop3 s28.cpanelhost.example:995 (ssl)",
            "smtp s28.cpanelhost.example:587 (starttls)",
        ]
    );
    let Answer::NotExchange { servers, .. } =
        parse_answer(&body("horde/ad-outlook-imap.http")).unwrap()
    else {
        panic!("Horde's Outlook answer is IMAP/SMTP only")
    };
    assert_eq!(servers[0].to_string(), "imap imap.horde.test:993 (ssl)");
    assert_eq!(servers[1].to_string(), "smtp smtp.horde.test:587 (none)");
    assert_eq!(servers[0].login_name.as_deref(), Some("test"));
}

#[test]
fn hordes_error_in_a_200_is_an_error_answer() {
    // Horde pitfall 5: the Outlook schema's 600 comes back as 200 OK, in Action/Error/Status.
    match parse_answer(&body("horde/ad-outlook-600-in-200.http")).unwrap() {
        Answer::Error { code, .. } => assert_eq!(code, "600"),
        other => panic!("{other:?}"),
    }
    // Its mobilesync answer has leading white space before <Autodiscover>; the Url keeps
    // what Horde wrote (pitfall 1: no port).
    let s = settings("horde/ad-mobilesync.http");
    assert_eq!(
        s.activesync_url.as_deref(),
        Some("https://horde.test/Microsoft-Server-ActiveSync")
    );
}

#[test]
fn mobilesync_answers_of_every_server() {
    for (path, url) in [
        (
            "pox/ex-mobilesync-settings.xml",
            "https://mail.rs2013.example/Microsoft-Server-ActiveSync",
        ),
        (
            "pox/zpush-mobilesync.http",
            "https://push.rszpush.example/Microsoft-Server-ActiveSync",
        ),
        (
            "pox/mailcow-mobilesync.http",
            "https://mail.rsmcow.example/Microsoft-Server-ActiveSync",
        ),
        (
            "pox/zimbra-mobilesync.http",
            "https://webmail.rszimbra.example/Microsoft-Server-ActiveSync",
        ),
        (
            "activesync/mobilesync-settings.xml",
            "https://eas.example.test/Microsoft-Server-ActiveSync",
        ),
    ] {
        assert_eq!(
            settings(path).activesync_url.as_deref(),
            Some(url),
            "{path}"
        );
    }
}

#[test]
fn redirects_and_errors() {
    assert_eq!(
        parse_answer(&body("pox/redirectaddr-msdoc.xml")).unwrap(),
        Answer::RedirectAddr("una@rsmig-new.example".into())
    );
    assert_eq!(
        parse_answer(&body("pox/redirectaddr-mobilesync.xml")).unwrap(),
        Answer::RedirectAddr("una@rsmig-new.example".into())
    );
    assert_eq!(
        parse_answer(&body("pox/redirecturl-reconstructed.xml")).unwrap(),
        Answer::RedirectUrl("https://ad.eu.rs2013.example/autodiscover/autodiscover.xml".into())
    );
    assert!(matches!(
        parse_answer(&body("pox/ex-error-500.xml")).unwrap(),
        Answer::Error { code, .. } if code == "500"
    ));
    for path in ["pox/ex2010-error-600.xml", "pox/mailcow-600.http"] {
        assert!(matches!(
            parse_answer(&body(path)).unwrap(),
            Answer::Error { code, .. } if code == "600"
        ));
    }
    assert!(matches!(
        parse_answer(&fixture("activesync/mobilesync-error.xml")).unwrap(),
        Answer::Error { code, .. } if code == "2"
    ));
    // Z-Push's Outlook-schema answer and mailcow's wrong-password answer have no body.
    assert!(parse_answer(&body("pox/zpush-500.http")).is_err());
    assert!(parse_answer(&body("pox/mailcow-badauth-200.http")).is_err());
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
    let body = br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><User><DisplayName>A &amp; B&#33;</DisplayName></User><Account><Action>settings</Action><Protocol><Type>EXPR</Type><Server>mail.example.test</Server></Protocol></Account></Response></Autodiscover>"#;
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
