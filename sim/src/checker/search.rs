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
//!
//! In a group of one key, the reads still to come also prune and merge states (see
//! [`Searcher::judge`]): a state that the next read cannot extend to is dropped when only
//! appends may come first, and a state no read can see before an overwrite merges with every
//! other such state.
//!
//! A [`Searcher`] pauses when its budget runs out and resumes when given more, so a history's
//! keys can take turns.

use super::model::{FixedState, StateId, States};
use crate::history::{OpKind, OpOutcome, Operation};
use std::collections::HashMap;

const NIL: usize = usize::MAX;

/// The state of a one-key group whose value no read can see before it is overwritten (see
/// [`Searcher::judge`]); never an interned state.
const DOOMED: StateId = StateId::MAX;

/// Reached configurations: per (definite operations done, state), the minimal sets of info
/// operations done with which it was reached. The pair is represented by one 128-bit hash
/// (the definite set's Zobrist hash mixed with the state's; a collision needs about 2^64
/// configurations), the info sets explicitly, since dominance compares them by inclusion.
/// About 50 bytes a configuration when there is one minimal info set, as there always is
/// in a group without info operations.
type Cache = HashMap<u128, Minimal, FixedState>;

/// The minimal info sets of one configuration.
enum Minimal {
    /// One set: no allocation beyond the set itself (none for an empty set).
    One(Box<[u64]>),
    /// Several sets, none a subset of another.
    Several(Vec<Box<[u64]>>),
}

/// SplitMix64's output function: a fixed, platform-independent mix of `x`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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
            mix(x)
        };
        Done {
            definite_hash: 0,
            keys: (0..definite)
                .map(|_| (u128::from(next()) << 64) | u128::from(next()))
                .collect(),
            info: vec![0; info.div_ceil(64)],
        }
    }

    /// The hash of the definite operations done and `state`.
    fn key(&self, state: StateId) -> u128 {
        let state = u64::from(state);
        let state =
            (u128::from(mix(state ^ 0x5851_F42D_4C95_7F2D)) << 64) | u128::from(mix(!state));
        self.definite_hash ^ state
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
    let entry = match cache.entry(done.key(state)) {
        std::collections::hash_map::Entry::Vacant(vacant) => {
            vacant.insert(Minimal::One(info.into()));
            return true;
        }
        std::collections::hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
    };
    match entry {
        Minimal::One(known) if subset(known, info) => false,
        Minimal::One(known) if subset(info, known) => {
            *known = info.into();
            true
        }
        Minimal::One(known) => {
            *entry = Minimal::Several(vec![std::mem::take(known), info.into()]);
            true
        }
        Minimal::Several(sets) => {
            if sets.iter().any(|known| subset(known, info)) {
                return false;
            }
            sets.retain(|known| !subset(info, known));
            sets.push(info.into());
            true
        }
    }
}

/// When to give up.
pub struct Budget<'a> {
    /// Search steps left (one step is one entry visited).
    steps_left: u64,
    /// Asked every few thousand steps; `true` stops the search (used for wall-clock limits by
    /// the command line, which may read a clock; the library never does).
    should_stop: Option<&'a dyn Fn() -> bool>,
    /// `should_stop` said so: the budget stays empty.
    stopped: bool,
}

impl<'a> Budget<'a> {
    /// A budget of `steps` steps and no other limit.
    #[must_use]
    pub fn steps(steps: u64) -> Budget<'static> {
        Budget {
            steps_left: steps,
            should_stop: None,
            stopped: false,
        }
    }

    /// A budget of `steps` steps that also ends when `stop` returns true (asked every few
    /// thousand steps).
    #[must_use]
    pub fn until(steps: u64, stop: &'a dyn Fn() -> bool) -> Budget<'a> {
        Budget {
            steps_left: steps,
            should_stop: Some(stop),
            stopped: false,
        }
    }

    /// Whether nothing is left.
    #[must_use]
    pub fn is_spent(&self) -> bool {
        self.steps_left == 0
    }

    /// Takes up to `steps` of this budget into a budget of its own, with the same stop
    /// condition; [`Budget::give_back`] returns what it did not spend.
    pub(crate) fn take(&mut self, steps: u64) -> Budget<'a> {
        let steps = steps.min(self.steps_left);
        self.steps_left -= steps;
        Budget {
            steps_left: steps,
            should_stop: self.should_stop,
            stopped: false,
        }
    }

    /// Returns the unspent part of a budget made by [`Budget::take`]. If the stop condition
    /// fired in it, this budget is spent too.
    pub(crate) fn give_back(&mut self, part: Budget<'_>) {
        if part.stopped {
            self.steps_left = 0;
            self.stopped = true;
        } else {
            self.steps_left += part.steps_left;
        }
    }

    fn spend(&mut self) -> bool {
        if self.steps_left == 0 {
            return false;
        }
        self.steps_left -= 1;
        if self.steps_left.is_multiple_of(4096) && self.should_stop.is_some_and(|stop| stop()) {
            self.steps_left = 0;
            self.stopped = true;
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

/// Searches for a linearization of `ops` (on one group of keys, see the checker's model),
/// starting from the state where every key is absent.
pub fn search(ops: &[&Operation], budget: &mut Budget<'_>) -> Search {
    Searcher::new(ops).run(budget).unwrap_or(Search::Undecided)
}

/// A search that can be paused when its budget runs out and resumed with more, so that the
/// checker can interleave the keys of a history instead of letting one hard key starve the
/// rest.
pub struct Searcher<'a> {
    ops: Vec<&'a Operation>,
    list: List,
    /// Per operation: whether it is info, and its number among the definite or info ones.
    slot: Vec<(bool, usize)>,
    /// Each definite operation's predecessor on its connection (on this key or group).
    predecessor: Vec<Option<usize>>,
    placed: Vec<bool>,
    states: States,
    state: StateId,
    done: Done,
    cache: Cache,
    longest: Vec<usize>,
    definite_left: usize,
    path: Vec<Frame>,
    /// The group has one key, so the next reads' values can prune (see [`Searcher::judge`]).
    lookahead: bool,
    /// Values that no read can see again may merge into [`DOOMED`] (see [`Searcher::judge`]).
    doomable: bool,
    /// The state where the group's key is absent.
    absent: StateId,
}

impl<'a> Searcher<'a> {
    /// Prepares the search of `ops`; nothing is searched until [`Searcher::run`].
    #[must_use]
    pub fn new(ops: &[&'a Operation]) -> Searcher<'a> {
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
        // Info operations are left unconstrained by their connection (they may take effect
        // never), which only loosens the check.
        let mut predecessor = vec![None; n];
        let mut last_on_connection: std::collections::BTreeMap<u64, usize> = Default::default();
        let mut by_invocation: Vec<usize> = (0..n).collect();
        by_invocation.sort_by_key(|&i| ops[i].invoke_position);
        for i in by_invocation {
            if let (Some(connection), false) = (ops[i].connection, slot[i].0) {
                predecessor[i] = last_on_connection.insert(connection, i);
            }
        }
        let mut keys: Vec<String> = ops
            .iter()
            .flat_map(|op| op.keys())
            .map(str::to_string)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let lookahead = keys.len() == 1;
        let doomable = lookahead
            && ops.iter().all(|op| {
                matches!(
                    op.kind,
                    OpKind::Get | OpKind::Put(_) | OpKind::Append(_) | OpKind::Delete
                )
            });
        let (states, state) = States::new(keys);
        let path = vec![Frame {
            candidates: list.candidates(|entry| slot[entry / 2].0),
            tried: 0,
            placed: None,
        }];
        Searcher {
            ops: ops.to_vec(),
            list,
            slot,
            predecessor,
            placed: vec![false; n],
            states,
            state,
            done: Done::new(definite, info),
            cache: HashMap::default(),
            longest: Vec::new(),
            // Success once every definite operation is placed: the info operations left over
            // can all take effect at the end (or never), which no one observes.
            definite_left: definite,
            path,
            lookahead,
            doomable,
            absent: state,
        }
    }

    /// The calls placed on the current path, in order.
    fn placed_calls(&self) -> impl Iterator<Item = usize> + '_ {
        self.path
            .iter()
            .filter_map(|f| f.placed)
            .map(|(call, _)| call)
    }

    /// Judges the state a placement leads to, in a one-key group, by the reads still to come:
    /// `None` if no completion can exist, else the state to go on with, which is
    /// [`DOOMED`] when no read can ever see this value again.
    ///
    /// Every operation that may be linearized before the first read still to return (`R`)
    /// was invoked before `R` returned, so its call is ahead of `R`'s return in the list.
    /// - If those are all appends and reads, the value `R` saw must extend the current one;
    ///   otherwise the state is pruned. Without this, appends between two reads are tried in
    ///   every order, each giving a state of its own.
    /// - If an overwrite (put, delete) is among them but none of those reads saw a value
    ///   extending the current one, no read can see it, or anything appended to it, before
    ///   it is overwritten: its value no longer matters. Such states merge into [`DOOMED`],
    ///   so that appends made before an overwrite are not tried in every order (in groups of
    ///   gets, puts, appends and deletes only, where nothing else observes a value).
    fn judge(&self, state: StateId) -> Option<StateId> {
        if !self.lookahead {
            return Some(state);
        }
        let now = (state != DOOMED).then(|| self.states.only(state));
        let extends = |seen: &Option<String>| match (now, seen) {
            (None, _) => false,
            (Some(None), _) => true,
            (Some(Some(_)), None) => false,
            (Some(Some(now)), Some(seen)) => seen.starts_with(now),
        };
        let (mut overwrite, mut seen_extending) = (false, false);
        let mut entry = self.list.next[self.list.head];
        while entry != NIL {
            let op = self.ops[entry / 2];
            match (&op.kind, &op.outcome, entry.is_multiple_of(2)) {
                (OpKind::Get, OpOutcome::Ok(read), true) => seen_extending |= extends(read),
                (OpKind::Append(_) | OpKind::Get, _, true) => {}
                (_, _, true) => overwrite = true,
                (OpKind::Get, OpOutcome::Ok(read), false) => {
                    if !overwrite {
                        return extends(read).then_some(state);
                    }
                    break;
                }
                (_, _, false) => {}
            }
            entry = self.list.next[entry];
        }
        let doom = self.doomable && overwrite && !seen_extending && !matches!(now, Some(None));
        Some(if doom { DOOMED } else { state })
    }

    /// Searches on until the verdict is known (`Some`) or `budget` runs out (`None`; calling
    /// again with more budget resumes where this call stopped). After a verdict, calling again
    /// returns it again.
    pub fn run(&mut self, budget: &mut Budget<'_>) -> Option<Search> {
        let slot = &self.slot;
        let is_info = |entry: usize| slot[entry / 2].0;
        while self.definite_left > 0 {
            if !budget.spend() {
                return None;
            }
            let frame = self
                .path
                .last_mut()
                .expect("the root frame is never popped");
            if let Some(&call) = frame.candidates.get(frame.tried) {
                frame.tried += 1;
                let op = call / 2;
                if self.predecessor[op].is_some_and(|before| !self.placed[before]) {
                    continue;
                }
                let Some(after) = step(&mut self.states, self.absent, self.state, self.ops[op])
                else {
                    continue;
                };
                self.list.unlink(call);
                self.list.unlink(call + 1);
                let Some(after) = self.judge(after) else {
                    // Pruned, but linearizable so far: it may still be the longest prefix.
                    if self.path.len() > self.longest.len() {
                        self.longest = self.placed_calls().chain([call]).map(|c| c / 2).collect();
                    }
                    self.list.relink(call + 1);
                    self.list.relink(call);
                    continue;
                };
                self.done.toggle(slot[op]);
                if !remember(&mut self.cache, &self.done, after) {
                    self.done.toggle(slot[op]);
                    self.list.relink(call + 1);
                    self.list.relink(call);
                    continue;
                }
                self.definite_left -= usize::from(!slot[op].0);
                self.placed[op] = true;
                self.path.push(Frame {
                    candidates: self.list.candidates(is_info),
                    tried: 0,
                    placed: Some((call, self.state)),
                });
                self.state = after;
                continue;
            }
            // Only a failed search reports the longest prefix, so it is copied when a path
            // longer than any before starts to unwind, not every time one grows.
            if self.path.len() > self.longest.len() + 1 {
                self.longest = self.placed_calls().map(|call| call / 2).collect();
            }
            if self.path.len() == 1 {
                return Some(Search::NotLinearizable {
                    longest: self.longest.clone(),
                });
            }
            let (call, before) = self
                .path
                .pop()
                .and_then(|frame| frame.placed)
                .expect("every frame above the root placed an operation");
            let op = call / 2;
            self.done.toggle(slot[op]);
            self.placed[op] = false;
            self.definite_left += usize::from(!slot[op].0);
            self.state = before;
            self.list.relink(call + 1);
            self.list.relink(call);
        }
        Some(Search::Linearizable)
    }
}

/// The state after `op` from `state` in `states`, [`DOOMED`] included: appends keep a doomed
/// state doomed, a put or delete gives it a value again (`absent` is the group's empty state),
/// and no read can see it.
fn step(states: &mut States, absent: StateId, state: StateId, op: &Operation) -> Option<StateId> {
    if state != DOOMED {
        return states.step(state, op);
    }
    match op.kind {
        OpKind::Append(_) => Some(DOOMED),
        OpKind::Put(_) | OpKind::Delete => states.step(absent, op),
        _ => None,
    }
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
