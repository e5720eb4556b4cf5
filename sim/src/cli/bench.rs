//! `verity-sim bench`: simulator and checker throughput on this machine.

use super::sweep::run_seed;
use super::wallclock::Stopwatch;
use std::process::ExitCode;
use verity_sim::SimOptions;
use verity_sim::checker::{Budget, check};
use verity_sim::generate::{Shape, Wide, linearizable_history, wide_history};

pub fn run(seeds: u64) -> anyhow::Result<ExitCode> {
    println!(
        "simulator: standard swarm run (5 nodes, 8 clients, 200 ops), {seeds} seeds, one core"
    );
    let (mut events, mut virtual_us, mut wall) = (0u64, 0u64, 0.0f64);
    let mut failures = 0;
    for seed in 0..seeds {
        let result = run_seed(SimOptions {
            seed,
            ..SimOptions::default()
        });
        wall += result.seconds;
        match result.outcome {
            Ok(outcome) => {
                events += outcome.stats.events;
                virtual_us += outcome.stats.virtual_time_us;
                failures += u64::from(outcome.failure.is_some());
            }
            Err(_) => failures += 1,
        }
    }
    println!(
        "  events per wall second:           {:>12.0}",
        events as f64 / wall
    );
    println!(
        "  simulated seconds per wall second: {:>12.0}",
        virtual_us as f64 / 1e6 / wall
    );
    println!(
        "  seeds per second:                  {:>12.1}",
        seeds as f64 / wall
    );
    println!("  (failing seeds: {failures})");
    println!();
    println!("checker: generated linearizable histories, 10 concurrent processes");
    println!(
        "  {:>9} {:>6} {:>10} {:>12}",
        "ops", "keys", "seconds", "ops/s"
    );
    for operations in [1_000, 10_000, 100_000] {
        for keys in [1, 10, 100] {
            let shape = Shape {
                processes: 10,
                keys,
                operations,
                info_per_mille: 0,
            };
            let ops = linearizable_history(shape, 7).operations()?;
            let clock = Stopwatch::start();
            let report = check(&ops, &mut Budget::steps(u64::MAX));
            let seconds = clock.seconds();
            println!(
                "  {operations:>9} {keys:>6} {seconds:>10.4} {:>12.0}   {:?}",
                operations as f64 / seconds,
                report.verdict
            );
        }
    }
    println!();
    wide_histories()?;
    Ok(ExitCode::SUCCESS)
}

/// Seeds of each wide-history kind to time.
const WIDE_SEEDS: u64 = 10;

/// Times the checker on generated wide histories (`verity-sim generate`): linearizable ones,
/// and ones with a stale read on one key beside a key too hard to search, which the stale
/// read must decide. Each check stops after 10 s (then undecided).
fn wide_histories() -> anyhow::Result<()> {
    println!(
        "checker: wide histories (50 processes, 10 keys, 2,000 ops, 3% of writes info), \
         {WIDE_SEEDS} seeds each, 10 s limit"
    );
    println!(
        "  {:<28} {:>9} {:>9} {:>9} {:>12}   verdicts",
        "kind", "median s", "max s", "total s", "ops/s"
    );
    for (name, stale_read, hard_key) in [
        ("linearizable", false, false),
        ("stale read beside hard key", true, true),
    ] {
        let (mut seconds, mut verdicts, mut ops_total) = (Vec::new(), Vec::new(), 0usize);
        for seed in 0..WIDE_SEEDS {
            let ops = wide_history(Wide::fifty_clients(stale_read, hard_key), seed).operations()?;
            let clock = Stopwatch::start();
            let stop = || clock.seconds() > 10.0;
            let report = check(&ops, &mut Budget::until(u64::MAX, &stop));
            seconds.push(clock.seconds());
            verdicts.push(format!("{:?}", report.verdict));
            ops_total += ops.len();
        }
        let total: f64 = seconds.iter().sum();
        seconds.sort_by(f64::total_cmp);
        verdicts.sort();
        verdicts.dedup();
        println!(
            "  {name:<28} {:>9.3} {:>9.3} {:>9.3} {:>12.0}   {}",
            seconds[seconds.len() / 2],
            seconds[seconds.len() - 1],
            total,
            ops_total as f64 / total,
            verdicts.join(", ")
        );
    }
    Ok(())
}
