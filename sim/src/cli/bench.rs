//! `verity-sim bench`: simulator and checker throughput on this machine.

use super::sweep::run_seed;
use super::wallclock::Stopwatch;
use std::process::ExitCode;
use verity_sim::SimOptions;
use verity_sim::checker::{Budget, check};
use verity_sim::generate::{Shape, linearizable_history};

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
    Ok(ExitCode::SUCCESS)
}
