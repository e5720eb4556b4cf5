//! `cargo +nightly fuzz run snapshot_image`: see `verity_core::fuzzing::snapshot_image` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_core::fuzzing::snapshot_image(data));
