//! `verity-sim`: run, replay and check simulated Verity clusters.
//!
//! This binary is the only place in the simulator that reads a wall clock
//! ([`cli::wallclock`]), for throughput figures and the checker's `--timeout`. Nothing it reads
//! feeds back into a simulation, so runs stay deterministic.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = cli::Command::parse();
    match cli::run(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
