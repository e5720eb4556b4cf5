//! `cargo +nightly fuzz run resp_parse`: see `verity_engine::resp::fuzz_parse` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_engine::resp::fuzz_parse(data));
