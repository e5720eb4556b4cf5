//! `cargo +nightly fuzz run history_check`: see `verity_sim::fuzzing::history_check` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_sim::fuzzing::history_check(data));
