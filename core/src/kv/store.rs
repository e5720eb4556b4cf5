//! The key-value map itself: deterministic, ordered, versioned, with expiry on log time.
//!
//! # Time
//!
//! The store has no clock. Each applied entry carries its leader's clock (`time_ms`, see
//! [`crate::EntryPayload::Client`]), and [`Store::advance`] moves the store to that time before
//! the entry executes, deleting every key whose expiry has passed. Every replica applies the
//! same entries with the same times, so every replica expires the same keys at the same point of
//! the log. As in Redis, a key expires once the time is *past* its deadline
//! (`expires_at_ms < now_ms`).
//!
//! # Invariants (asserted)
//!
//! - versions never decrease: a key's version is the index of the entry that last wrote it;
//! - time never goes back;
//! - `expiries` holds exactly the `(deadline, key)` of every key with a deadline;
//! - `by_hash` holds every key exactly once, under `scan_hash(key)`: the order `SCAN` walks,
//!   stable under inserts and deletes of other keys, so a cursor stays valid.

use super::digest::Digest;
use crate::types::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A value with its version and its deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Log index of the last write to the key (a change of its deadline counts as a write).
    pub version: LogIndex,
    /// When the key expires, in milliseconds of leader time since the Unix epoch; `None`
    /// persists.
    pub expires_at_ms: Option<u64>,
}

/// What a write does to the key's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    /// Remove any deadline (a plain `SET`).
    Clear,
    /// Keep the current deadline (`KEEPTTL`, `APPEND`, `INCR`, `SETRANGE`).
    Keep,
    /// Expire at this absolute time, milliseconds since the Unix epoch.
    At(u64),
}

/// An ordered map from keys to versioned values. Applying the same commands at the same indexes
/// and times always yields the same map and the same replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    entries: BTreeMap<Vec<u8>, Versioned>,
    expiries: BTreeSet<(u64, Vec<u8>)>,
    /// Keys by scan hash (a hash collision shares one bucket).
    by_hash: BTreeMap<u64, Vec<Vec<u8>>>,
    now_ms: u64,
}

/// A key's position in `SCAN` order: a 64-bit FNV-1a hash, finalised with SplitMix64's mixer,
/// never 0 (cursor 0 means "start" and "done").
#[must_use]
pub fn scan_hash(key: &[u8]) -> u64 {
    let mut hash = Digest::default();
    hash.raw(key);
    hash.finish().max(1)
}

/// SplitMix64's finaliser: a fixed bijection that spreads bits.
#[must_use]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Store {
    /// Folds everything the store holds into `digest`: keys, values, versions, deadlines and
    /// the time of the last applied entry.
    pub(crate) fn digest_into(&self, digest: &mut Digest) {
        digest.number(self.now_ms);
        for (key, versioned) in &self.entries {
            digest.bytes(key);
            digest.bytes(&versioned.value);
            digest.number(versioned.version.0);
            digest.number(versioned.expires_at_ms.map_or(0, |at| at.saturating_add(1)));
        }
    }

    /// Every key with its value, in key order: what a snapshot holds of the store.
    pub(super) fn map(&self) -> &BTreeMap<Vec<u8>, Versioned> {
        &self.entries
    }

    /// The store holding `map` at time `now_ms`, as [`Store::map`] and [`Store::now_ms`] gave
    /// them. Fails, naming the key, on what no store holds: a deadline already past.
    pub(super) fn from_map(
        map: BTreeMap<Vec<u8>, Versioned>,
        now_ms: u64,
    ) -> Result<Store, String> {
        let mut store = Store {
            now_ms,
            ..Store::default()
        };
        for (key, versioned) in map {
            if versioned.expires_at_ms.is_some_and(|at| at < now_ms) {
                return Err(format!(
                    "key {:?} expired at {} ms, before the snapshot's time {now_ms} ms",
                    String::from_utf8_lossy(&key),
                    versioned.expires_at_ms.unwrap_or_default()
                ));
            }
            let deadline = versioned
                .expires_at_ms
                .map_or(Deadline::Clear, Deadline::At);
            store.set(&key, versioned.value, versioned.version, deadline);
        }
        Ok(store)
    }

    /// Moves the store to leader time `now_ms` (never earlier than before) and deletes every
    /// key whose deadline is past. Returns how many keys expired.
    pub fn advance(&mut self, now_ms: u64) -> usize {
        assert!(
            now_ms >= self.now_ms,
            "log time never goes back: {} then {now_ms}",
            self.now_ms
        );
        self.now_ms = now_ms;
        let mut expired = 0;
        while let Some((deadline, _)) = self.expiries.first()
            && *deadline < now_ms
        {
            let (_, key) = self.expiries.pop_first().expect("checked non-empty");
            let removed = self.entries.remove(&key);
            debug_assert!(removed.is_some(), "every deadline belongs to a key");
            self.unindex(&key);
            expired += 1;
        }
        expired
    }

    /// A store holding only `keys` (those present) as they are here, at this store's time:
    /// enough to run a read of those keys, at a later time too ([`Store::advance`] it), without
    /// touching this store.
    #[must_use]
    pub fn excerpt(&self, keys: &[&[u8]]) -> Store {
        let mut excerpt = Store {
            now_ms: self.now_ms,
            ..Store::default()
        };
        for key in keys {
            if let Some(versioned) = self.entries.get(*key) {
                let deadline = versioned
                    .expires_at_ms
                    .map_or(Deadline::Clear, Deadline::At);
                excerpt.set(key, versioned.value.clone(), versioned.version, deadline);
            }
        }
        excerpt
    }

    /// The store's current time: the leader time of the entry being applied.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The current value of `key`, if any.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.entries.get(key)
    }

    /// Writes `value` at `version` with the given deadline. A deadline already past deletes
    /// the key instead (as Redis does for `SET … PXAT` in the past). Returns the old value.
    pub fn set(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        version: LogIndex,
        deadline: Deadline,
    ) -> Option<Versioned> {
        let old_deadline = self.entries.get(key).and_then(|old| old.expires_at_ms);
        let expires_at_ms = match deadline {
            Deadline::Clear => None,
            Deadline::Keep => old_deadline,
            Deadline::At(at) => Some(at),
        };
        if expires_at_ms.is_some_and(|at| at < self.now_ms) {
            return self.remove(key);
        }
        let new = Versioned {
            value,
            version,
            expires_at_ms,
        };
        let previous = match self.entries.get_mut(key) {
            Some(current) => {
                assert!(
                    current.version <= version,
                    "versions must not decrease: {} then {version}",
                    current.version
                );
                Some(std::mem::replace(current, new))
            }
            None => {
                self.entries.insert(key.to_vec(), new);
                // Buckets are kept sorted, so the scan order is a function of the keys alone
                // (a store rebuilt from a snapshot scans exactly as the original).
                let bucket = self.by_hash.entry(scan_hash(key)).or_default();
                let at = bucket
                    .binary_search_by(|k| k.as_slice().cmp(key))
                    .unwrap_err();
                bucket.insert(at, key.to_vec());
                None
            }
        };
        if old_deadline != expires_at_ms {
            if let Some(at) = old_deadline {
                self.expiries.remove(&(at, key.to_vec()));
            }
            if let Some(at) = expires_at_ms {
                self.expiries.insert((at, key.to_vec()));
            }
        }
        previous
    }

    /// Changes the deadline of an existing key (a write at `version`); `false` if absent.
    pub fn set_deadline(&mut self, key: &[u8], version: LogIndex, deadline: Deadline) -> bool {
        match self.entries.get(key) {
            Some(current) => {
                let value = current.value.clone();
                self.set(key, value, version, deadline);
                true
            }
            None => false,
        }
    }

    /// Deletes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Versioned> {
        let removed = self.entries.remove(key)?;
        if let Some(at) = removed.expires_at_ms {
            let had = self.expiries.remove(&(at, key.to_vec()));
            debug_assert!(had, "every deadline is indexed");
        }
        self.unindex(key);
        Some(removed)
    }

    /// Takes `key` out of the scan order.
    fn unindex(&mut self, key: &[u8]) {
        let hash = scan_hash(key);
        let bucket = self
            .by_hash
            .get_mut(&hash)
            .expect("every key is in scan order");
        let position = bucket
            .iter()
            .position(|k| k == key)
            .expect("every key is in scan order");
        bucket.remove(position);
        if bucket.is_empty() {
            self.by_hash.remove(&hash);
        }
    }

    /// Deletes every key; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let count = self.entries.len();
        self.entries.clear();
        self.expiries.clear();
        self.by_hash.clear();
        count
    }

    /// Every key, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.entries.keys()
    }

    /// One `SCAN` step: the keys from `cursor` on in scan order, at least `count` of them
    /// unless the end comes first, always ending at a change of hash (keys that share a hash
    /// are returned together, so the next cursor never splits them). Returns the keys and the
    /// next cursor, 0 at the end.
    #[must_use]
    pub fn scan(&self, cursor: u64, count: usize) -> (Vec<&Vec<u8>>, u64) {
        let mut keys = Vec::new();
        let mut buckets = self.by_hash.range(cursor..).peekable();
        while let Some((_, bucket)) = buckets.next() {
            keys.extend(bucket.iter());
            match buckets.peek() {
                Some((next, _)) if keys.len() >= count.max(1) => return (keys, **next),
                Some(_) => {}
                None => break,
            }
        }
        (keys, 0)
    }

    /// The first key in scan order at or after position `seed`, wrapping around: a
    /// deterministic pick for `RANDOMKEY`.
    #[must_use]
    pub fn key_near(&self, seed: u64) -> Option<&Vec<u8>> {
        self.by_hash
            .range(seed..)
            .next()
            .or_else(|| self.by_hash.iter().next())
            .and_then(|(_, bucket)| bucket.iter().min())
    }

    /// Number of keys present.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_once_time_passes_their_deadline() {
        let mut store = Store::default();
        store.advance(1_000);
        store.set(b"a", b"1".to_vec(), LogIndex(1), Deadline::At(1_500));
        store.set(b"b", b"2".to_vec(), LogIndex(2), Deadline::Clear);
        assert_eq!(
            store.advance(1_500),
            0,
            "expiry is strictly after the deadline"
        );
        assert!(store.get(b"a").is_some());
        assert_eq!(store.advance(1_501), 1);
        assert!(store.get(b"a").is_none());
        assert!(store.get(b"b").is_some());
    }

    #[test]
    fn keep_preserves_and_clear_drops_the_deadline() {
        let mut store = Store::default();
        store.set(b"a", b"1".to_vec(), LogIndex(1), Deadline::At(10));
        store.set(b"a", b"2".to_vec(), LogIndex(2), Deadline::Keep);
        assert_eq!(store.get(b"a").unwrap().expires_at_ms, Some(10));
        store.set(b"a", b"3".to_vec(), LogIndex(3), Deadline::Clear);
        assert_eq!(store.get(b"a").unwrap().expires_at_ms, None);
        assert_eq!(store.advance(100), 0);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_deadline_in_the_past_deletes() {
        let mut store = Store::default();
        store.advance(100);
        store.set(b"a", b"1".to_vec(), LogIndex(1), Deadline::Clear);
        store.set(b"a", b"2".to_vec(), LogIndex(2), Deadline::At(50));
        assert!(store.get(b"a").is_none());
    }

    #[test]
    fn a_full_scan_returns_every_key_present_throughout() {
        let mut store = Store::default();
        for i in 0..100u64 {
            store.set(
                format!("k{i}").as_bytes(),
                vec![],
                LogIndex(i + 1),
                Deadline::Clear,
            );
        }
        let (mut seen, mut cursor, mut index) = (BTreeSet::new(), 0, 200);
        loop {
            let (keys, next) = store.scan(cursor, 7);
            seen.extend(keys.into_iter().cloned());
            // Churn between steps: delete and add keys other than k0..k49.
            index += 1;
            store.remove(format!("k{}", 50 + index % 50).as_bytes());
            store.set(
                format!("new{index}").as_bytes(),
                vec![],
                LogIndex(index),
                Deadline::Clear,
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in 0..50 {
            assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missed");
        }
    }

    #[test]
    #[should_panic(expected = "log time never goes back")]
    fn time_going_back_is_a_broken_invariant() {
        let mut store = Store::default();
        store.advance(10);
        store.advance(9);
    }
}
