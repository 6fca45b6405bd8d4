#!/bin/bash
# Guest part of `cargo xtask bench`: attach/detach times of the kprobe backends.
# Prints "BENCH <backend> <kernel> <functions> <start->ready ms> <attach ms> <detach ms>".
set -u
now_ns() { local t=${EPOCHREALTIME/./}; echo $(( t * 1000 )); }
KVER=$(uname -r)
# pwru's own benchmark subset, so the figures compare with pwru-baseline.md.
SUBSET='(ip|tcp|udp|icmp|__dev|dev|netif|__netif)_.*'

measure() { # measure BACKEND [args...]
    local backend=$1; shift
    rm -f /tmp/ready
    local start=$(now_ns)
    pwru-rs --backend "$backend" --output-file /dev/null --ready-file /tmp/ready "$@" 2>/tmp/bench.err &
    local pid=$!
    while [ ! -e /tmp/ready ]; do
        kill -0 $pid 2>/dev/null || { echo "pwru-rs failed: $(cat /tmp/bench.err)"; return 1; }
        sleep 0.01
    done
    local ready=$(( ($(now_ns) - start) / 1000000 ))
    kill -INT $pid; wait $pid
    local n=$(sed -n 's/.*attached \([0-9]*\) functions in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    local attach=$(sed -n 's/.*attached [0-9]* functions in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    local detach=$(sed -n 's/.*detached [0-9]* hooks in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    echo "BENCH $backend $KVER $n $ready $attach $detach"
}

if [[ $KVER == 6.1[0-9]* || $KVER == 6.[2-9][0-9]* ]]; then
    measure kprobe-multi
    measure kprobe-multi
    measure kprobe-multi
fi
measure kprobe --filter-func "$SUBSET"
