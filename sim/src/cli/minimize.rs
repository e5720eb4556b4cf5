//! `verity-sim minimize`: shrink a failing seed and write it as a scenario, then prove the file
//! reproduces the failure by loading and replaying it.

use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use verity_sim::SimOptions;
use verity_sim::minimize::{minimize, to_scenario};
use verity_sim::runner::{capture_panics, run_catching_panics};
use verity_sim::scenario::Scenario;

pub fn run(
    options: SimOptions,
    origin: &str,
    out: &Path,
    max_replays: u64,
) -> anyhow::Result<ExitCode> {
    capture_panics();
    let seed = options.seed;
    let (clients, ops, keys) = (options.clients, options.ops, options.keys);
    let minimized = minimize(options, max_replays)?;
    let o = &minimized.options;
    println!(
        "seed {seed} fails the `{}` check: {}",
        minimized.check,
        minimized.message.lines().next().unwrap_or_default()
    );
    println!(
        "shrunk in {} replays: {} -> {} clients, {} -> {} operations, {} -> {} keys, fault kinds {:?}",
        minimized.replays, clients, o.clients, ops, o.ops, keys, o.keys, minimized.plan.enabled
    );
    for step in &minimized.steps {
        println!("  kept: {step}");
    }
    std::fs::write(out, to_scenario(&minimized, origin))
        .with_context(|| format!("writing {}", out.display()))?;
    let scenario = Scenario::load(out)?;
    let replayed = run_catching_panics(scenario.options(seed));
    let check = match &replayed {
        Ok(outcome) => outcome.failure.as_ref().map(|f| f.check().to_string()),
        Err(_) => Some("assertion".to_string()),
    };
    if check.as_deref() != Some(minimized.check.as_str()) {
        anyhow::bail!(
            "{} does not reproduce the failure (replay gave {check:?}): the scenario format lost a setting; please report this",
            out.display()
        );
    }
    println!(
        "wrote {} and replayed it: it fails the same check",
        out.display()
    );
    println!("run it with: verity-sim scenario {}", out.display());
    Ok(ExitCode::SUCCESS)
}
