//! Shrinking a failing run to a small scenario file that still fails the same check.
//!
//! Neither TigerBeetle's VOPR nor Porcupine does this. The run is first pinned: the fault
//! kinds, network, disk and batching that its seed drew become explicit settings, which replay
//! it exactly (plans make every draw before applying pinned values). Then variants are replayed
//! deterministically, each keeping the seed and shrinking one dimension (one fault kind fewer,
//! fewer clients, operations or keys, a shorter chaos phase); a variant that still fails the
//! same check becomes the new best, until no variant does or the replay budget is spent. The
//! result is written as a scenario that pins the seed, so `verity-sim scenario FILE` reproduces
//! it with one command.
//!
//! A variant is a different run of the same seed, not the same events minus some: shrinking
//! searches for a smaller configuration that still fails, as property-test shrinkers do.

use crate::options::{FaultPlan, SimOptions};
use crate::runner::run_catching_panics;
use std::fmt::Write;

/// A minimized failing run.
#[derive(Clone, Debug)]
pub struct Minimized {
    /// The smallest options found that still fail.
    pub options: SimOptions,
    /// The fault plan they run with.
    pub plan: FaultPlan,
    /// The check that fails (`assertion` for a panic).
    pub check: String,
    /// Its message in the smallest run.
    pub message: String,
    /// Runs replayed while shrinking.
    pub replays: u64,
    /// What was shrunk, in order.
    pub steps: Vec<String>,
}

/// The run does not fail, so there is nothing to minimize.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed} passes every check: there is nothing to minimize")]
pub struct NothingFails {
    /// The seed.
    pub seed: u64,
}

/// Runs `options` and returns the failing check, its message and the plan, if it fails.
fn failing(options: &SimOptions) -> Option<(String, String, FaultPlan)> {
    match run_catching_panics(options.clone()) {
        Ok(outcome) => outcome
            .failure
            .map(|f| (f.check().to_string(), f.to_string(), outcome.plan)),
        Err(panic) => {
            // The run panicked before returning its plan; the plan is the seed's first draw.
            let plan = FaultPlan::draw(options, &mut crate::rng::SimRng::new(options.seed));
            Some(("assertion".to_string(), panic, plan))
        }
    }
}

/// Sets one of a run's counts (clients, operations, keys).
type SetCount = fn(&mut SimOptions, u64);

/// The variants of `best` one step smaller, most promising first.
fn variants(best: &SimOptions) -> Vec<(String, SimOptions)> {
    let mut out = Vec::new();
    let faults = best.faults.clone().unwrap_or_default();
    for kind in &faults {
        let mut fewer = faults.clone();
        fewer.remove(kind);
        out.push((
            format!("without {kind:?} faults"),
            SimOptions {
                faults: Some(fewer),
                ..best.clone()
            },
        ));
    }
    // Smaller counts: half, then a bit less, each only if it is smaller and still positive.
    let counts: [(&str, u64, SetCount); 3] = [
        ("clients", best.clients, |o, n| o.clients = n),
        ("operations", best.ops, |o, n| o.ops = n),
        ("keys", best.keys, |o, n| o.keys = n),
    ];
    for (name, current, set) in counts {
        for smaller in [current / 2, current * 3 / 4, current.saturating_sub(1)] {
            if (1..current).contains(&smaller) {
                let mut variant = best.clone();
                set(&mut variant, smaller);
                out.push((format!("{smaller} {name}"), variant));
            }
        }
    }
    let shorter = best.chaos_max_us / 2;
    if shorter >= 1_000_000 {
        out.push((
            format!("chaos phase of {} s", shorter / 1_000_000),
            SimOptions {
                chaos_max_us: shorter,
                ..best.clone()
            },
        ));
    }
    out
}

/// Shrinks the failing run `options`, replaying at most `max_replays` variants.
pub fn minimize(options: SimOptions, max_replays: u64) -> Result<Minimized, NothingFails> {
    let seed = options.seed;
    let (check, message, plan) = failing(&options).ok_or(NothingFails { seed })?;
    let mut best = pin(options, &plan);
    let mut result = Minimized {
        options: best.clone(),
        plan,
        check,
        message,
        replays: 1,
        steps: Vec::new(),
    };
    'shrink: while result.replays < max_replays {
        for (step, variant) in variants(&best) {
            if result.replays >= max_replays {
                break 'shrink;
            }
            result.replays += 1;
            if let Some((check, message, plan)) = failing(&variant)
                && check == result.check
            {
                result.steps.push(step);
                (result.message, result.plan) = (message, plan);
                best = variant;
                continue 'shrink;
            }
        }
        break;
    }
    result.options = best;
    Ok(result)
}

/// `options` with everything its seed drew pinned, so that it replays the same run.
fn pin(mut options: SimOptions, plan: &FaultPlan) -> SimOptions {
    options.faults = Some(plan.enabled.clone());
    options.overrides.network = Some(plan.network);
    options.overrides.fsync_us = Some(plan.fsync_us);
    options.overrides.max_entries_per_append = Some(plan.max_entries_per_append);
    options.overrides.max_inflight_appends = Some(plan.max_inflight_appends);
    options.overrides.reads = Some(plan.reads.clone());
    options.overrides.snapshots = Some(plan.snapshots);
    options.overrides.readers = Some(plan.readers);
    options.overrides.transfer_per_mille = Some(plan.transfer_per_mille);
    options.overrides.deafen_after_transfer = Some(plan.deafen_after_transfer);
    options
}

fn duration(us: u64) -> String {
    format!("\"{us}us\"")
}

/// The minimized run as a scenario file. `origin` (the command that found it) goes into its
/// comment block.
#[must_use]
pub fn to_scenario(minimized: &Minimized, origin: &str) -> String {
    let o = &minimized.options;
    let p = &minimized.plan;
    let n = &p.network;
    let mut text = String::new();
    let _ = writeln!(text, "# Minimized by `verity-sim minimize` from: {origin}");
    let _ = writeln!(
        text,
        "# It fails the `{}` check: {}",
        minimized.check,
        minimized.message.lines().next().unwrap_or_default()
    );
    let _ = writeln!(
        text,
        "# Shrunk ({} replays): {}.",
        minimized.replays,
        if minimized.steps.is_empty() {
            "nothing could be removed".to_string()
        } else {
            minimized.steps.join(", ")
        }
    );
    #[cfg(feature = "bug-catalogue")]
    let catalogued = o.bug.is_some();
    #[cfg(not(feature = "bug-catalogue"))]
    let catalogued = false;
    if catalogued {
        let _ = writeln!(
            text,
            "# It switches on a catalogued bug and must fail: proof the simulator catches it.\n"
        );
    } else {
        let _ = writeln!(
            text,
            "# Run it with `verity-sim scenario THIS_FILE`: once the bug is fixed it passes, and stays a"
        );
        let _ = writeln!(text, "# regression test.\n");
    }
    let _ = writeln!(text, "seed = {}", o.seed);
    #[cfg(feature = "bug-catalogue")]
    if let Some(bug) = o.bug {
        let _ = writeln!(text, "bug = \"{}\"", bug.name());
    }
    let _ = writeln!(
        text,
        "\n[cluster]\nnodes = {}\nelection_timeout_ticks = {}\nheartbeat_interval_ticks = {}\ntick = {}",
        o.nodes,
        o.election_timeout_ticks,
        o.heartbeat_interval_ticks,
        duration(o.tick_us)
    );
    let _ = writeln!(
        text,
        "max_entries_per_append = {}\nmax_inflight_appends = {}\nsnapshot_entries = {}\nsnapshot_trailing_entries = {}\nsnapshot_chunk_bytes = {}",
        p.max_entries_per_append,
        p.max_inflight_appends,
        p.snapshots.entries,
        p.snapshots.trailing_entries,
        p.snapshots.chunk_bytes
    );
    let _ = writeln!(
        text,
        "\n[network]\nlatency = [{}, {}]\ndrop_per_mille = {}\nduplicate_per_mille = {}\nreorder_per_mille = {}\nreorder_delay_max = {}\nfsync = [{}, {}]",
        duration(n.latency_min_us),
        duration(n.latency_max_us),
        n.drop_per_mille,
        n.duplicate_per_mille,
        n.reorder_per_mille,
        duration(n.reorder_delay_max_us),
        duration(p.fsync_us.0),
        duration(p.fsync_us.1)
    );
    let _ = writeln!(
        text,
        "\n[workload]\nclients = {}\nkeys = {}\nops = {}\nduration = {}\nrequest_timeout = {}\nmax_attempts = {}\nreads = [{}]\nreaders = {}\nmix = {{ get = {}, put = {}, delete = {}, cas = {}, append = {}, incr = {}, multi = {}, txn = {}, swap = {} }}",
        o.clients,
        o.keys,
        o.ops,
        duration(o.chaos_max_us),
        duration(o.request_timeout_us),
        o.max_attempts,
        p.reads
            .iter()
            .map(|level| format!("\"{}\"", level.name()))
            .collect::<Vec<_>>()
            .join(", "),
        p.readers.min(o.clients),
        o.mix.get,
        o.mix.put,
        o.mix.delete,
        o.mix.cas,
        o.mix.append,
        o.mix.incr,
        o.mix.multi,
        o.mix.txn,
        o.mix.swap
    );
    let kinds: Vec<String> = p
        .enabled
        .iter()
        .map(|k| format!("{:?}", k.name()))
        .collect();
    let _ = writeln!(
        text,
        "\n[faults]\nrandom = [{}]\ntransfer_per_mille = {}\ndeafen_after_transfer = {}",
        kinds.join(", "),
        p.transfer_per_mille,
        p.deafen_after_transfer
    );
    #[cfg(feature = "bug-catalogue")]
    if o.bug.is_some() {
        let _ = writeln!(text, "\n[expect]\nmust_fail = true");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_seed_has_nothing_to_minimize() {
        let options = SimOptions {
            seed: 3,
            nodes: 3,
            ops: 20,
            ..SimOptions::default()
        };
        assert_eq!(minimize(options, 10).unwrap_err(), NothingFails { seed: 3 });
    }
}
