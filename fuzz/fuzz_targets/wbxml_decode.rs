//! The WBXML decoder of the sync check must refuse, never panic or grow, on any input; what it
//! accepts must encode back to a document it decodes the same.
#![no_main]

use exdisco::discovery::activesync::wbxml::{Bounds, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(root) = decode(bytes, Bounds::default()) {
        let again = decode(&encode(&root), Bounds::default()).expect("our own encoding decodes");
        assert_eq!(again.page, root.page);
        assert_eq!(again.token, root.token);
    }
});
