//! Pictures of what happened, as self-contained HTML pages (no network fetches: the data is
//! embedded as JSON and drawn by an inline script as SVG).
//!
//! - [`check_page`]: a checked history, one band per key, each operation a bar from its
//!   invocation to its completion (an operation of unknown outcome runs on to the end). A
//!   key that is not linearizable comes first, its witness outlined in red and the rest of
//!   its operations dimmed.
//! - [`run_page`]: a simulated run: one lane per node showing its role and term over virtual
//!   time, when it was down or paused and when it was cut off from peers, the faults as marks,
//!   and below, on the same time axis, the run's client operations by key.
//!
//! The page marks its root element with `data-rendered` (the number of shapes drawn) once
//! drawn, and with `data-error` if any script error happened, for tests in a headless browser.

use crate::checker::{Report, Verdict};
use crate::history::{OpOutcome, Operation};
use crate::simulation::{Failure, RunOutcome};
use crate::trace::{TraceEvent, What};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

const TEMPLATE: &str = include_str!("picture.html");

/// Operations drawn at most; the failing keys are always drawn whole.
const MAX_DRAWN_OPS: usize = 20_000;

/// The page's data, as the script reads it.
#[derive(Serialize)]
struct Picture {
    title: String,
    verdict: String,
    verdict_class: &'static str,
    summary: Vec<String>,
    time_unit: &'static str,
    start: f64,
    end: f64,
    nodes: Vec<NodeLane>,
    faults: Vec<Mark>,
    keys: Vec<KeyLane>,
    omitted: usize,
}

#[derive(Serialize)]
struct NodeLane {
    name: String,
    roles: Vec<Span>,
    conditions: Vec<Span>,
}

#[derive(Serialize)]
struct Span {
    from: f64,
    to: f64,
    class: String,
    label: String,
    text: String,
}

#[derive(Serialize)]
struct Mark {
    at: f64,
    text: String,
}

#[derive(Serialize)]
struct KeyLane {
    key: String,
    failing: bool,
    has_witness: bool,
    note: String,
    rows: usize,
    ops: Vec<Bar>,
}

#[derive(Serialize)]
struct Bar {
    row: usize,
    from: f64,
    to: f64,
    open: bool,
    class: &'static str,
    witness: bool,
    text: String,
}

/// What a page says at its top.
struct Heading {
    /// The page title, such as the file or the seed.
    title: String,
    /// The verdict, one line.
    verdict: String,
    /// Whether the verdict is a failure (drawn red), a pass (green) or neither.
    outcome: Outcome,
    /// Further lines: counts, the replay command.
    summary: Vec<String>,
}

/// How the verdict is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// A check failed.
    Failed,
    /// Every check passed.
    Passed,
    /// Neither (undecided).
    Undecided,
}

/// The page of a checked history: `ops` as `report` judged them, on their recorded times
/// (milliseconds) if every operation has them, else on their positions in the history.
fn history_page(heading: Heading, ops: &[Operation], report: &Report) -> String {
    let timed = ops.iter().all(|op| {
        op.invoke_time.is_some() && (op.complete_position.is_none() || op.complete_time.is_some())
    });
    let (start, end) = if timed {
        let times = ops
            .iter()
            .flat_map(|op| [op.invoke_time, op.complete_time])
            .flatten()
            .map(ms);
        let (lo, hi) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
            (lo.min(t), hi.max(t))
        });
        if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
    } else {
        let last = ops
            .iter()
            .flat_map(|op| [Some(op.invoke_position), op.complete_position])
            .flatten()
            .max()
            .unwrap_or(0);
        (0.0, last as f64 + 1.0)
    };
    let margin = (end - start).max(1e-6) * 0.02;
    let (keys, omitted) = key_lanes(ops, Some(report), timed, end + margin);
    render(&Picture {
        title: heading.title,
        verdict: heading.verdict,
        verdict_class: class_of(heading.outcome),
        summary: heading.summary,
        time_unit: if timed { "ms" } else { "event" },
        start,
        end: end + margin,
        nodes: Vec::new(),
        faults: Vec::new(),
        keys,
        omitted,
    })
}

/// The page of a simulated run: its trace events (kept by the run), its client operations
/// (times in virtual nanoseconds), the linearizability report if the history was checked,
/// and the run's end in virtual microseconds.
fn run_timeline_page(
    heading: Heading,
    trace: &[TraceEvent],
    ops: &[Operation],
    report: Option<&Report>,
    end_us: u64,
) -> String {
    let end = end_us as f64 / 1000.0;
    let (keys, omitted) = key_lanes(ops, report, true, end);
    let (nodes, faults) = node_lanes(trace, end);
    render(&Picture {
        title: heading.title,
        verdict: heading.verdict,
        verdict_class: class_of(heading.outcome),
        summary: heading.summary,
        time_unit: "ms",
        start: 0.0,
        end,
        nodes,
        faults,
        keys,
        omitted,
    })
}

fn class_of(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Failed => "bad",
        Outcome::Passed => "ok",
        Outcome::Undecided => "undecided",
    }
}

/// Nanoseconds as milliseconds.
fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The page with `picture` embedded. `</` is escaped so that no string in the data can close
/// the script element that holds it.
fn render(picture: &Picture) -> String {
    let json = serde_json::to_string(picture)
        .expect("the picture is plain data")
        .replace("</", "<\\/");
    TEMPLATE.replacen("/*DATA*/", &json, 1)
}

/// One band per key: the failing keys first, each operation a bar packed into the first row
/// free at its start. Returns the bands and how many operations were left out.
fn key_lanes(
    ops: &[Operation],
    report: Option<&Report>,
    timed: bool,
    end: f64,
) -> (Vec<KeyLane>, usize) {
    let mut failing: BTreeSet<&str> = BTreeSet::new();
    let mut witness: BTreeSet<usize> = BTreeSet::new();
    let (mut undecided, mut unfinished): (BTreeSet<&str>, BTreeSet<&str>) = Default::default();
    if let Some(report) = report {
        for violation in &report.violations {
            failing.extend(violation.key.split('+'));
            failing.insert(&violation.key);
            witness.extend(&violation.invoked_at);
        }
        undecided.extend(report.undecided_keys.iter().flat_map(|k| k.split('+')));
        unfinished.extend(report.unfinished_keys.iter().flat_map(|k| k.split('+')));
    }
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut order: Vec<&str> = by_key.keys().copied().collect();
    order.sort_by_key(|key| !failing.contains(key));
    let (mut lanes, mut drawn, mut omitted) = (Vec::new(), 0usize, 0usize);
    for key in order {
        let key_ops = &by_key[key];
        let is_failing = failing.contains(key);
        if !is_failing && drawn + key_ops.len() > MAX_DRAWN_OPS {
            omitted += key_ops.len();
            continue;
        }
        drawn += key_ops.len();
        let note = if is_failing {
            "not linearizable: the outlined operations cannot be ordered"
        } else if undecided.contains(key) {
            "undecided within the budget"
        } else if unfinished.contains(key) {
            "left unfinished: another key decided the history"
        } else {
            ""
        };
        let mut bars: Vec<Bar> = key_ops
            .iter()
            .map(|op| bar(op, timed, end, witness.contains(&op.invoke_position)))
            .collect();
        bars.sort_by(|a, b| a.from.total_cmp(&b.from));
        let mut row_ends: Vec<f64> = Vec::new();
        for bar in &mut bars {
            let until = if bar.open { f64::INFINITY } else { bar.to };
            match row_ends.iter().position(|&busy| busy < bar.from) {
                Some(row) => {
                    bar.row = row;
                    row_ends[row] = until;
                }
                None => {
                    bar.row = row_ends.len();
                    row_ends.push(until);
                }
            }
        }
        lanes.push(KeyLane {
            key: key.to_string(),
            failing: is_failing,
            has_witness: bars.iter().any(|b| b.witness),
            note: note.to_string(),
            rows: row_ends.len(),
            ops: bars,
        });
    }
    (lanes, omitted)
}

fn bar(op: &Operation, timed: bool, end: f64, witness: bool) -> Bar {
    let (from, to) = if timed {
        (
            op.invoke_time.map_or(0.0, ms),
            op.complete_time.map_or(end, ms),
        )
    } else {
        (
            op.invoke_position as f64,
            op.complete_position.map_or(end, |at| at as f64),
        )
    };
    Bar {
        row: 0,
        from,
        to,
        open: op.complete_position.is_none(),
        class: match op.outcome {
            OpOutcome::Fail => "fail",
            OpOutcome::Info => "info",
            OpOutcome::Ok(_) | OpOutcome::Each(_) => "ok",
        },
        witness,
        text: op.to_string(),
    }
}

/// Spans still open for one node: its role since when, its condition since when.
#[derive(Default)]
struct Open {
    role: Option<(f64, &'static str, u64)>,
    running: Option<(f64, &'static str)>,
    unheard: Option<(f64, Vec<u64>)>,
}

/// One lane per node from the trace's node states and conditions, and the faults as marks.
fn node_lanes(trace: &[TraceEvent], end: f64) -> (Vec<NodeLane>, Vec<Mark>) {
    let mut lanes: BTreeMap<u64, NodeLane> = BTreeMap::new();
    let mut open: BTreeMap<u64, Open> = BTreeMap::new();
    let mut faults = Vec::new();
    let lane = |lanes: &mut BTreeMap<u64, NodeLane>, node: u64| {
        lanes.entry(node).or_insert_with(|| NodeLane {
            name: format!("n{node}"),
            roles: Vec::new(),
            conditions: Vec::new(),
        });
    };
    for event in trace {
        let at = event.time_us as f64 / 1000.0;
        match &event.what {
            What::NodeState {
                node, role, term, ..
            } => {
                lane(&mut lanes, *node);
                let state = open.entry(*node).or_default();
                // Node states also change with the commit index; a span is one role in one term.
                if state.role.is_some_and(|(_, r, t)| r == *role && t == *term) {
                    continue;
                }
                if let Some(span) = state.role.take() {
                    close_role(lanes.get_mut(node).expect("made above"), *node, span, at);
                }
                state.role = Some((at, role, *term));
            }
            What::Condition {
                node,
                running,
                unheard,
            } => {
                lane(&mut lanes, *node);
                let state = open.entry(*node).or_default();
                let node_lane = lanes.get_mut(node).expect("made above");
                if state.running.map(|(_, r)| r) != Some(running) {
                    if let Some(span) = state.running.take() {
                        close_condition(node_lane, *node, span, at);
                    }
                    state.running = Some((at, running));
                }
                if state.unheard.as_ref().map(|(_, u)| u) != Some(unheard) {
                    if let Some(span) = state.unheard.take() {
                        close_unheard(node_lane, *node, span, at);
                    }
                    state.unheard = Some((at, unheard.clone()));
                }
            }
            What::Fault { description } => faults.push(Mark {
                at,
                text: format!("{at:.3} ms: {description}"),
            }),
            What::Deliver { .. } | What::Invoke { .. } | What::Complete { .. } => {}
        }
    }
    for (node, state) in open {
        let node_lane = lanes.get_mut(&node).expect("opened with its lane");
        if let Some(span) = state.role {
            close_role(node_lane, node, span, end);
        }
        if let Some(span) = state.running {
            close_condition(node_lane, node, span, end);
        }
        if let Some(span) = state.unheard {
            close_unheard(node_lane, node, span, end);
        }
    }
    (lanes.into_values().collect(), faults)
}

fn close_role(lane: &mut NodeLane, node: u64, (from, role, term): (f64, &str, u64), to: f64) {
    let class = match role {
        "leader" | "follower" | "candidate" => role,
        "pre-candidate" => "candidate",
        _ => "other",
    };
    lane.roles.push(Span {
        from,
        to,
        class: class.to_string(),
        label: if role == "leader" {
            format!("leader t{term}")
        } else {
            format!("t{term}")
        },
        text: format!("n{node} {role}, term {term}, {from:.3} to {to:.3} ms"),
    });
}

fn close_condition(lane: &mut NodeLane, node: u64, (from, running): (f64, &str), to: f64) {
    if running != "running" {
        lane.conditions.push(Span {
            from,
            to,
            class: running.to_string(),
            label: String::new(),
            text: format!("n{node} {running}, {from:.3} to {to:.3} ms"),
        });
    }
}

fn close_unheard(lane: &mut NodeLane, node: u64, (from, unheard): (f64, Vec<u64>), to: f64) {
    if !unheard.is_empty() {
        let names: Vec<String> = unheard.iter().map(|n| format!("n{n}")).collect();
        lane.conditions.push(Span {
            from,
            to,
            class: "unheard".to_string(),
            label: String::new(),
            text: format!(
                "n{node} hears nothing from {}, {from:.3} to {to:.3} ms",
                names.join(", ")
            ),
        });
    }
}

/// The page of a replayed run (kept with its trace events): `command` replays it, `summary`
/// is its one-line summary.
#[must_use]
pub fn run_page(outcome: &RunOutcome, command: &str, summary: String) -> String {
    let report = match &outcome.failure {
        Some(Failure::Linearizability { report }) => Some(report.as_ref()),
        _ => None,
    };
    let (verdict, result) = match &outcome.failure {
        Some(failure) => (
            format!("FAILED [{}]: {failure}", failure.check()),
            Outcome::Failed,
        ),
        None => (
            format!("all checks passed (linearizability: {:?})", outcome.verdict),
            Outcome::Passed,
        ),
    };
    let ops = outcome
        .history
        .operations()
        .expect("the simulator records well-formed histories");
    run_timeline_page(
        Heading {
            title: command.to_string(),
            verdict,
            outcome: result,
            summary: vec![
                summary,
                format!("trace hash: {:016x}", outcome.trace.hash()),
            ],
        },
        outcome.trace.events().unwrap_or_default(),
        &ops,
        report,
        outcome.stats.virtual_time_us,
    )
}

/// The page of a history check: `title` names the history, `seconds` is how long the check
/// took.
#[must_use]
pub fn check_page(title: &str, ops: &[Operation], report: &Report, seconds: f64) -> String {
    let (verdict, outcome) = match report.verdict {
        Verdict::Linearizable => ("linearizable".to_string(), Outcome::Passed),
        Verdict::NotLinearizable => (
            format!(
                "not linearizable: key {} ({} operations cannot be ordered)",
                report.violations[0].key,
                report.violations[0].operations.len()
            ),
            Outcome::Failed,
        ),
        Verdict::Undecided => (
            format!("undecided: keys {:?}", report.undecided_keys),
            Outcome::Undecided,
        ),
    };
    history_page(
        Heading {
            title: title.to_string(),
            verdict,
            outcome,
            summary: vec![format!(
                "{} operations on {} keys, checked in {seconds:.3} s",
                report.operations, report.keys
            )],
        },
        ops,
        report,
    )
}
