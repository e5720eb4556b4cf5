//! `cargo +nightly fuzz run scenario_parse`: see `verity_sim::fuzzing::scenario_parse` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_sim::fuzzing::scenario_parse(data));
