#!/usr/bin/env python3
"""Groups a perf profile's self time by where it goes: copies to user space, the kernel's
filesystem and network stack, the io_uring or epoll machinery, syscall entry/exit, memory and
scheduling, and user space (the runtime and the application), then prints the TOP hottest
symbols. Usage: categorize.py DATA COMMS [TOP]. COMMS: thread names (at most 15 characters),
comma-separated; with a leading '-', every thread but these (for system-wide recordings of one
CPU: "-swapper,perf,perf-exec" is "whatever ran on it but the idle loop and perf")."""
import re
import subprocess
import sys

data, comms = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 0
exclude = comms.startswith("-")
names = set(comms.lstrip("-").split(","))
out = subprocess.run(
    ["perf", "report", "-i", data, "--no-children", "--sort", "comm,dso,sym", "--stdio", "-g",
     "none", "--percent-limit", "0"],
    capture_output=True, text=True).stdout
CATS = [
    ("copy to/from user", r"_copy_to_iter|_copy_from_iter|copy_user|rep_movs|copy_page"),
    ("io_uring", r"^(__)?io_|io_uring|^__io|llist_|task_work"),
    ("epoll", r"^ep_|epoll|^__ep"),
    ("syscall entry/exit", r"syscall|entry_SYSCALL|do_syscall|syscall_exit|__x64_sys|fdget|__fget|fput"),
    ("filesystem / page cache", r"filemap|ext4|xas_|folio|atime|rw_verify|security_file|fsnotify|vfs_|generic_file|file_read|readahead|statx|path_|lookup|dput|dentry|inode|mnt"),
    ("network stack", r"tcp|^ip_|^__ip|skb|sock|net_|^__net|inet|napi|bbr|dev_|^__dev|lock_sock|softirq|_copy_to_iter|_copy_from_iter|datagram|loopback|validate_xmit|__check_object_size|raw_spin|rcu|ktime|read_tsc|^dst_|^__dst|neigh|rtt|csum|sk_"),
    ("memory", r"kmem|kmalloc|kfree|alloc|slab|__slab|page|memcg|obj_cgroup|mod_objcg"),
    ("scheduler/wakeups", r"sched|wake|schedule|futex|pick_|enqueue|dequeue|update_curr|hrtimer"),
]
totals = {}
user = 0.0
symbols = {}
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, comm, kind, sym = float(m.group(1)), m.group(2), m.group(4), m.group(5).strip()
    if (comm in names) == exclude:
        continue
    key = f"[{'k' if kind == 'k' else '.'}] {sym}"
    symbols[key] = symbols.get(key, 0) + pct
    if kind == ".":
        user += pct
        continue
    for name, pat in CATS:
        if re.search(pat, sym):
            totals[name] = totals.get(name, 0) + pct
            break
    else:
        totals["other kernel"] = totals.get("other kernel", 0) + pct
totals["user space (runtime + app + libc)"] = user
whole = sum(totals.values()) or 1.0
for name, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"{100 * pct / whole:6.1f}%  {name}")
if top:
    print("top symbols:")
    for sym, pct in sorted(symbols.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * pct / whole:6.1f}%  {sym}")
