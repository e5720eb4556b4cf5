//! `verity-sim check FILE`: the checker alone, with the exit codes of the history spec.

use super::wallclock::Stopwatch;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use verity_sim::checker::{Budget, Verdict, check};
use verity_sim::history::History;
use verity_sim::picture;

pub fn run(
    file: &Path,
    text: anyhow::Result<String>,
    timeout_s: f64,
    json: bool,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let history = text.and_then(|text| {
        History::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))
    });
    let ops = match history.and_then(|h| {
        h.operations()
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }) {
        Ok(ops) => ops,
        Err(error) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "verdict": "malformed", "error": format!("{error:#}") })
                );
            } else {
                eprintln!("malformed history: {error:#}");
            }
            return Ok(ExitCode::from(3));
        }
    };
    let clock = Stopwatch::start();
    let stop = move || clock.seconds() > timeout_s;
    let mut budget = Budget::until(u64::MAX, &stop);
    let report = check(&ops, &mut budget);
    let seconds = clock.seconds();
    if let Some(path) = html {
        let page = picture::check_page(&file.display().to_string(), &ops, &report, seconds);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["seconds"] = serde_json::json!(seconds);
        println!("{value}");
    } else {
        println!(
            "{}: {:?} ({} operations on {} keys, checked in {:.3} s)",
            file.display(),
            report.verdict,
            report.operations,
            report.keys,
            seconds
        );
        for violation in &report.violations {
            println!("\n{violation}");
        }
        if !report.unfinished_keys.is_empty() {
            println!(
                "decided by the refuted key; left unfinished: keys {:?}",
                report.unfinished_keys
            );
        }
        if !report.undecided_keys.is_empty() {
            println!(
                "undecided within {timeout_s} s: keys {:?}",
                report.undecided_keys
            );
        }
    }
    Ok(ExitCode::from(match report.verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable => 1,
        Verdict::Undecided => 2,
    }))
}
