//! Autodiscover "plain old XML" (POX): the request body for both schemas and a strict, bounded
//! parser of the answers ([MS-OXDSCLI] 2.2.4, [MS-ASCMD] 2.2.2.1). Both are pure; the step that
//! POSTs them lives in `step.rs`.
//!
//! The parser builds a small tree under hard caps (depth, element count) and refuses a
//! `DOCTYPE` and any entity other than the five predefined ones and character references, so no
//! entity is ever expanded (rule 15). It then reads the answer by namespace:
//! - Outlook (`.../outlook/responseschema/2006a`): `Account/Action` is `settings`,
//!   `redirectAddr` or `redirectUrl`; `Protocol` elements give `Server`, `EwsUrl`, `ASUrl`,
//!   `TTL`; `Error` gives `ErrorCode`. `ASUrl` is the Availability service, an EWS endpoint
//!   (learn.microsoft.com "ASUrl (POX)"; Exchange 2010's documentation: "To bind to Exchange
//!   Web Services, use the URL identified by the ASUrl element"), never the ActiveSync URL:
//!   the Outlook schema carries none. An answer whose protocols are only IMAP, POP3, SMTP,
//!   CalDAV or CardDAV (web hosters, mailcow) is [`Answer::NotExchange`].
//! - ActiveSync (`.../mobilesync/responseschema/2006`): `Action/Redirect`,
//!   `Action/Settings/Server[Type=MobileSync]/Url`, or `Action/Error/Status`.
//! - Either schema may answer with the generic `Response/Error/ErrorCode` (600, 601).

pub use crate::report::MailServer;
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// Which request schema to send. Both are parsed whatever was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schema {
    /// The Outlook schema: EWS and ActiveSync URLs, `EXPR`/`EXCH` servers.
    #[default]
    Outlook,
    /// The ActiveSync (mobilesync) schema: the `MobileSync` URL. Written `mobile_sync`, or
    /// `mobilesync` as the command line's `--schema` says it.
    #[serde(alias = "mobilesync")]
    MobileSync,
}

/// A parsed Autodiscover answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `Action` = `settings`.
    Settings(Settings),
    /// `Action` = `redirectAddr` (Outlook) or `Action/Redirect` (mobilesync): a new address.
    RedirectAddr(String),
    /// `Action` = `redirectUrl`: a new Autodiscover URL to POST to.
    RedirectUrl(String),
    /// Outlook-schema settings that name no Exchange server (`EXPR`, `EXHTTP` or `EXCH`
    /// `Server`) and no EWS or Availability URL: IMAP/POP/SMTP only, as web hosters and mailcow
    /// answer.
    NotExchange {
        /// The protocol types the answer did name, space-separated.
        protocols: String,
        /// Its IMAP, POP3 and SMTP servers, in the answer's order.
        servers: Vec<MailServer>,
    },
    /// An `Error` element: `ErrorCode` (Outlook, generic) or `Status` (mobilesync).
    Error {
        /// `ErrorCode` or `Status`.
        code: String,
        /// `Message`.
        message: String,
    },
}

/// The settings an answer carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// `User/DisplayName`.
    pub display_name: Option<String>,
    /// `Protocol[Type=EXPR]/Server`: the external Outlook Anywhere host.
    pub expr_server: Option<String>,
    /// `Protocol[Type=EXCH]/Server`: often a mailbox GUID in modern Exchange.
    pub exch_server: Option<String>,
    /// `Protocol[Type=EXHTTP]/Server`: the Outlook Anywhere host of Exchange 2013 and later
    /// (the only server an Outlook-2016-style `mapiHttp` answer names).
    pub exhttp_server: Option<String>,
    /// The EWS URL: `EwsUrl` (EXPR, then EXHTTP, then EXCH), else `ASUrl`, the Availability
    /// service, which is an EWS endpoint (Exchange 2010 answers carry no `EwsUrl`).
    pub ews_url: Option<String>,
    /// The ActiveSync URL: only the mobilesync schema's `MobileSync` server `Url` (or
    /// Autodiscover v2 with `Protocol=ActiveSync`). The Outlook schema carries none.
    pub activesync_url: Option<String>,
    /// `TTL` in hours.
    pub ttl_hours: Option<u32>,
    /// `Account/MicrosoftOnline` is `True`.
    pub microsoft_online: bool,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The body carried a `DOCTYPE`.
    Doctype,
    /// The body is not acceptable Autodiscover XML.
    Invalid {
        /// Byte offset.
        position: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The request body for `address` in `schema`.
pub fn request_body(schema: Schema, address: &str) -> String {
    let (request_ns, response_ns) = match schema {
        Schema::Outlook => (OUTLOOK_REQUEST_NS, OUTLOOK_RESPONSE_NS),
        Schema::MobileSync => (MOBILESYNC_REQUEST_NS, MOBILESYNC_RESPONSE_NS),
    };
    let address = quick_xml::escape::escape(address);
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"{request_ns}\">\
         <Request><EMailAddress>{address}</EMailAddress>\
         <AcceptableResponseSchema>{response_ns}</AcceptableResponseSchema>\
         </Request></Autodiscover>"
    )
}

/// Parses an Autodiscover answer.
pub fn parse_answer(body: &[u8]) -> Result<Answer, ParseError> {
    let root = parse_tree(body)?;
    let invalid = |reason| ParseError::Invalid {
        position: 0,
        reason,
    };
    if root.name != "Autodiscover" || !root.ns.starts_with(AUTODISCOVER_NS_PREFIX) {
        return Err(invalid("the root is not an Autodiscover element"));
    }
    let response = root
        .child("Response")
        .ok_or_else(|| invalid("no Response element"))?;
    if let Some(error) = response.child("Error") {
        return Ok(error_answer(error, "ErrorCode"));
    }
    match response.ns.as_str() {
        OUTLOOK_RESPONSE_NS => outlook_answer(response).ok_or_else(|| invalid("no usable Account")),
        MOBILESYNC_RESPONSE_NS => {
            mobilesync_answer(response).ok_or_else(|| invalid("no usable Action"))
        }
        _ => Err(invalid("the Response namespace is not a known schema")),
    }
}

fn outlook_answer(response: &Element) -> Option<Answer> {
    // Horde answers an Outlook request it cannot serve with the mobilesync schema's
    // `Action/Error/Status`, in the Outlook namespace, and HTTP 200.
    if let Some(error) = response.child("Action").and_then(|a| a.child("Error")) {
        return Some(error_answer(error, "Status"));
    }
    let account = response.child("Account")?;
    match account.child_text("Action")? {
        "redirectAddr" => Some(Answer::RedirectAddr(
            account.child_text("RedirectAddr")?.into(),
        )),
        "redirectUrl" => Some(Answer::RedirectUrl(
            account.child_text("RedirectUrl")?.into(),
        )),
        "settings" => {
            let mut settings = Settings {
                display_name: response
                    .child("User")
                    .and_then(|u| u.owned_text("DisplayName")),
                microsoft_online: account
                    .child_text("MicrosoftOnline")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                ..Settings::default()
            };
            let protocols: Vec<&Element> = account.children_named("Protocol").collect();
            let mut availability_url = None;
            for kind in EXCHANGE_PROTOCOLS {
                for protocol in protocols
                    .iter()
                    .filter(|p| p.child_text("Type") == Some(kind))
                {
                    read_protocol(kind, protocol, &mut settings, &mut availability_url);
                }
            }
            settings.ews_url = settings.ews_url.take().or(availability_url);
            let exchange = settings.expr_server.is_some()
                || settings.exch_server.is_some()
                || settings.exhttp_server.is_some()
                || settings.ews_url.is_some();
            if !exchange {
                let named: Vec<&str> = protocols
                    .iter()
                    .filter_map(|p| p.child_text("Type"))
                    .collect();
                return Some(Answer::NotExchange {
                    protocols: named.join(" "),
                    servers: protocols.iter().filter_map(|p| mail_server(p)).collect(),
                });
            }
            Some(Answer::Settings(settings))
        }
        _ => None,
    }
}

/// The Outlook-schema protocol types that belong to Exchange, in the order their values are
/// preferred: the external one (`EXPR`) first.
const EXCHANGE_PROTOCOLS: [&str; 4] = ["EXPR", "EXHTTP", "EXCH", "WEB"];

fn read_protocol(
    kind: &str,
    protocol: &Element,
    settings: &mut Settings,
    availability_url: &mut Option<String>,
) {
    let server = match kind {
        "EXPR" => &mut settings.expr_server,
        "EXHTTP" => &mut settings.exhttp_server,
        "EXCH" => &mut settings.exch_server,
        _ => &mut None,
    };
    *server = server.take().or(protocol.owned_text("Server"));
    settings.ews_url = settings.ews_url.take().or(protocol.owned_text("EwsUrl"));
    *availability_url = availability_url.take().or(protocol.owned_text("ASUrl"));
    if settings.ttl_hours.is_none() {
        settings.ttl_hours = protocol.child_text("TTL").and_then(|t| t.parse().ok());
    }
    // WEB nests the Availability URL: WEB/External/Protocol/ASUrl.
    for side in ["External", "Internal"] {
        if let Some(nested) = protocol.child(side).and_then(|s| s.child("Protocol")) {
            *availability_url = availability_url.take().or(nested.owned_text("ASUrl"));
        }
    }
}

/// An IMAP, POP3 or SMTP `Protocol` block ([MS-OXDSCLI] 2.2.4.1.1.2.1.1.2: `Type`, `Server`,
/// `Port`, `SSL`, `Encryption`, `LoginName`). `Encryption` (None, SSL, TLS, Auto; hosters
/// also write STARTTLS) wins over `SSL` (on/off), as the specification says.
fn mail_server(protocol: &Element) -> Option<MailServer> {
    let kind = protocol.child_text("Type")?.to_ascii_uppercase();
    if !MAIL_PROTOCOLS.contains(&kind.as_str()) {
        return None;
    }
    let encryption = match protocol.child_text("Encryption") {
        Some(value) => value.to_ascii_lowercase(),
        None => match protocol.child_text("SSL") {
            Some(ssl) if ssl.eq_ignore_ascii_case("off") => "none".to_owned(),
            // SSL defaults to on when absent.
            _ => "ssl".to_owned(),
        },
    };
    Some(MailServer {
        protocol: kind.to_ascii_lowercase(),
        server: protocol.owned_text("Server")?,
        port: protocol.child_text("Port").and_then(|p| p.parse().ok()),
        encryption,
        login_name: protocol.owned_text("LoginName"),
    })
}

/// The protocol types a mail client connects with.
const MAIL_PROTOCOLS: [&str; 3] = ["IMAP", "POP3", "SMTP"];

fn mobilesync_answer(response: &Element) -> Option<Answer> {
    let action = response.child("Action")?;
    if let Some(address) = action.child_text("Redirect") {
        return Some(Answer::RedirectAddr(address.into()));
    }
    if let Some(error) = action.child("Error") {
        return Some(error_answer(error, "Status"));
    }
    let servers = action.child("Settings")?;
    let mobile = servers.children_named("Server").find(|s| {
        s.child_text("Type")
            .is_some_and(|t| t.eq_ignore_ascii_case("MobileSync"))
    })?;
    Some(Answer::Settings(Settings {
        display_name: response
            .child("User")
            .and_then(|u| u.owned_text("DisplayName")),
        activesync_url: mobile.owned_text("Url"),
        ..Settings::default()
    }))
}

fn error_answer(error: &Element, code_element: &str) -> Answer {
    Answer::Error {
        code: error
            .child_text(code_element)
            .unwrap_or_default()
            .to_owned(),
        message: error.child_text("Message").unwrap_or_default().to_owned(),
    }
}

/// A bounded XML element: namespace URI, local name, trimmed text, children.
#[derive(Debug, Default)]
struct Element {
    ns: String,
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    fn owned_text(&self, name: &str) -> Option<String> {
        self.child_text(name).map(str::to_owned)
    }
}

fn parse_tree(body: &[u8]) -> Result<Element, ParseError> {
    let mut reader = NsReader::from_reader(body);
    // No text trimming: it would eat the spaces around entity references.

    let mut stack: Vec<Element> = Vec::new();
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position();
        let invalid = |reason| ParseError::Invalid { position, reason };
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| invalid("malformed xml"))?;
        let ns = match ns {
            ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(_) => return Err(invalid("unknown namespace prefix")),
        };
        match event {
            Event::Start(start) | Event::Empty(start) if stack.len() >= MAX_DEPTH => {
                let _ = start;
                return Err(invalid("nesting too deep"));
            }
            Event::Start(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(invalid("too many elements"));
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Element {
                    ns,
                    name,
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                count += 1;
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let element = Element {
                    ns,
                    name,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| invalid("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|_| invalid("text is not utf-8"))?;
                push_text(&mut stack, &text, invalid)?;
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|_| invalid("cdata is not utf-8"))?;
                push_text(&mut stack, &text, invalid)?;
            }
            Event::GeneralRef(reference) => {
                let ch = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch,
                    Ok(None) => predefined_entity(reference.as_ref())
                        .ok_or_else(|| invalid("entity references are not expanded"))?,
                    Err(_) => return Err(invalid("invalid character reference")),
                };
                push_text(&mut stack, ch.encode_utf8(&mut [0; 4]), invalid)?;
            }
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::Eof => return Err(invalid("unexpected end of document")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

fn push_text(
    stack: &mut [Element],
    text: &str,
    invalid: impl Fn(&'static str) -> ParseError,
) -> Result<(), ParseError> {
    let Some(element) = stack.last_mut() else {
        if text.trim().is_empty() {
            return Ok(());
        }
        return Err(invalid("text outside the root element"));
    };
    if element.text.len() + text.len() > MAX_TEXT {
        return Err(invalid("text too long"));
    }
    element.text.push_str(text);
    Ok(())
}

fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
    }
}

const AUTODISCOVER_NS_PREFIX: &str = "http://schemas.microsoft.com/exchange/autodiscover/";
const OUTLOOK_REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
const OUTLOOK_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
const MOBILESYNC_REQUEST_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006";
const MOBILESYNC_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";
const MAX_DEPTH: usize = 16;
const MAX_ELEMENTS: usize = 4096;
const MAX_TEXT: usize = 8 * 1024;

mod step;

#[cfg(test)]
mod tests;
