//! `verity-sim replay`: one seed, its human-readable trace (tracing events stamped with virtual
//! time), its history and trace files, and its trace hash.

use super::sweep::run_seed;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use verity_sim::SimOptions;
use verity_sim::picture;
use verity_sim::runner::capture_panics;
use verity_sim::simulation::Failure;

/// Stamps log lines with the simulation's virtual time.
struct VirtualTime;

impl FormatTime for VirtualTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now_us = verity_sim::trace::virtual_now_us();
        write!(w, "{:>6}.{:03}ms", now_us / 1000, now_us % 1000)
    }
}

/// Where to write what the replay produced, besides standard output.
pub struct Files<'a> {
    /// The client history (JSON Lines).
    pub history: Option<&'a Path>,
    /// The trace (JSON Lines).
    pub trace: Option<&'a Path>,
    /// The picture of the run (HTML).
    pub html: Option<&'a Path>,
}

/// Replays one seed; `command` is the command line that replays it, for the picture's
/// heading.
pub fn run(
    mut options: SimOptions,
    command: &str,
    files: &Files<'_>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let (history, trace) = (files.history, files.trace);
    let seed = options.seed;
    let must_fail = options.expect.must_fail;
    options.keep_trace = true;
    if !quiet {
        tracing_subscriber::fmt()
            .with_env_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
            )
            .with_timer(VirtualTime)
            .with_ansi(false)
            .with_target(false)
            .init();
    }
    capture_panics();
    let result = run_seed(options);
    let outcome = match result.outcome {
        Ok(outcome) => outcome,
        Err(panic) => {
            println!("seed {seed}: {panic}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(path) = history {
        std::fs::write(path, outcome.history.to_json_lines())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = trace {
        let mut lines = String::new();
        for event in outcome.trace.events().unwrap_or_default() {
            lines.push_str(&serde_json::to_string(event)?);
            lines.push('\n');
        }
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    let stats = &outcome.stats;
    let summary = format!(
        "seed {seed}: {} nodes, {} clients, faults {:?} -> {} ok / {} fail / {} info operations, {} elections, {} events, {:.3} virtual s",
        outcome.options.nodes,
        outcome.options.clients,
        outcome.plan.enabled,
        stats.ops_ok,
        stats.ops_fail,
        stats.ops_info,
        stats.elections,
        stats.events,
        stats.virtual_time_us as f64 / 1e6
    );
    println!("{summary}");
    if let Some(path) = files.html {
        let page = picture::run_page(&outcome, command, summary);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(stale) = &outcome.stale_reads {
        println!("session guarantees kept: {stale}");
    }
    match &outcome.failure {
        None => println!("all checks passed (linearizability: {:?})", outcome.verdict),
        Some(failure) => {
            println!("FAILED [{}]: {failure}", failure.check());
            if let Failure::Linearizability { report } = failure {
                for violation in &report.violations {
                    print!("{violation}");
                }
            }
        }
    }
    println!("trace hash: {:016x}", outcome.trace.hash());
    if must_fail {
        println!(
            "this scenario must fail: {}",
            if outcome.failure.is_some() {
                "it did"
            } else {
                "it did NOT"
            }
        );
    }
    Ok(if outcome.failure.is_some() != must_fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
