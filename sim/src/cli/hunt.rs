//! `verity-sim hunt`: switch on one catalogued bug and run swarm seeds until a check catches it.
//! Only built with the `bug-catalogue` feature.

use super::ClusterArgs;
use super::wallclock::Stopwatch;
use std::process::ExitCode;
use verity_core::bugs::Bug;
use verity_sim::runner::{Catch, capture_panics, hunt};

/// Hunts `bug` from `first_seed` for at most `budget_s` wall seconds; the seconds it took.
fn timed_hunt(
    bug: Bug,
    cluster: &ClusterArgs,
    first_seed: u64,
    budget_s: f64,
) -> anyhow::Result<Option<(Catch, f64)>> {
    capture_panics();
    let mut cluster = cluster.clone();
    cluster.bug = Some(bug.name().to_string());
    let template = cluster.options(first_seed)?;
    let clock = Stopwatch::start();
    let stop = || clock.seconds() >= budget_s;
    Ok(hunt(bug, &template, first_seed, u64::MAX, &stop).map(|catch| (catch, clock.seconds())))
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
    match timed_hunt(bug, cluster, first_seed, budget_s)? {
        Some((catch, seconds)) => {
            println!(
                "{}: caught by seed {} after {} seeds in {seconds:.2} s",
                bug.name(),
                catch.seed,
                catch.seeds
            );
            println!("  check: [{}] {}", catch.check, catch.message);
            let mut with_bug = cluster.clone();
            with_bug.bug = Some(bug.name().to_string());
            println!(
                "  replay: verity-sim replay --seed {} {} (in a build with --features bug-catalogue)",
                catch.seed,
                with_bug.flags()
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
    println!("| bug | caught | median seeds | median seconds | caught by |");
    println!("|---|---|---|---|---|");
    let mut all_caught = true;
    for bug in Bug::ALL {
        let (mut seeds, mut seconds) = (Vec::new(), Vec::new());
        let mut checks = std::collections::BTreeSet::new();
        for run in 0..runs {
            if let Some((catch, took)) = timed_hunt(bug, cluster, run * 1_000_000, budget_s)? {
                seeds.push(catch.seeds);
                seconds.push(took);
                checks.insert(catch.check);
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
        let checks: Vec<String> = checks.into_iter().collect();
        println!(
            "| `{}` | {}/{runs} | {median_seeds} | {median_seconds} | {} |",
            bug.name(),
            seeds.len(),
            checks.join(", ")
        );
    }
    Ok(if all_caught {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
