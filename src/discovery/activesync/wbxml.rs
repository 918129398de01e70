//! WBXML as Exchange ActiveSync uses it ([MS-ASWBXML]): tags in code pages, inline strings,
//! opaque data, and nothing else ([MS-ASWBXML] 2.1.1: no attributes, entities, processing
//! instructions or extensions; a string table is read, bounded, though no server is known to
//! send one). Only the code pages of the sync check are named: FolderHierarchy (7), Provision
//! (14) and Settings (18); a token of another page decodes as a number.
//!
//! No crate does this for Rust; the codec is small and bounded: depth, elements, string and
//! opaque sizes and the string table all have caps, and input is never trusted. It is run over
//! random and mutated input by `tests::hostile_input_*` and by the fuzz target
//! `fuzz/fuzz_targets/wbxml_decode.rs`.

/// One element: its code page, its token and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The code page.
    pub page: u8,
    /// The tag's token (without the content and attribute bits).
    pub token: u8,
    /// Child elements, text and opaque data, in order.
    pub children: Vec<Node>,
}

/// What an element holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text (an inline string, or a string-table reference).
    Text(String),
    /// Opaque bytes.
    Opaque(Vec<u8>),
}

/// The bounds of one decoding.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Nesting depth at most.
    pub depth: usize,
    /// Elements at most.
    pub elements: usize,
    /// Bytes of one string or one opaque value at most.
    pub value_bytes: usize,
    /// Bytes of the string table at most.
    pub string_table: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            depth: 32,
            elements: 20_000,
            value_bytes: 256 * 1024,
            string_table: 64 * 1024,
        }
    }
}

/// Why a body is not WBXML this codec reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// It ended inside something.
    #[error("truncated")]
    Truncated,
    /// A token ActiveSync does not use (attributes, entities, extensions, literals, PIs).
    #[error("unsupported token 0x{0:02x}")]
    Unsupported(u8),
    /// A bound was crossed.
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// A string is not UTF-8, or the charset is not UTF-8.
    #[error("not utf-8")]
    NotUtf8,
    /// Bytes after the root element, or text outside it.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

const SWITCH_PAGE: u8 = 0x00;
const END: u8 = 0x01;
const STR_I: u8 = 0x03;
const STR_T: u8 = 0x83;
const OPAQUE: u8 = 0xC3;
const HAS_CONTENT: u8 = 0x40;
const HAS_ATTRIBUTES: u8 = 0x80;
/// UTF-8, by its IANA MIBenum.
const UTF8: u32 = 106;

impl Element {
    /// An element without content.
    pub fn new(page: u8, token: u8) -> Self {
        Self {
            page,
            token,
            children: Vec::new(),
        }
    }

    /// This element with `child` appended.
    pub fn with(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// This element with text appended.
    pub fn text_node(mut self, text: &str) -> Self {
        self.children.push(Node::Text(text.to_owned()));
        self
    }

    /// The first child element `(page, token)`.
    pub fn child(&self, page: u8, token: u8) -> Option<&Element> {
        self.elements().find(|e| e.page == page && e.token == token)
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The element's text (its text nodes joined).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The text of the child `(page, token)`.
    pub fn child_text(&self, page: u8, token: u8) -> Option<String> {
        self.child(page, token).map(Element::text)
    }
}

/// Encodes `root` as a WBXML 1.3 document (public id 1, UTF-8, no string table).
pub fn encode(root: &Element) -> Vec<u8> {
    let mut out = vec![0x03, 0x01, 0x6A, 0x00];
    let mut page = 0u8;
    encode_element(root, &mut page, &mut out);
    out
}

fn encode_element(element: &Element, page: &mut u8, out: &mut Vec<u8>) {
    if element.page != *page {
        out.extend([SWITCH_PAGE, element.page]);
        *page = element.page;
    }
    let token = element.token & 0x3F;
    if element.children.is_empty() {
        out.push(token);
        return;
    }
    out.push(token | HAS_CONTENT);
    for child in &element.children {
        match child {
            Node::Element(e) => encode_element(e, page, out),
            Node::Text(text) => {
                out.push(STR_I);
                out.extend(text.bytes().filter(|b| *b != 0));
                out.push(0);
            }
            Node::Opaque(bytes) => {
                out.push(OPAQUE);
                write_mb_u32(bytes.len() as u32, out);
                out.extend(bytes);
            }
        }
    }
    out.push(END);
}

fn write_mb_u32(mut value: u32, out: &mut Vec<u8>) {
    let mut bytes = [0u8; 5];
    let mut at = 4;
    bytes[at] = (value & 0x7F) as u8;
    value >>= 7;
    while value > 0 {
        at -= 1;
        bytes[at] = 0x80 | (value & 0x7F) as u8;
        value >>= 7;
    }
    out.extend(&bytes[at..]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    bounds: Bounds,
    elements: usize,
    string_table: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn mb_u32(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for _ in 0..5 {
            let byte = self.byte()?;
            value = value
                .checked_mul(128)
                .ok_or(DecodeError::TooLarge("integer"))?
                | u32::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::TooLarge("integer"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(len).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn inline_string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.bytes[self.at..];
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated)?;
        if len > self.bounds.value_bytes {
            return Err(DecodeError::TooLarge("string"));
        }
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| DecodeError::NotUtf8)?;
        self.at += len + 1;
        Ok(text.to_owned())
    }

    fn table_string(&mut self) -> Result<String, DecodeError> {
        let offset = self.mb_u32()? as usize;
        let rest = self
            .string_table
            .get(offset..)
            .ok_or(DecodeError::Malformed("string table reference"))?;
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(DecodeError::Truncated)?;
        if len > self.bounds.value_bytes {
            return Err(DecodeError::TooLarge("string"));
        }
        std::str::from_utf8(&rest[..len])
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8)
    }

    /// One element whose tag byte is `tag`, on `page`, at `depth`.
    fn element(&mut self, tag: u8, page: &mut u8, depth: usize) -> Result<Element, DecodeError> {
        if tag & HAS_ATTRIBUTES != 0 {
            return Err(DecodeError::Unsupported(tag));
        }
        if depth > self.bounds.depth {
            return Err(DecodeError::TooLarge("depth"));
        }
        self.elements += 1;
        if self.elements > self.bounds.elements {
            return Err(DecodeError::TooLarge("elements"));
        }
        let mut element = Element::new(*page, tag & 0x3F);
        if tag & HAS_CONTENT == 0 {
            return Ok(element);
        }
        loop {
            let token = self.byte()?;
            match token {
                END => return Ok(element),
                SWITCH_PAGE => *page = self.byte()?,
                STR_I => element.children.push(Node::Text(self.inline_string()?)),
                STR_T => element.children.push(Node::Text(self.table_string()?)),
                OPAQUE => {
                    let len = self.mb_u32()? as usize;
                    if len > self.bounds.value_bytes {
                        return Err(DecodeError::TooLarge("opaque"));
                    }
                    element
                        .children
                        .push(Node::Opaque(self.take(len)?.to_vec()));
                }
                // Global tokens ActiveSync does not use: entities, literals, extensions, PIs.
                0x02 | 0x04 | 0x40..=0x44 | 0x80..=0x82 | 0x84 | 0xC0..=0xC2 | 0xC4 => {
                    return Err(DecodeError::Unsupported(token));
                }
                tag => {
                    let child = self.element(tag, page, depth + 1)?;
                    element.children.push(Node::Element(child));
                }
            }
        }
    }
}

/// Decodes a WBXML document within `bounds`.
pub fn decode(bytes: &[u8], bounds: Bounds) -> Result<Element, DecodeError> {
    let mut reader = Reader {
        bytes,
        at: 0,
        bounds,
        elements: 0,
        string_table: &[],
    };
    let _version = reader.byte()?;
    if reader.mb_u32()? == 0 {
        // The public id is a string-table index.
        reader.mb_u32()?;
    }
    if reader.mb_u32()? != UTF8 {
        return Err(DecodeError::NotUtf8);
    }
    let table_len = reader.mb_u32()? as usize;
    if table_len > bounds.string_table {
        return Err(DecodeError::TooLarge("string table"));
    }
    reader.string_table = reader.take(table_len)?;
    let mut page = 0u8;
    let root = loop {
        match reader.byte()? {
            SWITCH_PAGE => page = reader.byte()?,
            tag if tag & 0x3F >= 0x05 => break reader.element(tag, &mut page, 1)?,
            _ => return Err(DecodeError::Malformed("no root element")),
        }
    };
    if reader.at != bytes.len() {
        return Err(DecodeError::Malformed("bytes after the root element"));
    }
    Ok(root)
}

/// Code page 7: FolderHierarchy ([MS-ASWBXML] 2.1.2.1.8).
pub mod folder {
    /// The code page.
    pub const PAGE: u8 = 7;
    /// `DisplayName`.
    pub const DISPLAY_NAME: u8 = 0x07;
    /// `ServerId`.
    pub const SERVER_ID: u8 = 0x08;
    /// `ParentId`.
    pub const PARENT_ID: u8 = 0x09;
    /// `Type`.
    pub const TYPE: u8 = 0x0A;
    /// `Status`.
    pub const STATUS: u8 = 0x0C;
    /// `Changes`.
    pub const CHANGES: u8 = 0x0E;
    /// `Add`.
    pub const ADD: u8 = 0x0F;
    /// `SyncKey`.
    pub const SYNC_KEY: u8 = 0x12;
    /// `FolderSync`.
    pub const FOLDER_SYNC: u8 = 0x16;
    /// `Count`.
    pub const COUNT: u8 = 0x17;
}

/// Code page 14: Provision ([MS-ASWBXML] 2.1.2.1.15).
pub mod provision {
    /// The code page.
    pub const PAGE: u8 = 14;
    /// `Provision`.
    pub const PROVISION: u8 = 0x05;
    /// `Policies`.
    pub const POLICIES: u8 = 0x06;
    /// `Policy`.
    pub const POLICY: u8 = 0x07;
    /// `PolicyType`.
    pub const POLICY_TYPE: u8 = 0x08;
    /// `PolicyKey`.
    pub const POLICY_KEY: u8 = 0x09;
    /// `Data`.
    pub const DATA: u8 = 0x0A;
    /// `Status`.
    pub const STATUS: u8 = 0x0B;
    /// `RemoteWipe`.
    pub const REMOTE_WIPE: u8 = 0x0C;
}

/// Code page 18: Settings ([MS-ASWBXML] 2.1.2.1.19), for `DeviceInformation`.
pub mod settings {
    /// The code page.
    pub const PAGE: u8 = 18;
    /// `Set`.
    pub const SET: u8 = 0x08;
    /// `DeviceInformation`.
    pub const DEVICE_INFORMATION: u8 = 0x16;
    /// `Model`.
    pub const MODEL: u8 = 0x17;
    /// `FriendlyName`.
    pub const FRIENDLY_NAME: u8 = 0x19;
    /// `OS`.
    pub const OS: u8 = 0x1A;
    /// `UserAgent`.
    pub const USER_AGENT: u8 = 0x20;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(http: &[u8]) -> &[u8] {
        let at = http.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &http[at + 4..]
    }

    #[test]
    fn a_foldersync_request_is_the_documented_bytes() {
        // [MS-ASWBXML]-encoded FolderSync with SyncKey 0, as Horde's probe sent it
        // (../shared/real-servers/horde/samples/requests/foldersync.wbxml).
        let request = Element::new(folder::PAGE, folder::FOLDER_SYNC)
            .with(Element::new(folder::PAGE, folder::SYNC_KEY).text_node("0"));
        assert_eq!(
            encode(&request),
            [
                0x03, 0x01, 0x6A, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, 0x30, 0x00, 0x01, 0x01
            ]
        );
        assert_eq!(
            decode(&encode(&request), Bounds::default()).unwrap(),
            request
        );
    }

    #[test]
    fn horde_answers_decode() {
        let folders = decode(
            body_of(include_bytes!(
                "../../../fixtures/horde/foldersync-200.http"
            )),
            Bounds::default(),
        )
        .unwrap();
        assert_eq!(
            (folders.page, folders.token),
            (folder::PAGE, folder::FOLDER_SYNC)
        );
        assert_eq!(
            folders.child_text(folder::PAGE, folder::STATUS).as_deref(),
            Some("1")
        );
        let changes = folders.child(folder::PAGE, folder::CHANGES).unwrap();
        assert_eq!(
            changes.child_text(folder::PAGE, folder::COUNT).as_deref(),
            Some("6")
        );
        let names: Vec<String> = changes
            .elements()
            .filter(|e| e.token == folder::ADD)
            .filter_map(|e| e.child_text(folder::PAGE, folder::DISPLAY_NAME))
            .collect();
        assert_eq!(
            names,
            ["Outbox", "Sent", "Junk", "Drafts", "Inbox", "Trash"]
        );
        let provision = decode(
            body_of(include_bytes!("../../../fixtures/horde/provision-200.http")),
            Bounds::default(),
        )
        .unwrap();
        let policy = provision
            .child(provision::PAGE, provision::POLICIES)
            .and_then(|p| p.child(provision::PAGE, provision::POLICY))
            .unwrap();
        assert_eq!(
            policy
                .child_text(provision::PAGE, provision::STATUS)
                .as_deref(),
            Some("2")
        );
    }

    #[test]
    fn hostile_input_is_refused_within_bounds() {
        // Deep nesting.
        let mut deep = vec![0x03, 0x01, 0x6A, 0x00];
        deep.extend(std::iter::repeat_n(0x45, 10_000));
        assert_eq!(
            decode(&deep, Bounds::default()),
            Err(DecodeError::TooLarge("depth"))
        );
        // An opaque length past the end, a huge integer, attributes, a string table past its cap.
        for bytes in [
            &[0x03, 0x01, 0x6A, 0x00, 0x45, 0xC3, 0x8F, 0xFF, 0xFF, 0x7F][..],
            &[0x03, 0x01, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..],
            &[0x03, 0x01, 0x6A, 0x00, 0xC5, 0x01][..],
            &[0x03, 0x01, 0x6A, 0x84, 0x80, 0x80, 0x00][..],
            &[0x03, 0x01, 0x6A, 0x00, 0x45, 0x83, 0x05, 0x01][..],
            &[0x03, 0x01, 0x6A, 0x00, 0x45, 0x01, 0x45, 0x01][..],
        ] {
            assert!(decode(bytes, Bounds::default()).is_err(), "{bytes:02x?}");
        }
    }

    #[test]
    fn hostile_input_random_and_mutated_never_panics() {
        // What the fuzz target does, a fixed number of times with a fixed seed, in every run.
        let seeds = [
            body_of(include_bytes!(
                "../../../fixtures/horde/foldersync-200.http"
            ))
            .to_vec(),
            body_of(include_bytes!("../../../fixtures/horde/provision-200.http")).to_vec(),
        ];
        let mut rng = fastrand::Rng::with_seed(0x5742_584d);
        for round in 0..20_000 {
            let mut bytes = if round % 4 == 0 {
                (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect()
            } else {
                seeds[round % 2].clone()
            };
            for _ in 0..rng.usize(1..6) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.usize(..bytes.len());
                match rng.u8(..3) {
                    0 => bytes[at] = rng.u8(..),
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, rng.u8(..)),
                }
            }
            let _ = decode(&bytes, Bounds::default());
        }
    }
}
