//! `verity-sim hunt`: switch on one catalogued bug and run swarm seeds until a check catches it.
//! Only built with the `bug-catalogue` feature.

use super::ClusterArgs;
use super::sweep::{capture_panics, run_seed};
use super::wallclock::Stopwatch;
use std::process::ExitCode;
use verity_core::bugs::Bug;

/// What one hunt found.
pub struct Catch {
    /// The failing seed.
    pub seed: u64,
    /// Seeds run, the failing one included.
    pub seeds: u64,
    /// The check that failed, and its message.
    pub check: String,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

/// Runs seeds `first_seed..` with `bug` on until one fails or `budget_s` pass.
pub fn hunt(
    bug: Bug,
    cluster: &ClusterArgs,
    first_seed: u64,
    budget_s: f64,
) -> anyhow::Result<Option<Catch>> {
    capture_panics();
    let clock = Stopwatch::start();
    let mut seed = first_seed;
    while clock.seconds() < budget_s {
        let mut options = cluster.options(seed)?;
        options.bug = Some(bug);
        let result = run_seed(options);
        let failure = match result.outcome {
            Ok(outcome) => outcome.failure.map(|f| format!("[{}] {f}", f.check())),
            Err(panic) => Some(format!("[assertion] {panic}")),
        };
        if let Some(check) = failure {
            return Ok(Some(Catch {
                seed,
                seeds: seed - first_seed + 1,
                check,
                seconds: clock.seconds(),
            }));
        }
        seed += 1;
    }
    Ok(None)
}

pub fn list() -> anyhow::Result<ExitCode> {
    for bug in Bug::ALL {
        println!("{:<26} {}", bug.name(), bug.breaks());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(
    name: &str,
    cluster: &ClusterArgs,
    first_seed: u64,
    budget_s: f64,
) -> anyhow::Result<ExitCode> {
    let bug = Bug::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("no catalogued bug named {name:?}; `verity-sim hunt --list` lists them")
    })?;
    match hunt(bug, cluster, first_seed, budget_s)? {
        Some(catch) => {
            println!(
                "{}: caught by seed {} after {} seeds in {:.2} s",
                bug.name(),
                catch.seed,
                catch.seeds,
                catch.seconds
            );
            println!("  check: {}", catch.check);
            println!(
                "  replay: verity-sim replay --seed {} {} (with the bug: build with --features bug-catalogue)",
                catch.seed,
                cluster.flags()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("{}: not caught within {budget_s} s", bug.name());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The scorecard: every bug hunted `runs` times from different seed ranges; median seeds and
/// seconds to catch.
pub fn scorecard(cluster: &ClusterArgs, runs: u64, budget_s: f64) -> anyhow::Result<ExitCode> {
    println!("| bug | caught | median seeds | median seconds | check that caught it (first run) |");
    println!("|---|---|---|---|---|");
    let mut all_caught = true;
    for bug in Bug::ALL {
        let mut seeds = Vec::new();
        let mut seconds = Vec::new();
        let mut first_check = String::new();
        for run in 0..runs {
            if let Some(catch) = hunt(bug, cluster, run * 1_000_000, budget_s)? {
                if first_check.is_empty() {
                    first_check = catch
                        .check
                        .split(']')
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches('[')
                        .to_string();
                }
                seeds.push(catch.seeds);
                seconds.push(catch.seconds);
            }
        }
        all_caught &= seeds.len() as u64 == runs;
        seeds.sort_unstable();
        seconds.sort_by(f64::total_cmp);
        let median_seeds = seeds
            .get(seeds.len() / 2)
            .map_or("-".to_string(), u64::to_string);
        let median_seconds = seconds
            .get(seconds.len() / 2)
            .map_or("-".to_string(), |s| format!("{s:.2}"));
        println!(
            "| `{}` | {}/{runs} | {median_seeds} | {median_seconds} | {first_check} |",
            bug.name(),
            seeds.len()
        );
    }
    Ok(if all_caught {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
