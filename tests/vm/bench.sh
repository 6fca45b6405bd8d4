#!/bin/bash
# Guest part of `cargo xtask bench`: pwru-rs and, when the payload holds it (/payload/pwru, a
# cilium/pwru binary), pwru on the same workloads in the same boot, so every comparison is a
# ratio measured here. Runs each measurement $(cat /payload/bench-runs) times (default 1) and
# prints one line per run (pwru-rs's figures come from its --stats-file, pwru's from what it
# leaves in the kernel: it has no such file):
#   BENCH <tool> <backend> <kernel> <functions> <start->ready ms> <attach ms or -> <link ms or -> \
#         <detach ms or -> <SIGINT->exit ms> <peak RSS kB> <map bytes>
#   HIT <tool> <case> <kernel> <run_time_ns> <run_cnt>
#   FLOOD <tool> <kernel> <events written> <program runs> <lost or ->
#   PING <tool> <kernel> <events> <distinct functions>
#   STACK <tool> <kernel> <samples> <frames, innermost first, ;-separated>
set -u
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
KVER=$(uname -r)
RUNS=$(cat /payload/bench-runs 2>/dev/null || echo 1)
# pwru's own benchmark subset, so the plain kprobe figures compare with its published ones.
SUBSET='^(ip|tcp|udp|icmp|__dev|dev|netif|__netif)_.*'
PWRU=/payload/pwru
TOOLS=pwru-rs
if [ -x $PWRU ]; then
    TOOLS="pwru pwru-rs"
    echo "pwru: $($PWRU --version 2>&1 | head -1)"
else
    echo "pwru: not available"
fi

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

# json_field FILE KEY: a number (or null) of a one-line JSON object.
json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

# start TOOL BACKEND OUT [args...]: starts TOOL writing its trace to OUT; sets $pid and
# $ready_ms (start -> ready file).
start() {
    local tool=$1 backend=$2 out=$3
    shift 3
    local bin=pwru-rs extra=(--stats-file /tmp/stats.json)
    if [ "$tool" = pwru ]; then bin=$PWRU extra=(); fi
    rm -f /tmp/stats.json
    local t0
    t0=$(now_ms)
    PWRU_BIN=$bin pwru_start /tmp/ready /tmp/bench.err 600 --backend "$backend" \
        --output-file "$out" "${extra[@]}" "$@" || {
        echo "$tool failed: $(tail -5 /tmp/bench.err)"
        return 1
    }
    pid=$PWRU_PID
    ready_ms=$(($(now_ms) - t0))
}

# stop: SIGINT, sets $exit_ms (SIGINT -> exit).
stop() {
    local t0
    t0=$(now_ms)
    pwru_stop || {
        echo "$1 failed (exit $PWRU_STATUS): $(tail -5 /tmp/bench.err)"
        return 1
    }
    exit_ms=$(($(now_ms) - t0))
}

# measure TOOL BACKEND [args...]: attach, memory and detach figures of one run.
measure() {
    local tool=$1 backend=$2
    start "$@" || return 1
    local maps hwm functions
    maps=$(fdinfo_sum $pid map memlock)
    hwm=$(sed -n 's/^VmHWM:\s*\([0-9]*\) kB/\1/p' /proc/$pid/status)
    if [ "$backend" = kprobe-multi ]; then
        functions=$(wc -l </sys/kernel/tracing/enabled_functions)
    else
        functions=$(wc -l </sys/kernel/debug/kprobes/list 2>/dev/null || echo 0)
    fi
    stop "$tool" || return 1
    local attach=- link=- detach=-
    if [ "$tool" = pwru-rs ]; then
        functions=$(json_field /tmp/stats.json hooks)
        attach=$(json_field /tmp/stats.json attach_ms)
        link=$(json_field /tmp/stats.json link_ms)
        detach=$(json_field /tmp/stats.json detach_ms)
        [ "$link" = null ] && link=-
    fi
    echo "BENCH $tool $backend $KVER $functions $ready_ms $attach $link $detach $exit_ms $hwm $maps"
}

# per_hit TOOL CASE [args...]: run_time_ns / run_cnt of kprobe-multi on every skb function
# under `ping -c 200 -i 0.01 127.0.0.1`, twice per start (a HIT line each): the figure swings
# from one window to the next, more for pwru, and two windows cost less than two starts.
per_hit() {
    local tool=$1 case=$2 window
    shift 2
    start "$tool" kprobe-multi /dev/null "$@" || return 1
    local -a before after=(0 0)
    for window in 1 2; do
        before=("${after[@]}")
        ping -q -c 200 -i 0.01 127.0.0.1 >/dev/null
        read -ra after <<<"$(fdinfo_sum $pid prog run_time_ns run_cnt)"
        echo "HIT $tool $case $KVER $((after[0] - before[0])) $((after[1] - before[1]))"
    done
    stop "$tool" || return 1
}

# flood TOOL: events kept of a flood that the filter matches, text to a file.
flood() {
    local tool=$1
    start "$tool" kprobe-multi /tmp/flood.txt 'host 127.0.0.1' || return 1
    ping -q -f -c 2000 127.0.0.1 >/dev/null
    sleep 3 # let each drain what it can
    local runs
    runs=$(fdinfo_sum $pid prog run_cnt)
    stop "$tool" || return 1
    local lost=-
    [ "$tool" = pwru-rs ] && lost=$(json_field /tmp/stats.json lost)
    echo "FLOOD $tool $KVER $(grep -c '^0x' /tmp/flood.txt) $runs $lost"
    rm -f /tmp/flood.txt
}

# one_ping TOOL: events and distinct functions of one ping on lo (JSON).
one_ping() {
    local tool=$1
    start "$tool" kprobe-multi /tmp/ping.json --output-json --filter-ifname lo || return 1
    ping -c 1 127.0.0.1 >/dev/null
    sleep 1
    stop "$tool" || return 1
    local events funcs
    events=$(grep -c '"func"' /tmp/ping.json)
    funcs=$(grep -o '"func":"[^"(]*' /tmp/ping.json | sort -u | wc -l)
    echo "PING $tool $KVER $events $funcs"
    rm -f /tmp/ping.json
}

# detach_profile TOOL: where plain kprobe detach goes. The kernel stacks of TOOL's threads,
# sampled every 20 ms from SIGINT until it has exited (a run of its own: sampling costs the
# guest a little); one STACK line per distinct stack with its count.
detach_profile() {
    local tool=$1 t s
    start "$tool" kprobe /dev/null --filter-func "$SUBSET" || return 1
    kill -INT "$pid"
    local deadline=$((SECONDS + 300))
    while [ -d /proc/$pid ] && ! grep -q '^State:.*zombie' /proc/$pid/status 2>/dev/null &&
        ((SECONDS < deadline)); do
        for t in /proc/$pid/task/*; do
            s=$(sed -n 's/^\[<[0-9a-f]*>\] \([^+ ]*\).*/\1/p' "$t"/stack 2>/dev/null | tr '\n' ';')
            [ -n "$s" ] && echo "$s"
        done
        sleep 0.02
    done >/tmp/stacks.txt
    wait "$pid"
    sort /tmp/stacks.txt | uniq -c | while read -r n s; do echo "STACK $tool $KVER $n $s"; done
    rm -f /tmp/stacks.txt
}

kprobe_multi=false
# kprobe-multi came with 5.18; Debian's 6.1 cloud kernel lacks it, so only newer ones try.
if [[ $KVER == 6.[2-9]* || $KVER == 6.[1-9][0-9]* || $KVER == [7-9].* ]]; then
    kprobe_multi=true
fi
echo 1 >/proc/sys/kernel/bpf_stats_enabled
status=0
for _ in $(seq "$RUNS"); do
    if $kprobe_multi; then
        for tool in $TOOLS; do
            measure $tool kprobe-multi /dev/null || status=1
        done
        # Both tools, case by case, so that a change in the guest's speed hits both alike.
        for tool in $TOOLS; do per_hit $tool no-filter || status=1; done
        for tool in $TOOLS; do per_hit $tool miss 'host 10.99.99.99' || status=1; done
        for tool in $TOOLS; do per_hit $tool match 'host 127.0.0.1' || status=1; done
        for tool in $TOOLS; do per_hit $tool meta-miss --filter-mark 0x99 || status=1; done
        per_hit pwru-rs track-miss --filter-track-skb 'host 10.99.99.99' || status=1
        per_hit pwru-rs expr1-miss --filter-skb-expr 'skb->len == 1' || status=1
        per_hit pwru-rs expr3-miss --filter-skb-expr 'skb->dev->nd_net.net->ns.inum == 1' || status=1
        per_hit pwru-rs track-match --filter-track-skb 'host 127.0.0.1' || status=1
        for tool in $TOOLS; do flood $tool || status=1; done
        for tool in $TOOLS; do one_ping $tool || status=1; done
    fi
    for tool in $TOOLS; do
        measure $tool kprobe /dev/null --filter-func "$SUBSET" || status=1
    done
done
for tool in $TOOLS; do detach_profile $tool || status=1; done
exit $status
