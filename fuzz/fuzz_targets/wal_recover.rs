//! `cargo +nightly fuzz run wal_recover`: see `verity_core::fuzzing::wal_recover` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_core::fuzzing::wal_recover(data));
