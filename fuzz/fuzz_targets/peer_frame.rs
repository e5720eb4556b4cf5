//! `cargo +nightly fuzz run peer_frame`: see `verity_engine::envelope::fuzz_peer_frame` for what it promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| verity_engine::envelope::fuzz_peer_frame(data));
