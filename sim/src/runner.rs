//! Running seeds as a sweep does: a panic inside a run (an assertion in the core or the
//! simulator firing) becomes that run's failure instead of ending the process.

use crate::{RunOutcome, SimOptions, Simulation};
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Routes panic messages to [`run_catching_panics`] instead of stderr, for the whole process.
pub fn capture_panics() {
    panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("panic: {info}")));
    }));
}

/// Runs one seed; a panic is returned as `Err` with its message (and location, once
/// [`capture_panics`] is installed).
pub fn run_catching_panics(options: SimOptions) -> Result<RunOutcome, String> {
    panic::catch_unwind(AssertUnwindSafe(|| Simulation::new(options).run())).map_err(|payload| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| format!("panic: {s}"))
            })
            .or_else(|| {
                payload
                    .downcast_ref::<String>()
                    .map(|s| format!("panic: {s}"))
            })
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// What a bug hunt found.
#[cfg(feature = "bug-catalogue")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catch {
    /// The failing seed.
    pub seed: u64,
    /// Seeds run, the failing one included.
    pub seeds: u64,
    /// The check that failed (`assertion` for a panic).
    pub check: String,
    /// Its message.
    pub message: String,
}

/// Runs `template` with `bug` switched on, for seeds `first_seed..first_seed + max_seeds`,
/// until a check fails; `should_stop` is asked before each seed.
#[cfg(feature = "bug-catalogue")]
pub fn hunt(
    bug: verity_core::bugs::Bug,
    template: &SimOptions,
    first_seed: u64,
    max_seeds: u64,
    should_stop: &dyn Fn() -> bool,
) -> Option<Catch> {
    for seed in first_seed..first_seed.saturating_add(max_seeds) {
        if should_stop() {
            return None;
        }
        let options = SimOptions {
            seed,
            bug: Some(bug),
            ..template.clone()
        };
        let (check, message) = match run_catching_panics(options) {
            Ok(outcome) => match outcome.failure {
                Some(failure) => (failure.check().to_string(), failure.to_string()),
                None => continue,
            },
            Err(panic) => ("assertion".to_string(), panic),
        };
        return Some(Catch {
            seed,
            seeds: seed - first_seed + 1,
            check,
            message,
        });
    }
    None
}
