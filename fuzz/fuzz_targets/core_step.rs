//! `cargo +nightly fuzz run core_step`: see `verity_core::fuzzing::core_step` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_core::fuzzing::core_step(data));
