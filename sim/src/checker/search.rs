//! The Wing–Gong / Lowe search for a linearization of one key's operations, with Porcupine's
//! memoization of `(set of linearized operations, state)`.
//!
//! The history is a list of call and return entries in real-time order. The search walks it:
//! at a call it tries to linearize that operation now (the model must accept it, and the
//! resulting configuration must be new); at a return whose call is still pending it has hit a
//! dead end and backtracks. A history is linearizable when every entry has been lifted.
//! Operations with unknown outcome (`info`) return at infinity, so they may take effect at any
//! point after their call, including after everything else (which is the same as never).

use super::model::{FixedState, StateId, States};
use crate::history::Operation;
use std::collections::HashSet;

const NIL: usize = usize::MAX;

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
        if self.steps_left % 4096 == 0 && self.should_stop.is_some_and(|stop| stop()) {
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

/// Searches for a linearization of `ops` (all on one key), starting from the absent state.
pub fn search(ops: &[&Operation], budget: &mut Budget<'_>) -> Search {
    let n = ops.len();
    // Entries: 2i is op i's call, 2i+1 its return; `head` is a sentinel.
    let head = 2 * n;
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke_position, 2 * i));
        order.push((op.complete_position.unwrap_or(usize::MAX), 2 * i + 1));
    }
    order.sort_unstable();
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut last = head;
    for &(_, entry) in &order {
        next[last] = entry;
        prev[entry] = last;
        last = entry;
    }

    let (mut states, mut state) = States::new();
    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Box<[u64]>, StateId), FixedState> = HashSet::default();
    let mut stack: Vec<(usize, StateId)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();

    let remove = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = next[x];
        if next[x] != NIL {
            prev[next[x]] = prev[x];
        }
    };
    let restore = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        next[prev[x]] = x;
        if next[x] != NIL {
            prev[next[x]] = x;
        }
    };

    let mut entry = next[head];
    while next[head] != NIL {
        if !budget.spend() {
            return Search::Undecided;
        }
        debug_assert_ne!(
            entry, NIL,
            "the list ends with returns, which stop the walk"
        );
        let op = entry / 2;
        if entry % 2 == 0 {
            if let Some(after) = states.step(state, ops[op]) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone().into_boxed_slice(), after)) {
                    stack.push((entry, state));
                    state = after;
                    remove(&mut next, &mut prev, entry);
                    remove(&mut next, &mut prev, entry + 1);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(e, _)| e / 2).collect();
                    }
                    entry = next[head];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = next[entry];
        } else {
            let Some((call, before)) = stack.pop() else {
                return Search::NotLinearizable { longest };
            };
            let undone = call / 2;
            linearized[undone / 64] &= !(1 << (undone % 64));
            state = before;
            restore(&mut next, &mut prev, call + 1);
            restore(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
    Search::Linearizable
}
