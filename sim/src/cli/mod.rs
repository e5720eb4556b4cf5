//! Command-line parsing and the subcommands.

mod bench;
mod check;
#[cfg(feature = "bug-catalogue")]
mod hunt;
mod minimize;
mod replay;
mod sweep;
pub mod wallclock;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeSet;
use std::ops::Range;
use std::process::ExitCode;
use verity_sim::scenario::Scenario;
use verity_sim::{FaultKind, SimOptions};

/// Deterministic simulation testing for Verity: seeded chaos against real Raft nodes, with
/// safety, liveness and linearizability checks.
#[derive(Debug, Parser)]
#[command(name = "verity-sim", version)]
pub struct Command {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Run many seeds and report every failing one with the command that replays it.
    Run {
        /// Seeds to run, as `START..END` (end exclusive) or a single seed.
        #[arg(long, default_value = "0..1000", value_parser = parse_seeds)]
        seeds: Range<u64>,
        /// Run only every N-th seed, starting at the I-th: `I/N` (spread a sweep over machines).
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Run a scenario file over seeds; exit non-zero if any seed misses its expectations.
    Scenario {
        /// The scenario (TOML; see `scenarios/`).
        file: std::path::PathBuf,
        /// Seeds to run, as `START..END` (end exclusive) or a single seed (default: the seed the
        /// file pins, else 0..100).
        #[arg(long, value_parser = parse_seeds)]
        seeds: Option<Range<u64>>,
        /// Run only every N-th seed, starting at the I-th: `I/N`.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
    },
    /// Re-run one seed, printing its trace with virtual time stamps and its trace hash.
    Replay {
        /// The seed to replay.
        #[arg(long)]
        seed: u64,
        /// Replay a run of this scenario file (the cluster options are then ignored).
        #[arg(long)]
        scenario: Option<std::path::PathBuf>,
        /// Write the client history (JSON Lines, the shared history format) here.
        #[arg(long)]
        history: Option<std::path::PathBuf>,
        /// Write the simulation trace (JSON Lines) here.
        #[arg(long)]
        trace: Option<std::path::PathBuf>,
        /// Print only the summary and the hash, not the trace.
        #[arg(long)]
        quiet: bool,
        /// Write a picture of the run here: a self-contained HTML page with one lane per node
        /// (role, term, crashes, pauses, cuts), the faults, and the client operations by key.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check a history file for linearizability. Exit status: 0 linearizable, 1 not,
    /// 2 undecided within the timeout, 3 malformed file.
    Check {
        /// The history, in the shared JSON Lines format.
        file: std::path::PathBuf,
        /// Give up (verdict undecided) after this many seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
        /// Write a picture of the history here: a self-contained HTML page with each key's
        /// operations as bars on a time axis, a failing key's witness outlined.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// Switch on one catalogued bug and run swarm seeds until a check catches it
    /// (built with `--features bug-catalogue` only).
    #[cfg(feature = "bug-catalogue")]
    Hunt {
        /// List the catalogue, one bug a line: its name, then what it breaks.
        #[arg(long, conflicts_with_all = ["bug", "scorecard"])]
        list: bool,
        /// The bug to switch on.
        #[arg(long)]
        bug: Option<String>,
        /// Hunt every bug `--runs` times and print the median seeds and seconds to catch each.
        #[arg(long)]
        scorecard: bool,
        /// Hunts per bug for the scorecard.
        #[arg(long, default_value_t = 5)]
        runs: u64,
        /// Wall-clock budget per hunt, such as `60s`, `500ms` or `2m`.
        #[arg(long, default_value = "60s", value_parser = parse_duration_s)]
        budget: f64,
        /// The first seed to try.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Shrink a failing seed to the smallest run that still fails the same check, and write it
    /// as a scenario file (a regression test with one command).
    Minimize {
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Where to write the scenario (default: minimized-seed-SEED.toml).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Most variants to replay while shrinking.
        #[arg(long, default_value_t = 300)]
        max_replays: u64,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Write a generated wide history (many processes appending to a few keys) to standard
    /// output, in the shared JSON Lines format: linearizable by construction, or with one
    /// stale read planted on the last key.
    Generate {
        /// Concurrent processes.
        #[arg(long, default_value_t = 50)]
        processes: u64,
        /// Distinct keys.
        #[arg(long, default_value_t = 10)]
        keys: u64,
        /// Operations in total.
        #[arg(long, default_value_t = 2000)]
        ops: u64,
        /// Out of 1000 writes, how many end as `info` (and take effect later, or never).
        #[arg(long, default_value_t = 30)]
        info_per_mille: u64,
        /// Plant one stale read on the last key, making the history not linearizable.
        #[arg(long)]
        stale_read: bool,
        /// Open with a burst on key `k0` that is linearizable but too hard to search.
        #[arg(long)]
        hard_key: bool,
        /// The generator's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Measure simulator and checker throughput on this machine.
    Bench {
        /// Seeds of the standard 5-node swarm run to time.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
    },
}

/// The cluster, workload and fault options shared by `run` and `replay`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u64,
    /// Client operations in the chaos phase.
    #[arg(long, default_value_t = 200)]
    ops: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 4)]
    keys: u64,
    /// Fault kinds to inject, comma-separated (default: swarm, each seed draws its own set).
    #[arg(long, value_delimiter = ',', value_enum)]
    faults: Option<Vec<FaultKind>>,
    /// Switch on this catalogued bug in every node (`hunt --list` names them).
    #[cfg(feature = "bug-catalogue")]
    #[arg(long)]
    bug: Option<String>,
}

impl ClusterArgs {
    fn options(&self, seed: u64) -> anyhow::Result<SimOptions> {
        if !(1..=9).contains(&self.nodes) {
            bail!("--nodes {} is out of range: use 1 to 9", self.nodes);
        }
        if self.clients == 0 || self.keys == 0 {
            bail!("--clients and --keys must be at least 1");
        }
        Ok(SimOptions {
            seed,
            nodes: self.nodes,
            clients: self.clients,
            ops: self.ops,
            keys: self.keys,
            faults: self
                .faults
                .as_ref()
                .map(|kinds| kinds.iter().copied().collect::<BTreeSet<_>>()),
            #[cfg(feature = "bug-catalogue")]
            bug: self
                .bug
                .as_deref()
                .map(|name| {
                    verity_core::bugs::Bug::from_name(name).ok_or_else(|| {
                        anyhow::anyhow!(
                            "no catalogued bug named {name:?}; `hunt --list` names them"
                        )
                    })
                })
                .transpose()?,
            ..SimOptions::default()
        })
    }

    /// The flags that reproduce these options, for printed replay commands.
    fn flags(&self) -> String {
        let mut flags = format!(
            "--nodes {} --clients {} --ops {} --keys {}",
            self.nodes, self.clients, self.ops, self.keys
        );
        if let Some(kinds) = &self.faults {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            flags.push_str(&format!(" --faults {}", names.join(",")));
        }
        #[cfg(feature = "bug-catalogue")]
        if let Some(bug) = &self.bug {
            flags.push_str(&format!(" --bug {bug}"));
        }
        flags
    }
}

fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("{s:?} is not a seed: {e}"))
    };
    match text.split_once("..") {
        Some((start, end)) => {
            let (start, end) = (parse(start)?, parse(end)?);
            if start >= end {
                return Err(format!(
                    "empty seed range {start}..{end}: the end is exclusive"
                ));
            }
            Ok(start..end)
        }
        None => {
            let seed = parse(text)?;
            Ok(seed..seed + 1)
        }
    }
}

/// Parses a duration such as `2.5s`, `300ms`, `2m` or `1500us` into seconds.
#[cfg(feature = "bug-catalogue")]
fn parse_duration_s(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 2.5s or 300ms"))?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" | "" => 1.0,
        "m" => 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use us, ms, s or m"
            ));
        }
    };
    Ok(value * scale)
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (index, count) = text
        .split_once('/')
        .ok_or("expected I/N, for example 0/4")?;
    let index: u64 = index.parse().map_err(|e| format!("shard index: {e}"))?;
    let count: u64 = count.parse().map_err(|e| format!("shard count: {e}"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count}: need 0 <= I < N"));
    }
    Ok((index, count))
}

/// Runs the parsed command.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command.action {
        Action::Run {
            seeds,
            shard,
            cluster,
        } => sweep::run(seeds, shard, &cluster),
        Action::Scenario { file, seeds, shard } => {
            let scenario = Scenario::load(&file)?;
            let seeds = seeds.unwrap_or(match scenario.seed {
                Some(seed) => seed..seed + 1,
                None => 0..100,
            });
            let options = |seed| Ok(scenario.options(seed));
            let replay = |seed| {
                format!(
                    "verity-sim replay --scenario {} --seed {seed}",
                    file.display()
                )
            };
            let must_fail = scenario.options.expect.must_fail;
            sweep::sweep(
                seeds,
                shard,
                &sweep::Sweep {
                    options: &options,
                    replay: &replay,
                    must_fail,
                },
            )
        }
        Action::Replay {
            seed,
            scenario,
            history,
            trace,
            quiet,
            html,
            cluster,
        } => {
            let (options, command) = match scenario {
                Some(file) => (
                    Scenario::load(&file)?.options(seed),
                    format!(
                        "verity-sim replay --scenario {} --seed {seed}",
                        file.display()
                    ),
                ),
                None => (
                    cluster.options(seed)?,
                    format!("verity-sim replay --seed {seed} {}", cluster.flags()),
                ),
            };
            let files = replay::Files {
                history: history.as_deref(),
                trace: trace.as_deref(),
                html: html.as_deref(),
            };
            replay::run(options, &command, &files, quiet)
        }
        Action::Check {
            file,
            timeout,
            json,
            html,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()));
            check::run(&file, text, timeout, json, html.as_deref())
        }
        Action::Bench { seeds } => bench::run(seeds),
        Action::Generate {
            processes,
            keys,
            ops,
            info_per_mille,
            stale_read,
            hard_key,
            seed,
        } => {
            if processes == 0 || keys == 0 {
                bail!("--processes and --keys must be at least 1");
            }
            let shape = verity_sim::generate::Wide {
                processes,
                keys,
                operations: ops,
                info_per_mille,
                stale_read,
                hard_key,
            };
            print!(
                "{}",
                verity_sim::generate::wide_history(shape, seed).to_json_lines()
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::Minimize {
            seed,
            out,
            max_replays,
            cluster,
        } => {
            let out = out.unwrap_or_else(|| format!("minimized-seed-{seed}.toml").into());
            minimize::run(
                cluster.options(seed)?,
                &format!("verity-sim replay --seed {seed} {}", cluster.flags()),
                &out,
                max_replays,
            )
        }
        #[cfg(feature = "bug-catalogue")]
        Action::Hunt {
            list,
            bug,
            scorecard,
            runs,
            budget,
            first_seed,
            cluster,
        } => match (list, bug, scorecard) {
            (true, _, _) => hunt::list(),
            (_, _, true) => hunt::scorecard(&cluster, runs, budget),
            (_, Some(bug), _) => hunt::run(&bug, &cluster, first_seed, budget),
            (false, None, false) => bail!("say --list, --bug NAME or --scorecard"),
        },
    }
}
