#!/usr/bin/env bash
# Runs hoop's benches against tokio, the other io_uring runtimes, fio and nginx in one go and
# renders the results: benches/results/results.md (tables) and benches/results/chart.svg (the
# README's chart). The machine should be otherwise idle; numbers are compared as ratios within
# this run.
#   benches/compare.sh            # everything, ~20 min
#   QUICK=1 benches/compare.sh    # shorter criterion runs (1 s measurement)
#   PEERS=0 benches/compare.sh    # without monoio/compio (benches/peers is not built)
# Installs what it needs beyond cargo if missing (Debian): nginx-light (download, small_files),
# wrk (small_files, hyper), nghttp2-client (h2load: hyper), fio (direct).
set -euo pipefail
cd "$(dirname "$0")/.."
crit_args=()
if [[ "${QUICK:-}" == 1 ]]; then
    crit_args=(--warm-up-time 1 --measurement-time 1)
fi
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v fio >/dev/null || missing+=(fio)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } ||
        echo "compare.sh: could not install ${missing[*]}; their rows will be missing" >&2
fi
peers_args=()
if [[ "${PEERS:-1}" == 1 ]]; then
    cargo build --release --manifest-path benches/peers/Cargo.toml
    peers_args=(--peers benches/peers/target/release/hoop-peers)
fi
cargo bench --bench runtime -- "${crit_args[@]}"
cargo bench --bench fs -- "${crit_args[@]}"
cargo bench --bench echo -- --secs "${ECHO_SECS:-3}" --rounds "${ECHO_ROUNDS:-5}" "${peers_args[@]}"
if [[ "${PEERS:-1}" == 1 ]]; then
    # Every server a process, the load from benches/peers' generator.
    cargo build --release --example echo
    cargo bench --bench echo_outside -- --secs "${ECHO_SECS:-3}" --rounds "${ECHO_ROUNDS:-3}"
fi
cargo bench --features hyper --bench hyper -- --secs "${HYPER_SECS:-3}" --rounds "${HYPER_ROUNDS:-3}"
cargo build --release --example fileserver
cargo bench --bench download -- --rounds "${DOWNLOAD_ROUNDS:-11}"
cargo bench --bench small_files -- --rounds "${SMALL_ROUNDS:-3}"
cargo bench --bench fsread -- --rounds "${FSREAD_ROUNDS:-3}"
cargo bench --bench direct -- --rounds "${DIRECT_ROUNDS:-3}"
cargo bench --bench recv_ring -- --rounds "${RECV_RING_ROUNDS:-3}"
cargo bench --bench idle
rm -f target/hoop-bench/peers.md
if [[ "${PEERS:-1}" == 1 ]]; then
    # The file benches/fs.rs created (1 GiB, page-cached).
    benches/peers/target/release/hoop-peers fsread --file target/bench-data/random-read.bin \
        --secs 2 --rounds 3 --out target/hoop-bench/peers.md
fi
cargo bench --bench report
