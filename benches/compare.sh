#!/usr/bin/env bash
# Runs hoop's benches against tokio in one go and renders the results:
# benches/results/results.md (table) and benches/results/chart.svg (the README's chart).
# The machine should be otherwise idle; numbers are compared as ratios within this run.
#   benches/compare.sh            # criterion micro-benches (runtime, fs) + echo load, ~10 min
#   QUICK=1 benches/compare.sh    # shorter criterion runs (1 s measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
crit_args=()
if [[ "${QUICK:-}" == 1 ]]; then
    crit_args=(--warm-up-time 1 --measurement-time 1)
fi
cargo bench --bench runtime -- "${crit_args[@]}"
cargo bench --bench fs -- "${crit_args[@]}"
cargo bench --bench echo -- --secs "${ECHO_SECS:-3}" --rounds "${ECHO_ROUNDS:-3}"
cargo bench --bench report
