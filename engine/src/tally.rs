//! How many replies each command got, and how many of them were errors: the node's
//! per-command figures for metrics. A connection keeps a [`Tally`] as it writes replies; the
//! host takes it ([`crate::Connection::take_tally`]) and adds it to the node's.
//!
//! Commands are named by their canonical spec name (`get`, `set`, …), so a client cannot
//! grow the set of names: anything unknown counts as `unknown`, and a malformed request that
//! never became a command as `(protocol)`.

use crate::command::all_specs;
use std::collections::BTreeMap;

/// The name of replies to requests that were not commands (protocol errors).
pub const PROTOCOL: &str = "(protocol)";

/// The name of replies to commands this server does not know.
pub const UNKNOWN: &str = "unknown";

/// Replies and error replies per command name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    counts: BTreeMap<&'static str, Counts>,
}

/// One command's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Replies written.
    pub replies: u64,
    /// Of those, error replies.
    pub errors: u64,
}

impl Tally {
    /// The name `word` (a request's first word, any case) is counted under.
    #[must_use]
    pub fn name_of(word: &[u8]) -> &'static str {
        all_specs()
            .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(word))
            .map_or(UNKNOWN, |spec| spec.name)
    }

    /// Counts one reply to `command`.
    pub fn record(&mut self, command: &'static str, error: bool) {
        let counts = self.counts.entry(command).or_default();
        counts.replies += 1;
        counts.errors += u64::from(error);
    }

    /// Adds `other`'s figures to these.
    pub fn add(&mut self, other: &Tally) {
        for (name, counts) in &other.counts {
            let mine = self.counts.entry(name).or_default();
            mine.replies += counts.replies;
            mine.errors += counts.errors;
        }
    }

    /// Whether nothing was counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Every command's figures, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Counts)> + '_ {
        self.counts.iter().map(|(&name, &counts)| (name, counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_named_by_their_spec_and_strangers_share_one_name() {
        assert_eq!(Tally::name_of(b"SeT"), "set");
        assert_eq!(Tally::name_of(b"get"), "get");
        assert_eq!(Tally::name_of(b"NOSUCHCOMMAND"), UNKNOWN);
        assert_eq!(Tally::name_of(&[0xff, 0xfe]), UNKNOWN);
    }

    #[test]
    fn figures_add_up() {
        let mut a = Tally::default();
        a.record("set", false);
        a.record("set", true);
        let mut b = Tally::default();
        b.record("set", false);
        b.record("get", false);
        b.add(&a);
        let figures: Vec<_> = b.iter().collect();
        assert_eq!(
            figures,
            vec![
                (
                    "get",
                    Counts {
                        replies: 1,
                        errors: 0
                    }
                ),
                (
                    "set",
                    Counts {
                        replies: 3,
                        errors: 1
                    }
                )
            ]
        );
    }
}
