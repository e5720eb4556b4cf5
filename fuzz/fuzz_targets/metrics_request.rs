//! `cargo +nightly fuzz run metrics_request`: see `verity_node::http::fuzz_request` for what it
//! promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_node::http::fuzz_request(data));
