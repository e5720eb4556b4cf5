//! The Wing–Gong / Lowe search for a linearization of one key's (or key group's) operations, with Porcupine's
//! memoization of `(set of linearized operations, state)`.
//!
//! The history is a list of call and return entries in real-time order. The search walks it:
//! at a call it tries to linearize that operation now (the model must accept it, and the
//! resulting configuration must be new); at a return whose call is still pending it has hit a
//! dead end and backtracks. A history is linearizable when every entry has been lifted.
//! Operations with unknown outcome (`info`) return at infinity, so they may take effect at any
//! point after their call, including after everything else (which is the same as never).
//!
//! Operations that carry the connection that sent them (the simulator's do) must also take
//! effect in the order their connection sent them: a definite operation is placed only after
//! its connection's previous definite operation on the key (or group). The system promises that order,
//! and using it keeps pipelined histories (dozens of operations in flight per key) tractable.
//!
//! Info operations are what make histories hard: each stays concurrent with everything after
//! it, so `k` of them can multiply the configurations by `2^k`. The cache therefore uses
//! dominance, not only equality. A configuration is the set of definite (ok or fail) operations
//! linearized, the set of info operations linearized, and the state. Configuration `(D, I, s)`
//! dominates `(D, I', s)` whenever `I ⊆ I'`: any way to finish from the latter also finishes from
//! the former, followed by the info operations of `I' \ I` linearized last, where an info
//! operation is always allowed and changes nothing anyone observes. A configuration dominated
//! by one already reached is pruned; as every reached configuration either failed or is an
//! ancestor still being explored, nothing that could succeed is lost. This needs the search
//! to succeed as soon as every definite operation is placed: otherwise every completion would
//! end by placing leftover info operations, and each such step reaches a configuration that its
//! own parent dominates.

use super::model::{FixedState, StateId, States};
use crate::history::Operation;
use std::collections::HashMap;

const NIL: usize = usize::MAX;

/// Reached configurations: per (definite operations done, state), the minimal sets of info
/// operations done with which it was reached. The definite set is represented by its 128-bit
/// Zobrist hash (a collision needs about 2^64 configurations), the info set explicitly, since
/// dominance compares info sets by inclusion.
type Cache = HashMap<(u128, StateId), Vec<Box<[u64]>>, FixedState>;

/// The set of operations linearized so far, in the two halves the cache needs.
struct Done {
    /// Zobrist hash of the definite operations done.
    definite_hash: u128,
    /// One random key per definite operation.
    keys: Vec<u128>,
    /// Bit set of the info operations done.
    info: Vec<u64>,
}

impl Done {
    fn new(definite: usize, info: usize) -> Done {
        // SplitMix64: a fixed, platform-independent sequence of keys.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Done {
            definite_hash: 0,
            keys: (0..definite)
                .map(|_| (u128::from(next()) << 64) | u128::from(next()))
                .collect(),
            info: vec![0; info.div_ceil(64)],
        }
    }

    /// Adds or removes operation `slot`.
    fn toggle(&mut self, (is_info, index): (bool, usize)) {
        if is_info {
            self.info[index / 64] ^= 1 << (index % 64);
        } else {
            self.definite_hash ^= self.keys[index];
        }
    }
}

/// Records the configuration; false if it is dominated by one reached before.
fn remember(cache: &mut Cache, done: &Done, state: StateId) -> bool {
    let subset = |small: &[u64], big: &[u64]| small.iter().zip(big).all(|(s, b)| s & !b == 0);
    let info = done.info.as_slice();
    let seen = cache.entry((done.definite_hash, state)).or_default();
    if seen.iter().any(|known| subset(known, info)) {
        return false;
    }
    seen.retain(|known| !subset(info, known));
    seen.push(info.into());
    true
}

/// When to give up.
pub struct Budget<'a> {
    /// Search steps left (one step is one entry visited).
    pub steps_left: u64,
    /// Asked every few thousand steps; `true` stops the search (used for wall-clock limits by
    /// the command line, which may read a clock; the library never does).
    pub should_stop: Option<&'a dyn Fn() -> bool>,
}

impl Budget<'_> {
    /// A budget of `steps` steps and no other limit.
    #[must_use]
    pub fn steps(steps: u64) -> Budget<'static> {
        Budget {
            steps_left: steps,
            should_stop: None,
        }
    }

    fn spend(&mut self) -> bool {
        if self.steps_left == 0 {
            return false;
        }
        self.steps_left -= 1;
        if self.steps_left.is_multiple_of(4096) && self.should_stop.is_some_and(|stop| stop()) {
            self.steps_left = 0;
            return false;
        }
        true
    }
}

/// The outcome of searching one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// A linearization exists.
    Linearizable,
    /// None exists. `longest` is the longest sequence of operations (indexes into the input)
    /// that could be linearized before the search ran out of options.
    NotLinearizable {
        /// The longest linearizable sequence found.
        longest: Vec<usize>,
    },
    /// The budget ran out first.
    Undecided,
}

/// One configuration on the search path: the operations it may place next, and how far
/// through them it has got.
struct Frame {
    /// Call entries that may be linearized next: definite operations first, then info ones,
    /// so that configurations with fewer info operations are reached first and dominate.
    candidates: Vec<usize>,
    tried: usize,
    /// The call entry placed to reach this configuration, and the state before it.
    placed: Option<(usize, StateId)>,
}

/// Searches for a linearization of `ops` (on one group of keys, see [`super::model`]),
/// starting from the state where every key is absent.
pub fn search(ops: &[&Operation], budget: &mut Budget<'_>) -> Search {
    let n = ops.len();
    // Entries: 2i is op i's call, 2i+1 its return; `head` is a sentinel before the first.
    let head = 2 * n;
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke_position, 2 * i));
        order.push((op.complete_position.unwrap_or(usize::MAX), 2 * i + 1));
    }
    order.sort_unstable();
    let mut list = List::new(2 * n + 1, head);
    let mut last = head;
    for &(_, entry) in &order {
        list.link_after(last, entry);
        last = entry;
    }

    // Definite and info operations are numbered separately, for the two halves of the key.
    let mut slot = Vec::with_capacity(n);
    let (mut definite, mut info) = (0usize, 0usize);
    for op in ops {
        if op.complete_position.is_some() {
            slot.push((false, definite));
            definite += 1;
        } else {
            slot.push((true, info));
            info += 1;
        }
    }
    let is_info = |entry: usize| slot[entry / 2].0;
    // Each definite operation's predecessor on its connection (on this key): it may only be
    // linearized once that one is. Info operations are left unconstrained (they may take
    // effect never), which only loosens the check.
    let mut predecessor = vec![None; n];
    let mut last_on_connection: std::collections::BTreeMap<u64, usize> = Default::default();
    let mut by_invocation: Vec<usize> = (0..n).collect();
    by_invocation.sort_by_key(|&i| ops[i].invoke_position);
    for i in by_invocation {
        if let (Some(connection), false) = (ops[i].connection, slot[i].0) {
            predecessor[i] = last_on_connection.insert(connection, i);
        }
    }
    let mut placed = vec![false; n];
    let mut keys: Vec<String> = ops
        .iter()
        .flat_map(|op| op.keys())
        .map(str::to_string)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (mut states, mut state) = States::new(keys);
    let mut done = Done::new(definite, info);
    let mut cache: Cache = HashMap::default();
    let mut longest: Vec<usize> = Vec::new();
    // Success once every definite operation is placed: the info operations left over can all
    // take effect at the end (or never), which no one observes.
    let mut definite_left = definite;
    let mut path = vec![Frame {
        candidates: list.candidates(is_info),
        tried: 0,
        placed: None,
    }];
    while definite_left > 0 {
        if !budget.spend() {
            return Search::Undecided;
        }
        let frame = path.last_mut().expect("the root frame is never popped");
        if let Some(&call) = frame.candidates.get(frame.tried) {
            frame.tried += 1;
            let op = call / 2;
            if predecessor[op].is_some_and(|before| !placed[before]) {
                continue;
            }
            let Some(after) = states.step(state, ops[op]) else {
                continue;
            };
            done.toggle(slot[op]);
            if !remember(&mut cache, &done, after) {
                done.toggle(slot[op]);
                continue;
            }
            definite_left -= usize::from(!slot[op].0);
            placed[op] = true;
            list.unlink(call);
            list.unlink(call + 1);
            path.push(Frame {
                candidates: list.candidates(is_info),
                tried: 0,
                placed: Some((call, state)),
            });
            state = after;
            continue;
        }
        // Only a failed search reports the longest prefix, so it is copied when a path longer
        // than any before starts to unwind, not every time one grows.
        if path.len() > longest.len() + 1 {
            longest = path
                .iter()
                .filter_map(|f| f.placed)
                .map(|(call, _)| call / 2)
                .collect();
        }
        let Some((call, before)) = path.pop().and_then(|frame| frame.placed) else {
            return Search::NotLinearizable { longest };
        };
        let op = call / 2;
        done.toggle(slot[op]);
        placed[op] = false;
        definite_left += usize::from(!slot[op].0);
        state = before;
        list.relink(call + 1);
        list.relink(call);
    }
    Search::Linearizable
}

/// The doubly linked list of call and return entries not yet linearized, in real-time order,
/// with Knuth's dancing-links removal and restoration (restorations in reverse order).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl List {
    fn new(size: usize, head: usize) -> List {
        List {
            next: vec![NIL; size],
            prev: vec![NIL; size],
            head,
        }
    }

    fn link_after(&mut self, at: usize, entry: usize) {
        self.next[at] = entry;
        self.prev[entry] = at;
    }

    fn unlink(&mut self, x: usize) {
        let (prev, next) = (self.prev[x], self.next[x]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, x: usize) {
        let (prev, next) = (self.prev[x], self.next[x]);
        self.next[prev] = x;
        if next != NIL {
            self.prev[next] = x;
        }
    }

    /// The calls before the first return: the operations that may be linearized next.
    /// Definite operations come first.
    fn candidates(&self, is_info: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut calls = Vec::new();
        let mut entry = self.next[self.head];
        while entry != NIL && entry.is_multiple_of(2) {
            calls.push(entry);
            entry = self.next[entry];
        }
        calls.sort_by_key(|&call| is_info(call));
        calls
    }
}
