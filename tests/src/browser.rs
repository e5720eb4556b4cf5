//! Headless Chromium for tests of the HTML pages: the simulator's pictures and the node's
//! status page. Chromium is installed by `scripts/install-test-tools` (which `scripts/test`
//! and `.ci/run` run); without it these tests fail and say so.
//!
//! A page under test marks its root element with `data-rendered` (how many shapes or rows it
//! drew) and, on any script error, `data-error` (the message). [`render`] loads a page,
//! lets its timers run for a while of virtual time, and returns the DOM as it then stands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on the path.
#[must_use]
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new("which")
            .arg(name)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return PathBuf::from(name);
        }
    }
    panic!(
        "no chromium on the PATH: run scripts/install-test-tools (Debian package chromium), or set CHROMIUM"
    )
}

/// Flags for a headless run on a machine with no network but loopback: no sandbox (tests
/// may run as root), no GPU, no background connections, a fresh profile.
fn headless(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(ToString::to_string)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// Runs Chromium on `url` with `extra` flags, bounded in time; its standard output.
fn run(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("a temporary profile directory");
    let mut child = Command::new(chromium())
        .args(headless(profile.path()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    // Drained on a thread: a page's DOM outgrows the pipe's buffer.
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting for chromium").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader
        .join()
        .expect("the reader thread")
        .expect("chromium's output is text")
}

/// Loads `url`, lets its scripts and timers run for `virtual_ms` of virtual time, and
/// returns the DOM.
#[must_use]
pub fn render(url: &str, virtual_ms: u64) -> String {
    run(
        url,
        &[
            format!("--virtual-time-budget={virtual_ms}"),
            "--dump-dom".to_string(),
        ],
    )
}

/// Loads `url` in a window of `width` × `height` and saves a screenshot as PNG at `png`.
pub fn screenshot(url: &str, width: u32, height: u32, png: &Path) {
    run(
        url,
        &[
            format!("--window-size={width},{height}"),
            "--virtual-time-budget=3000".to_string(),
            format!("--screenshot={}", png.display()),
        ],
    );
    assert!(png.exists(), "chromium wrote no screenshot of {url}");
}

/// The value of attribute `name` on the page's root element, from a dumped DOM.
#[must_use]
pub fn root_attribute(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<html")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}
