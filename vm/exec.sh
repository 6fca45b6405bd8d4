#!/bin/bash
# The guest side of `cargo xtask vm [--exec CMD] [-- PWRU-RS ARGS]` (see vm/README.md).
# /payload/args holds pwru-rs's arguments (NUL-separated), /payload/cmd the command:
#   both:      start pwru-rs, wait for its ready file, run the command, stop pwru-rs with SIGINT;
#   args only: run pwru-rs alone (it must stop by itself: --help, --output-limit-lines N, …);
#   cmd only:  run the command alone.
# stdout (ttyS1) carries only pwru-rs's stdout, so the host can pipe the trace; the command's output
# and every diagnostic go to /run/pwru-vm/err (ttyS2), the host's stderr. See vm/init.
set -u
exec 2>/run/pwru-vm/err

say() { echo "vm: $*" >&2; }

if [ ! -e /payload/args ]; then
    exec bash /payload/cmd
fi
mapfile -d '' -t args </payload/args
if [ -e /payload/rust-log ]; then
    export RUST_LOG="$(cat /payload/rust-log)"
fi
if [ ! -e /payload/cmd ]; then
    exec pwru-rs "${args[@]}"
fi

. /usr/lib/pwru-vm/pwru.sh
ready_timeout=$(cat /payload/ready-timeout)
pwru_start /tmp/pwru-rs.ready - "$ready_timeout" "${args[@]}"
case $? in
1)
    say "pwru-rs exited with status $PWRU_STATUS before it was ready"
    exit $((PWRU_STATUS ? PWRU_STATUS : 1))
    ;;
2)
    say "pwru-rs was not ready after ${ready_timeout}s; stopped it"
    exit 1
    ;;
esac

say "pwru-rs is ready after ${SECONDS}s; running: $(cat /payload/cmd)"
bash /payload/cmd >&2
cmd_status=$?
pwru_stop
status=$?
if ((cmd_status != 0)); then
    say "the command failed with status $cmd_status (pwru-rs: $status)"
    exit "$cmd_status"
fi
exit "$status"
