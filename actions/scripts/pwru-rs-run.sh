#!/bin/bash
# The pwru-rs-run action's step (actions/pwru-rs-run/action.yml), on the runner or, piped to
# `vm-exec`, inside the VM: start pwru-rs in the background, its trace, ready file, stats and
# stderr in $PWRU_RS_STATE, and wait until every probe is attached. Exit 1, saying why, if
# pwru-rs stops first or is not ready in time.
set -euo pipefail
state=${PWRU_RS_STATE:-/tmp/pwru-rs-action}
binary=${PWRU_RS_BINARY:-pwru-rs}
timeout=${PWRU_RS_READY_TIMEOUT:-300}
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
mkdir -p "$state"
rm -f "$state/ready" "$state/status" "$state/stats.json" "$state/trace"
# The flags are words; the filter is one argument (pwru-rs joins what follows the flags).
read -r -a flags <<<"${PWRU_RS_FLAGS:-}"
filter=()
[ -z "${PWRU_RS_PCAP_FILTER:-}" ] || filter=("$PWRU_RS_PCAP_FILTER")
# A subshell of its own session keeps pwru-rs running after this step, and records its exit
# status for pwru-rs-log.
setsid bash -c '
    state=$1; shift
    "$@" </dev/null >/dev/null 2>"$state/stderr" &
    echo $! >"$state/pid"
    wait $!
    echo $? >"$state/status"
' pwru-rs-run "$state" $sudo "$binary" "${flags[@]}" --ready-file "$state/ready" \
    --stats-file "$state/stats.json" --output-file "$state/trace" "${filter[@]}" &
for _ in $(seq $((timeout * 10))); do
    [ -e "$state/ready" ] && break
    if [ -e "$state/status" ]; then
        echo "pwru-rs stopped before it was ready (status $(cat "$state/status")):" >&2
        cat "$state/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
if [ ! -e "$state/ready" ]; then
    echo "pwru-rs not ready after ${timeout}s:" >&2
    cat "$state/stderr" >&2
    exit 1
fi
echo "pwru-rs ready: $(cat "$state/ready")"
