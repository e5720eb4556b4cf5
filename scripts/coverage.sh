#!/usr/bin/env bash
# Line coverage of core/ and engine/ by a standard swarm sweep of the simulator alone (no unit
# test): what the simulator never executes is what it cannot find bugs in. Prints the summary
# per file and writes the uncovered lines to coverage/uncovered.txt and an HTML report to
# coverage/html/. Takes a few minutes (an instrumented build, then the sweep).
#
#   scripts/coverage.sh            # 300 seeds on 3 nodes and 300 on 5
#   SEEDS=1000 scripts/coverage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-300}
command -v cargo-llvm-cov >/dev/null || cargo install --locked cargo-llvm-cov
rustup component add llvm-tools >/dev/null 2>&1 || true
ignore='(sim|net|node|tests|fuzz)/|/\.cargo/|/rustc/'
cargo llvm-cov clean --workspace
for nodes in 3 5; do
  cargo llvm-cov run --no-report --release -p verity-sim --bin verity-sim -- \
    run --seeds "0..$seeds" --nodes "$nodes" >/dev/null
done
mkdir -p coverage
cargo llvm-cov report --release --ignore-filename-regex "$ignore" --summary-only
cargo llvm-cov report --release --ignore-filename-regex "$ignore" --show-missing-lines \
  | sed -n '/Uncovered Lines:/,$p' > coverage/uncovered.txt
cargo llvm-cov report --release --ignore-filename-regex "$ignore" --html --output-dir coverage
echo "uncovered lines: coverage/uncovered.txt; report: coverage/html/index.html"
