#!/usr/bin/env bash
# Where the cycles go: perf (cpu-clock sampling, works in VMs without PMU counters) of the echo
# servers and the file-read benches, grouped by benches/profiles/categorize.py into
# benches/profiles/*.txt. Needs perf (`apt-get install linux-perf`; the script installs it).
#   benches/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
out=benches/profiles
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
cargo bench --bench echo --no-run
cargo bench --bench fs --no-run
echo_bin=$(ls -t target/release/deps/echo-* | grep -v '\.d$' | head -1)
fs_bin=$(ls -t target/release/deps/fs-* | grep -v '\.d$' | head -1)
{
    echo "# echo servers: self time by category (perf cpu-clock, server thread only)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for scenario in 64x64 500x1024; do
        for server in hoop tokio; do
            perf record -q -F 2000 -e cpu-clock -g -o "$data/p" -- \
                "$echo_bin" --only "$server" --scenario "$scenario" --secs 3 --rounds 1 |
                grep " x " | grep -v "conns x size\|ping-pong" || true
            echo "## $server, $scenario"
            python3 $out/categorize.py "$data/p" "$server-srv"
        done
    done
} > $out/echo.txt 2>&1
{
    echo "# 4 KiB random reads, page cache: self time by category (whole process)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for id in read_4k_random_qd1/hoop-io_uring read_4k_random_qd1/std-pread read_4k_random_qd32/hoop-io_uring; do
        perf record -q -F 4000 -e cpu-clock -g -o "$data/p" -- \
            "$fs_bin" --bench "$id" --profile-time 4 >/dev/null 2>&1
        echo "## $id"
        comm=${fs_bin##*/}
        python3 $out/categorize.py "$data/p" "${comm:0:15}" | head -9 || true
        echo "top symbols:"
        perf report -i "$data/p" --no-children --sort sym --stdio -g none 2>/dev/null |
            grep -v "^#" | grep "%" | head -8 || true
    done
} > $out/fs_read.txt 2>&1
cat $out/echo.txt $out/fs_read.txt
