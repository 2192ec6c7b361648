#!/usr/bin/env bash
# Where the cycles go: perf (cpu-clock sampling, works in VMs without PMU counters) of every
# workload of the comparison — echo servers, page-cache reads and statx, the 1 GiB download,
# O_DIRECT reads, the pipe round trip — grouped by benches/profiles/categorize.py into
# benches/profiles/*.txt. Needs perf (`apt-get install linux-perf`; the script installs it),
# and nginx/fio for their rows (benches/compare.sh installs them).
#   benches/profile.sh [echo echo_outside hyper fs download direct runtime]   (default: all)
#
# cpu-clock samples are taken by a timer interrupt, so in a VM time spent with interrupts
# disabled is charged to where they are re-enabled (`_raw_spin_unlock_irqrestore`,
# `handle_softirqs`): the categories are right, single kernel symbols less so.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
out=benches/profiles
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
parts=${*:-echo echo_outside hyper fs download direct runtime}
want() { [[ " $parts " == *" $1 "* ]]; }
bin() { cargo bench "${@:2}" --bench "$1" --no-run 2>&1 | sed -n "s/.*Executable benches\/$1.rs (\(.*\))/\1/p"; }
# Every thread but the idle loop and perf (system-wide recordings of CPU 0, where the load
# benches pin the measured side; or all threads of a process, io-wq threads included).
busy="-swapper,perf,perf-exec"

if want echo; then
echo_bin=$(bin echo)
{
    echo "# echo servers: self time by category (perf cpu-clock, server thread only)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for scenario in 64x64 500x1024; do
        for server in hoop tokio; do
            perf record -q -F 2000 -e cpu-clock -g -o "$data/p" -- \
                "$echo_bin" --only "$server" --scenario "$scenario" --secs 3 --rounds 1 |
                grep " x " | grep -v "conns x size\|ping-pong" || true
            echo "## $server, $scenario"
            python3 $out/categorize.py "$data/p" "$server-srv" 8
        done
    done
} > $out/echo.txt 2>&1
cat $out/echo.txt
fi

if want echo_outside; then
# The servers of benches/echo_outside.rs as processes on CPU 0, benches/peers' load generator
# on CPU 1; CPU 0 recorded system-wide.
cargo build --release --example echo
cargo build --release --manifest-path benches/peers/Cargo.toml
peers=benches/peers/target/release/hoop-peers
{
    echo "# echo from outside: self time by category (perf cpu-clock on CPU 0: the server process)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F); load: hoop-peers load (requests, p50/p99, generator sleeps and CPU)"
    for scenario in "64 64" "64 4096" "500 1024"; do
        set -- $scenario
        for server in hoop hoop-owned monoio tokio; do
            case $server in
                hoop) taskset -c 0 target/release/examples/echo --workers 1 --addr 127.0.0.1:0 >"$data/addr" & ;;
                hoop-owned) taskset -c 0 target/release/examples/echo --workers 1 --owned --addr 127.0.0.1:0 >"$data/addr" & ;;
                monoio | tokio) taskset -c 0 $peers echo $server >"$data/addr" & ;;
            esac
            pid=$!
            sleep 0.5
            addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$data/addr" | head -1)
            echo "## $server, $1 x $2 B"
            perf record -q -F 2000 -e cpu-clock -g -C 0 -o "$data/p" -- \
                taskset -c 1 $peers load --addr "$addr" --conns "$1" --size "$2" --secs 3 | tail -1
            kill $pid
            wait $pid 2>/dev/null || true
            python3 $out/categorize.py "$data/p" "$busy" 12
            # The client's wake-up, paid by the server's send on loopback.
            echo "of which under sock_def_readable (waking the client):"
            perf report -i "$data/p" --no-children --symbol-filter=_raw_spin_unlock_irqrestore \
                -g caller,0.5,callee --stdio 2>/dev/null | grep -m1 -o "[0-9.]*%--sock_def_readable" || true
        done
    done
} > $out/echo_outside.txt 2>&1
cat $out/echo_outside.txt
fi

if want hyper; then
hyper_bin=$(bin hyper --features hyper)
{
    echo "# hyper GET /hello.json: self time by category (perf cpu-clock, server thread only)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for load in h1 h2; do
        for server in hoop tokio; do
            perf record -q -F 2000 -e cpu-clock -g -o "$data/p" -- \
                "$hyper_bin" --only "$server" --load "$load" --secs 4 --rounds 1 | grep "HTTP" || true
            echo "## $server, $load"
            python3 $out/categorize.py "$data/p" "$server-srv" 8
        done
    done
} > $out/hyper.txt 2>&1
cat $out/hyper.txt
fi

if want fs; then
fs_bin=$(bin fs)
{
    echo "# 4 KiB random reads, page cache: self time by category (whole process)"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for id in read_4k_random_qd1/hoop-io_uring read_4k_random_qd1/std-pread \
        read_4k_random_qd32/hoop-io_uring statx_10k_files/hoop-io_uring statx_10k_files/std-loop; do
        perf record -q -F 4000 -e cpu-clock -g -o "$data/p" -- \
            "$fs_bin" --bench "$id" --profile-time 4 >/dev/null 2>&1
        echo "## $id"
        # Every thread of the process: statx runs on the kernel's io-wq threads (iou-wrk-*).
        python3 $out/categorize.py "$data/p" "$busy" 8 || true
    done
} > $out/fs_read.txt 2>&1
cat $out/fs_read.txt
fi

if want download; then
cargo build --release --example fileserver
download_bin=$(bin download)
{
    echo "# 1 GiB over loopback HTTP: CPU 0 (the server's; the client runs on CPU 1) by category"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for server in hoop hoop-epoll tokio nginx; do
        perf record -q -C 0 -F 2000 -e cpu-clock -g -o "$data/p" -- \
            "$download_bin" --only "$server" --rounds 2 2>&1 | grep -E "^[a-z-]+: .*GB/s" || true
        echo "## $server"
        python3 $out/categorize.py "$data/p" "$busy" 10 || true
    done
} > $out/download.txt 2>&1
cat $out/download.txt
fi

if want direct; then
direct_bin=$(bin direct)
{
    echo "# 4 KiB O_DIRECT random reads, QD 32: CPU 0 (the reader's) by category"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for reader in hoop hoop-fixed fio fio-fixed; do
        perf record -q -C 0 -F 2000 -e cpu-clock -g -o "$data/p" -- \
            "$direct_bin" --only "$reader" --rounds 1 2>&1 | grep "IOPS$" || true
        echo "## $reader"
        echo "CPU 0 idle: $(perf report -i "$data/p" --no-children --sort comm --stdio -g none 2>/dev/null |
            awk '$2 == "swapper" {print $1}')"
        python3 $out/categorize.py "$data/p" "$busy" 8 || true
    done
} > $out/direct.txt 2>&1
cat $out/direct.txt
fi

if want runtime; then
runtime_bin=$(bin runtime)
{
    echo "# pipe and nop round trips (io_round_trip): the whole process by category"
    echo "# $(uname -r), $(nproc) CPUs, $(date +%F)"
    for id in io_round_trip/pipe_1B/hoop-io_uring io_round_trip/pipe_1B/hoop-epoll \
        io_round_trip/pipe_1B/tokio \
        io_round_trip/nop/hoop-io_uring; do
        perf record -q -F 4000 -e cpu-clock -g -o "$data/p" -- \
            "$runtime_bin" --bench "$id" --profile-time 4 >/dev/null 2>&1
        echo "## $id"
        python3 $out/categorize.py "$data/p" "$busy" 12 || true
    done
} > $out/runtime.txt 2>&1
cat $out/runtime.txt
fi
