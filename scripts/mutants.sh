#!/usr/bin/env bash
# Mutation score of the simulator over core/src/raft/ (or the files given): every mutant
# cargo-mutants makes of the core is judged by one short swarm sweep
# (sim/tests/mutation_sweep.rs) and nothing else. Long (about a minute per mutant on two
# cores), so it is not part of CI. Results land in mutants.out/ (caught.txt, missed.txt,
# timeout.txt, unviable.txt).
#
#   scripts/mutants.sh                       # all of core/src/raft/
#   scripts/mutants.sh --shard 0/3           # a third of them
#   scripts/mutants.sh -f core/src/log.rs    # other files
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
files=(-f 'core/src/raft/*.rs')
for arg in "$@"; do
  if [ "$arg" = "-f" ] || [ "$arg" = "--file" ]; then files=(); fi
done
# The baseline is skipped (cargo-mutants would run it in the mutated package, which has no
# such test); the timeouts stand in for the ones it would derive from it: the sweep takes
# about 11 s, so 120 s means a mutant that hangs or crawls.
exec cargo mutants --test-package verity-sim --baseline skip --timeout 120 --build-timeout 600 \
  "${files[@]}" "$@" -- --test mutation_sweep -- --ignored
