#!/bin/bash
# The pwru-rs-log action's step (actions/pwru-rs-log/action.yml): stop the pwru-rs that
# pwru-rs-run.sh started (SIGINT: it detaches, drains and writes its stats), then print its
# stderr, its stats and the first $PWRU_RS_PRINT_LINES lines of its trace. Exit with pwru-rs's
# status (1 if it cannot be found or does not stop within a minute).
set -uo pipefail
state=${PWRU_RS_STATE:-/tmp/pwru-rs-action}
lines=${PWRU_RS_PRINT_LINES:-1000}
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
if [ ! -e "$state/pid" ]; then
    echo "no pwru-rs started in $state (run pwru-rs-run first)" >&2
    exit 1
fi
pid=$(cat "$state/pid")
[ -e "$state/status" ] || $sudo kill -INT "$pid" 2>/dev/null
for _ in $(seq 600); do
    [ -e "$state/status" ] && break
    sleep 0.1
done
if [ ! -e "$state/status" ]; then
    echo "pwru-rs (pid $pid) did not stop within 60 s: killed" >&2
    $sudo kill -KILL "$pid" 2>/dev/null
    exit 1
fi
status=$(cat "$state/status")
echo "::group::pwru-rs stderr (exit status $status)"
cat "$state/stderr"
echo "::endgroup::"
[ -e "$state/stats.json" ] && echo "pwru-rs stats: $(cat "$state/stats.json")"
if [ "$lines" -gt 0 ] && [ -e "$state/trace" ]; then
    echo "::group::pwru-rs trace ($(wc -l <"$state/trace") lines; the first $lines)"
    head -n "$lines" "$state/trace"
    echo "::endgroup::"
fi
exit "$status"
