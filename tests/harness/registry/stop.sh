#!/bin/bash
# Stop what start.sh started for DIR (proxy, registry, token server) and wait
# for each to exit.  Idempotent: missing or stale pid files are fine.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: stop.sh DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
dir=$(cd "$1" && pwd)

# Only signal a pid whose command line names DIR: a stale pid file must not
# take down an unrelated process that reused the number.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dir/"; }

pids=()
for name in proxy registry tokenserver; do
    f=$dir/$name.pid
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    fi
done

for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
        ours "$pid" || break
        sleep 0.1
    done
    if ours "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.1
    fi
done
for name in proxy registry tokenserver; do rm -f "$dir/$name.pid"; done
