#!/bin/bash
# dockerd for the docker tests: `dockerd.sh start` starts it unless one
# answers already, and records the pid only when it started it;
# `dockerd.sh stop` stops only a recorded one.  Used by .ci/run, make test
# and make demo, so a machine's own dockerd is never touched.
set -u
# shellcheck source=tests/harness/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG=/var/tmp/berth-dockerd.log
PIDFILE=/var/tmp/berth-dockerd.pid # not in pids/: stop.sh clears that

ping_docker() {
    curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://x/_ping >/dev/null 2>&1
}

case ${1:-} in
start)
    if ping_docker; then
        echo "dockerd already running"
        exit 0
    fi
    if ! command -v dockerd >/dev/null; then
        echo "no dockerd binary: the docker tests will fail"
        exit 1
    fi
    # Own session, stdio to a file: it must not hold a caller's pipe open.
    (cd / && exec setsid dockerd </dev/null >"$LOG" 2>&1) &
    echo $! >"$PIDFILE"
    for ((i = 0; i < 120; i++)); do
        ping_docker && break
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
        sleep 0.5
    done
    if ping_docker; then
        echo "dockerd started (pid $(cat "$PIDFILE"))"
    else
        echo "dockerd did not come up within 60 s (log: $LOG):"
        tail -n 20 "$LOG" || true
        exit 1
    fi
    ;;
stop)
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if pid_is "$pid" dockerd; then
        echo "  stopping dockerd (pid $pid)"
        KILL_WAIT=15 term_then_kill "$pid"
    fi
    rm -f "$PIDFILE"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
