#!/bin/bash
# Guest part of `cargo xtask bench`: attach/detach times and memory of the kprobe backends.
# Runs each measurement $(cat /payload/bench-runs) times (default 1) and prints one line per run:
#   BENCH <backend> <kernel> <functions> <start->ready ms> <attach ms> <link ms or -> \
#         <detach ms> <SIGINT->exit ms> <peak RSS kB> <map bytes>
set -u
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
KVER=$(uname -r)
RUNS=$(cat /payload/bench-runs 2>/dev/null || echo 1)
# pwru's own benchmark subset, so the figures compare with pwru-baseline.md.
SUBSET='(ip|tcp|udp|icmp|__dev|dev|netif|__netif)_.*'

# fdinfo_sum PID KIND FIELD...: the sums of FIELDs over the BPF objects of KIND (prog or map)
# that PID holds, each object once (several fds may refer to one), space-separated.
fdinfo_sum() {
    local pid=$1 kind=$2 f id i
    shift 2
    local -a fields=("$@") sums=()
    for i in "${!fields[@]}"; do sums[i]=0; done
    declare -A seen=()
    for f in /proc/"$pid"/fdinfo/*; do
        grep -q "^${kind}_type:" "$f" 2>/dev/null || continue
        id=$(sed -n "s/^${kind}_id:\s*//p" "$f")
        id=${id:-$f} # older kernels show no map_id
        [[ -n ${seen[$id]:-} ]] && continue
        seen[$id]=1
        for i in "${!fields[@]}"; do
            sums[i]=$((sums[i] + $(sed -n "s/^${fields[i]}:\s*//p" "$f")))
        done
    done
    echo "${sums[*]}"
}

. /usr/lib/pwru-vm/pwru.sh

# start_pwru BACKEND [args...]: starts pwru-rs, sets $pid, $ready_ms (start -> ready) and $hooks
# (what the ready file says was attached).
start_pwru() {
    local backend=$1
    shift
    local start
    start=$(now_ms)
    pwru_start /tmp/ready /tmp/bench.err 600 --backend "$backend" --output-file /dev/null "$@" || {
        echo "pwru-rs failed: $(cat /tmp/bench.err)"
        return 1
    }
    pid=$PWRU_PID
    ready_ms=$(($(now_ms) - start))
    hooks=$(sed -n 's/.*"hooks":\([0-9]*\).*/\1/p' /tmp/ready)
}

# stop_pwru: SIGINT, sets $exit_ms (SIGINT -> exit).
stop_pwru() {
    local stop
    stop=$(now_ms)
    pwru_stop || {
        echo "pwru-rs failed: $(cat /tmp/bench.err)"
        return 1
    }
    exit_ms=$(($(now_ms) - stop))
}

measure() { # measure BACKEND [args...]
    local backend=$1
    start_pwru "$@" || return 1
    local maps hwm
    maps=$(fdinfo_sum $pid map memlock)
    hwm=$(sed -n 's/^VmHWM:\s*\([0-9]*\) kB/\1/p' /proc/$pid/status)
    stop_pwru || return 1
    local attach link detach
    attach=$(sed -n 's/.*attached [0-9]* [a-z]* in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    link=$(sed -n 's/.* functions linked in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    detach=$(sed -n 's/.*detached [0-9]* hooks in \([0-9.]*\) ms.*/\1/p' /tmp/bench.err)
    echo "BENCH $backend $KVER $hooks $ready_ms $attach ${link:--} $detach $exit_ms $hwm $maps"
}

# per_hit CASE [pwru-rs args...]: run_time_ns / run_cnt of kprobe-multi on every skb function
# under pwru-baseline.md's workload. Prints "HIT <case> <kernel> <ns total> <runs>".
per_hit() {
    local case=$1
    shift
    start_pwru kprobe-multi "$@" || return 1
    ping -q -c 200 -i 0.01 127.0.0.1 >/dev/null
    local stats
    stats=$(fdinfo_sum $pid prog run_time_ns run_cnt)
    stop_pwru || return 1
    echo "HIT $case $KVER $stats"
}

kprobe_multi=false
# kprobe-multi came with 5.18; Debian's 6.1 cloud kernel lacks it, so only newer ones try.
if [[ $KVER == 6.[2-9]* || $KVER == 6.[1-9][0-9]* || $KVER == [7-9].* ]]; then
    kprobe_multi=true
    echo 1 >/proc/sys/kernel/bpf_stats_enabled
fi
status=0
for _ in $(seq "$RUNS"); do
    if $kprobe_multi; then
        measure kprobe-multi || status=1
        per_hit no-filter || status=1
        per_hit miss 'host 10.99.99.99' || status=1
        per_hit match 'host 127.0.0.1' || status=1
        per_hit track-miss --filter-track-skb 'host 10.99.99.99' || status=1
        per_hit expr1-miss --filter-skb-expr 'skb->len == 1' || status=1
        per_hit expr3-miss --filter-skb-expr 'skb->dev->nd_net.net->ns.inum == 1' || status=1
        per_hit track-match --filter-track-skb 'host 127.0.0.1' || status=1
    fi
    measure kprobe --filter-func "$SUBSET" || status=1
done
exit $status
