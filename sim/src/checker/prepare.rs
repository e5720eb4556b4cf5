//! Dropping the `info` writes of one key group that nothing could have observed, before the
//! search. Each info write stays concurrent with everything after it, so `k` of them can
//! multiply the configurations by `2^k`; the unfinished appends of a wide history are
//! mostly of this kind.
//!
//! An `info` put or append is dropped if its string occurs in no value a read returned and
//! no value a compare-and-swap expected: whether it took effect is invisible. In any order
//! that places it, the operations up to the next overwrite would see its string, so none of
//! them is a read or a compare-and-swap that succeeded; leaving it out changes only what
//! later appends build on, which no one reads before the overwrite. This covers an info
//! write overwritten before anyone read it. Groups with a failed compare-and-swap, an
//! increment or a transaction are left as they are, since those observe values other than
//! by returning them.

use crate::history::{OpKind, OpOutcome, Operation};

/// Drops the unobserved info writes of one group (see the module documentation).
pub(super) fn drop_unobserved_info_writes(ops: Vec<&Operation>) -> Vec<&Operation> {
    let Some(observed) = observations(&ops) else {
        return ops;
    };
    let unobserved = |op: &Operation| match &op.kind {
        OpKind::Put(written) | OpKind::Append(written) => {
            op.complete_position.is_none()
                && !observed.iter().any(|seen| seen.contains(written.as_str()))
        }
        _ => false,
    };
    ops.into_iter().filter(|op| !unobserved(op)).collect()
}

/// The values the group's operations observed, or `None` if the group has an operation that
/// observes otherwise.
fn observations<'a>(ops: &[&'a Operation]) -> Option<Vec<&'a str>> {
    let mut seen = Vec::new();
    for op in ops {
        match (&op.kind, &op.outcome) {
            (OpKind::Get, OpOutcome::Ok(read)) => seen.extend(read.as_deref()),
            (OpKind::Cas { expected, .. }, OpOutcome::Ok(_) | OpOutcome::Info) => {
                seen.extend(expected.as_deref());
            }
            (OpKind::Get | OpKind::Put(_) | OpKind::Append(_) | OpKind::Delete, _) => {}
            _ => return None,
        }
    }
    Some(seen)
}
