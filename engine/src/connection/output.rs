//! A connection's reply bytes between the state machine and the client's socket, and the
//! limit that disconnects a client who lets them pile up (Redis's
//! `client-output-buffer-limit` for normal clients).
//!
//! Bytes are *buffered* from the moment a reply is encoded until the host reports them
//! written to the socket: those the host has not taken yet, plus those it took
//! ([`Connection::take_output`](super::Connection::take_output)) and says are still unwritten
//! ([`Connection::report_unwritten`](super::Connection::report_unwritten)). Reading pauses once [`READ_PAUSE_BYTES`] are
//! buffered, so a client that pipelines without reading is slowed by TCP; the limit catches
//! what reading cannot stop: replies to commands already in flight (up to the pipeline depth
//! of `MGET`s of up to 64 values each).

/// Buffered reply bytes at which the connection stops reading new commands until the client
/// reads what it was sent.
pub const READ_PAUSE_BYTES: u64 = 1 << 20;

/// When a client is disconnected for not reading its replies: with more than `hard_bytes`
/// buffered at once, or more than `soft_bytes` for `soft_ms` in a row. A zero byte count
/// switches that rule off; [`OutputLimit::default`] switches both off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputLimit {
    /// Buffered bytes that disconnect at once (0: none).
    pub hard_bytes: u64,
    /// Buffered bytes that disconnect after `soft_ms` (0: none).
    pub soft_bytes: u64,
    /// How long the buffer may stay over `soft_bytes`.
    pub soft_ms: u64,
}

/// The reply bytes of one connection and their accounting. See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Output {
    /// Encoded replies the host has not taken.
    bytes: Vec<u8>,
    /// Bytes the host took and has not written, as it last reported.
    unwritten: u64,
    /// Since when more than the soft limit has been buffered.
    over_soft_since_ms: Option<u64>,
    /// Whether the limit was passed: the connection is dropped, its replies discarded.
    overflowed: bool,
}

impl Output {
    /// Where replies are encoded.
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The replies encoded since the last call, for the host to write.
    pub(super) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// The host has `bytes` of what it took still to write.
    pub(super) fn report_unwritten(&mut self, bytes: u64) {
        self.unwritten = bytes;
    }

    /// Reply bytes not yet written to the client.
    pub(super) fn buffered(&self) -> u64 {
        self.bytes.len() as u64 + self.unwritten
    }

    /// Whether reading should pause until the client reads.
    pub(super) fn wants_pause(&self) -> bool {
        self.buffered() >= READ_PAUSE_BYTES
    }

    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Applies `limit` at `now_ms`; returns whether the client is now over it (then the
    /// buffered bytes are discarded: nothing more is written to this client).
    pub(super) fn enforce(&mut self, limit: OutputLimit, now_ms: u64) -> bool {
        let buffered = self.buffered();
        let over_soft = limit.soft_bytes > 0 && buffered > limit.soft_bytes;
        if !over_soft {
            self.over_soft_since_ms = None;
        }
        let since = over_soft.then(|| *self.over_soft_since_ms.get_or_insert(now_ms));
        let soft_expired = since.is_some_and(|since| now_ms.saturating_sub(since) >= limit.soft_ms);
        if (limit.hard_bytes > 0 && buffered > limit.hard_bytes) || soft_expired {
            self.overflowed = true;
            self.bytes = Vec::new();
        }
        self.overflowed
    }

    /// When the soft limit disconnects the client if nothing is written before then.
    pub(super) fn deadline_ms(&self, limit: OutputLimit) -> Option<u64> {
        self.over_soft_since_ms
            .map(|since| since.saturating_add(limit.soft_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: OutputLimit = OutputLimit {
        hard_bytes: 100,
        soft_bytes: 40,
        soft_ms: 1_000,
    };

    #[test]
    fn the_hard_limit_disconnects_at_once_counting_what_the_host_has_not_written() {
        let mut output = Output::default();
        output.buffer().extend_from_slice(&[b'x'; 60]);
        let taken = output.take();
        output.report_unwritten(taken.len() as u64);
        output.buffer().extend_from_slice(&[b'y'; 40]);
        assert_eq!(output.buffered(), 100);
        assert!(!output.enforce(LIMIT, 0));
        output.buffer().push(b'z');
        assert!(output.enforce(LIMIT, 0));
        assert!(
            output.take().is_empty(),
            "an overflowed client is sent nothing more"
        );
    }

    #[test]
    fn the_soft_limit_disconnects_only_after_its_time_over_it_in_a_row() {
        let mut output = Output::default();
        output.report_unwritten(50);
        assert!(!output.enforce(LIMIT, 0));
        assert_eq!(output.deadline_ms(LIMIT), Some(1_000));
        assert!(!output.enforce(LIMIT, 999));
        output.report_unwritten(10);
        assert!(
            !output.enforce(LIMIT, 1_500),
            "below the soft limit the clock restarts"
        );
        assert_eq!(output.deadline_ms(LIMIT), None);
        output.report_unwritten(41);
        assert!(!output.enforce(LIMIT, 2_000));
        assert!(output.enforce(LIMIT, 3_000));
    }

    #[test]
    fn no_limit_never_disconnects() {
        let mut output = Output::default();
        output.report_unwritten(u64::MAX / 2);
        assert!(!output.enforce(OutputLimit::default(), u64::MAX));
        assert!(output.wants_pause());
    }
}
