//! The Autodiscover (POX) parser: any body is an answer or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = exdisco::discovery::pox::parse_answer(bytes);
});
