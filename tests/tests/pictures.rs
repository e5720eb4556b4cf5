//! The simulator's pictures (`verity-sim check --html`, `verity-sim replay --html`): each
//! page loads in headless Chromium and draws without a script error, fetches nothing, and
//! shows what it must: a failing key's witness, node lanes with crashes and cuts, a
//! catalogued bug's failure.

use std::path::{Path, PathBuf};
use verity_sim::checker::{Budget, Verdict, check};
use verity_sim::generate::{Wide, wide_history};
use verity_sim::picture::{check_page, run_page};
use verity_sim::runner::run_catching_panics;
use verity_sim::scenario::Scenario;
use verity_tests::browser::{render, root_attribute};

/// Writes `html` to a temporary file and loads it: the DOM after its script ran.
fn load(html: &str, dir: &Path) -> String {
    assert_self_contained(html);
    let path = dir.join("page.html");
    std::fs::write(&path, html).unwrap();
    let dom = render(&format!("file://{}", path.display()), 2000);
    assert_eq!(root_attribute(&dom, "data-error"), None, "script error");
    dom
}

/// Nothing in the page makes the browser fetch: no source or link attributes, no fetch
/// calls, no imports. (The SVG namespace URI is a name, not a fetch.)
fn assert_self_contained(html: &str) {
    for needle in [
        " src=",
        " href=",
        "fetch(",
        "XMLHttpRequest",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(needle), "the page refers to {needle}");
    }
}

fn drawn(dom: &str) -> usize {
    root_attribute(dom, "data-rendered")
        .expect("the page marks itself drawn")
        .parse()
        .unwrap()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

#[test]
fn a_failing_history_check_draws_every_operation_and_outlines_its_witness() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Wide {
        processes: 50,
        keys: 10,
        operations: 1000,
        info_per_mille: 30,
        stale_read: true,
        hard_key: true,
    };
    let ops = wide_history(shape, 1).operations().unwrap();
    let report = check(&ops, &mut Budget::steps(1_000_000));
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let dom = load(&check_page("wide.jsonl", &ops, &report, 0.5), dir.path());
    assert_eq!(drawn(&dom), ops.len());
    assert!(dom.contains("not linearizable: key k9"));
    let witness = report.violations[0].operations.len();
    assert_eq!(
        dom.matches("op-witness\"><title>").count(),
        witness,
        "outlined bars"
    );
    assert!(dom.contains("left unfinished: another key decided the history"));
}

#[test]
fn a_run_draws_one_lane_per_node_with_its_crashes_and_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Scenario::load(&scenario("figure8.toml"))
        .unwrap()
        .options(0);
    options.keep_trace = true;
    let outcome = run_catching_panics(options).unwrap();
    let dom = load(
        &run_page(
            &outcome,
            "verity-sim replay --scenario figure8.toml --seed 0",
            "seed 0".into(),
        ),
        dir.path(),
    );
    assert!(drawn(&dom) > 100);
    for node in 1..=5 {
        assert!(dom.contains(&format!(">n{node}</text>")), "lane of n{node}");
    }
    for class in [
        "role-leader",
        "role-follower",
        "down",
        "unheard",
        "fault-mark",
    ] {
        assert!(
            dom.contains(&format!("class=\"{class}\"")),
            "no {class} drawn"
        );
    }
}

#[test]
fn a_catalogued_bug_gives_a_page_that_shows_its_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario("bugs/stale-read.toml");
    let loaded = Scenario::load(&file).unwrap();
    let mut options = loaded.options(loaded.seed.unwrap());
    options.keep_trace = true;
    let outcome = run_catching_panics(options).unwrap();
    assert!(outcome.failure.is_some(), "the bug is caught");
    let dom = load(
        &run_page(
            &outcome,
            "verity-sim replay --scenario bugs/stale-read.toml",
            "stale-read".into(),
        ),
        dir.path(),
    );
    assert!(dom.contains("FAILED [linearizability]"));
    assert!(dom.contains("not linearizable: the outlined operations cannot be ordered"));
    assert!(dom.matches("op-witness\"><title>").count() > 0);
}
