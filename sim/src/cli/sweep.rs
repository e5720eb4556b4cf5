//! `verity-sim run`: many seeds, a progress line, a summary table, and a replay command for
//! every failing seed. A panic inside a run (an assertion in the core or the simulator) is
//! reported as that seed's failure: an assertion that fires is a found bug.

use super::ClusterArgs;
use super::wallclock::Stopwatch;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::process::ExitCode;
use verity_sim::checker::Verdict;
use verity_sim::runner::{capture_panics, run_catching_panics};
use verity_sim::sessions::StaleReads;
use verity_sim::{RunOutcome, SimOptions};

/// One seed's result.
pub struct SeedResult {
    pub outcome: Result<RunOutcome, String>,
    pub seconds: f64,
}

/// Runs one seed, timing it and turning a panic into an error message.
pub fn run_seed(options: SimOptions) -> SeedResult {
    let clock = Stopwatch::start();
    let outcome = run_catching_panics(options);
    SeedResult {
        outcome,
        seconds: clock.seconds(),
    }
}

/// What a sweep runs: the options of each seed, the command that replays one, and whether
/// every seed is expected to fail (a scenario that proves a bug is caught).
pub struct Sweep<'a> {
    pub options: &'a dyn Fn(u64) -> anyhow::Result<SimOptions>,
    pub replay: &'a dyn Fn(u64) -> String,
    pub must_fail: bool,
}

pub fn run(
    seeds: Range<u64>,
    shard: Option<(u64, u64)>,
    cluster: &ClusterArgs,
) -> anyhow::Result<ExitCode> {
    let options = |seed| cluster.options(seed);
    let replay = |seed| format!("verity-sim replay --seed {seed} {}", cluster.flags());
    sweep(
        seeds,
        shard,
        &Sweep {
            options: &options,
            replay: &replay,
            must_fail: false,
        },
    )
}

/// Runs the chosen seeds of `seeds` (every N-th, from the I-th, with `shard`).
pub fn sweep(
    seeds: Range<u64>,
    shard: Option<(u64, u64)>,
    what: &Sweep<'_>,
) -> anyhow::Result<ExitCode> {
    let (index, count) = shard.unwrap_or((0, 1));
    let chosen: Vec<u64> = seeds.filter(|seed| seed % count == index).collect();
    (what.options)(0)?;
    capture_panics();
    let progress = std::io::stderr().is_terminal();
    let clock = Stopwatch::start();
    let (mut ops, mut faults) = (0u64, 0u64);
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut undecided: Vec<u64> = Vec::new();
    let mut stale = StaleSummary::default();
    let mut rates: Vec<f64> = Vec::with_capacity(chosen.len());
    let mut failures: Vec<(u64, String, String)> = Vec::new();
    for (done, &seed) in chosen.iter().enumerate() {
        let result = run_seed((what.options)(seed)?);
        match &result.outcome {
            Ok(outcome) => {
                ops += outcome.stats.ops_ok + outcome.stats.ops_fail + outcome.stats.ops_info;
                faults += outcome.stats.faults_total();
                for (kind, count) in &outcome.stats.faults {
                    *by_kind.entry(kind.clone()).or_default() += count;
                }
                rates.push(outcome.stats.events as f64 / result.seconds.max(1e-9));
                if outcome.verdict == Some(Verdict::Undecided) {
                    undecided.push(seed);
                }
                if let Some(reads) = &outcome.stale_reads {
                    stale.add(seed, reads);
                }
                match (&outcome.failure, what.must_fail) {
                    (Some(failure), false) => {
                        failures.push((seed, failure.check().to_string(), failure.to_string()))
                    }
                    (None, true) => failures.push((
                        seed,
                        "must-fail".to_string(),
                        "every check passed, but the scenario must fail".to_string(),
                    )),
                    _ => {}
                }
            }
            Err(panic) if !what.must_fail => {
                failures.push((seed, "panic".to_string(), panic.clone()))
            }
            Err(_) => {}
        }
        if progress {
            let width = 30;
            let filled = (done + 1) * width / chosen.len();
            eprint!(
                "\r[{}{}] {}/{} seeds, {} failing",
                "=".repeat(filled),
                " ".repeat(width - filled),
                done + 1,
                chosen.len(),
                failures.len()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if progress {
        eprintln!();
    }
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{:>8}  {:>9}  {:>7}  {:>10}  {:>9}  {:>15}  {:>9}",
        "seeds", "ops", "faults", "violations", "undecided", "median events/s", "wall s"
    );
    println!(
        "{:>8}  {:>9}  {:>7}  {:>10}  {:>9}  {:>15.0}  {:>9.2}",
        chosen.len(),
        ops,
        faults,
        failures.len(),
        undecided.len(),
        median,
        clock.seconds()
    );
    if !by_kind.is_empty() {
        let kinds: Vec<String> = by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        println!("faults by kind: {}", kinds.join(", "));
    }
    if stale.seeds > 0 {
        println!("{stale}");
    }
    if !undecided.is_empty() {
        println!(
            "\nlinearizability undecided within the checker's budget (not failures) for seeds {undecided:?}; \
             inspect one with: {} --history h.jsonl && verity-sim check h.jsonl",
            (what.replay)(undecided[0])
        );
    }
    for (seed, check, message) in &failures {
        println!("\nseed {seed} failed [{check}]: {message}");
        println!("  replay: {}", (what.replay)(*seed));
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The stale reads of a sweep's seeds, all of which kept their session guarantees.
#[derive(Default)]
struct StaleSummary {
    seeds: u64,
    checked: u64,
    behind: u64,
    /// The most a read was behind: `(ms, entries, seed)`.
    worst: Option<(u64, u64, u64)>,
}

impl StaleSummary {
    fn add(&mut self, seed: u64, reads: &StaleReads) {
        self.seeds += 1;
        self.checked += reads.checked;
        self.behind += reads.behind;
        let this = (reads.max_ms_behind, reads.max_entries_behind, seed);
        if reads.behind > 0 && self.worst.is_none_or(|worst| this > worst) {
            self.worst = Some(this);
        }
    }
}

impl std::fmt::Display for StaleSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stale reads: {} checked in {} seeds, session guarantees kept; {} returned an overwritten value",
            self.checked, self.seeds, self.behind
        )?;
        if let Some((ms, entries, seed)) = self.worst {
            write!(
                f,
                " (the most: {ms} ms, {entries} entries behind, seed {seed})"
            )?;
        }
        Ok(())
    }
}
