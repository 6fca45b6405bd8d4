# Helpers for guest.sh. Logs go to /tmp/<name>.json (events) and /tmp/<name>.err (diagnostics).
FAILURES=0
TRACER_PID=
TRACER_NAME=

# bash's clock (busybox date has no %N).
now_ns() { local t=${EPOCHREALTIME/./}; echo $(( t * 1000 )); }

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok: $*"; }

setup_veth() {
    ip netns add a && ip netns add b
    ip link add va netns a type veth peer name vb netns b
    ip -n a addr add 10.0.0.1/24 dev va && ip -n b addr add 10.0.0.2/24 dev vb
    for ns in a b; do ip -n $ns link set lo up; done
    ip -n a link set va up && ip -n b link set vb up
    ip netns exec a ping -c 1 -W 5 10.0.0.2 >/dev/null || fail "veth pair does not pass traffic"
}

netns_inode() { stat -L -c %i /run/netns/$1; }

ping_a_to_b() { ip netns exec a ping -c 1 -W 2 10.0.0.2 >/dev/null || fail "ping a -> b"; }

. /usr/lib/pwru-vm/pwru.sh

# run_tracer NAME [pwru-rs args...]: start pwru-rs and wait until every probe is attached.
run_tracer() {
    TRACER_NAME=$1; shift
    TRACER_PID=
    local ready=/tmp/$TRACER_NAME.ready start=$(now_ns)
    if ! pwru_start "$ready" /tmp/$TRACER_NAME.err 180 \
        --output-json --output-file /tmp/$TRACER_NAME.json "$@"; then
        fail "$TRACER_NAME: pwru-rs did not get ready (status $PWRU_STATUS): $(tail -3 /tmp/$TRACER_NAME.err)"
        return
    fi
    TRACER_PID=$PWRU_PID
    # The ready file goes when pwru-rs exits: keep what it says for expect_ready.
    cp "$ready" /tmp/$TRACER_NAME.ready-info
    echo "$TRACER_NAME: ready in $(( ($(now_ns) - start) / 1000000 )) ms: $(cat /tmp/$TRACER_NAME.ready-info)"
}

# expect_ready NAME BACKEND: the ready file named BACKEND and at least one hook attached.
expect_ready() {
    local info backend hooks
    info=$(cat /tmp/$1.ready-info 2>/dev/null)
    backend=$(echo "$info" | sed -n 's/.*"backend":"\([^"]*\)".*/\1/p')
    hooks=$(echo "$info" | sed -n 's/.*"hooks":\([0-9]*\).*/\1/p')
    if [ "$backend" = "$2" ] && [ "${hooks:-0}" -gt 0 ]; then
        pass "$1: ready file says $2, $hooks hooks"
    else
        fail "$1: ready file says '$info' (want backend $2 and hooks > 0)"
    fi
}

stop_tracer() {
    [ -n "$TRACER_PID" ] || return
    sleep 0.3
    local start=$(now_ns) rc
    pwru_stop
    rc=$?
    echo "$TRACER_NAME: stopped in $(( ($(now_ns) - start) / 1000000 )) ms, exit $rc, $(wc -l < /tmp/$TRACER_NAME.json) events"
    [ $rc -eq 0 ] || fail "$TRACER_NAME: pwru-rs exited $rc: $(tail -3 /tmp/$TRACER_NAME.err)"
    TRACER_PID=
}

report_attach() { grep -E 'attached|detached|kprobe' /tmp/$1.err | sed "s/^/$1: /"; }

expect_stderr() {
    grep -qF -- "$2" /tmp/$1.err && pass "$1: stderr says '$2'" || fail "$1: stderr lacks '$2': $(cat /tmp/$1.err)"
}

# expect_func_tuple NAME FUNC SADDR DADDR
expect_func_tuple() {
    if grep -F "\"func\":\"$2" /tmp/$1.json | grep -F "\"saddr\":\"$3\"" | grep -qF "\"daddr\":\"$4\""; then
        pass "$1: $2 $3 -> $4"
    else
        fail "$1: no $2 event for $3 -> $4; functions seen: $(funcs $1 | sort -u | tr '\n' ' ')"
    fi
}

funcs() { grep -o '"func":"[^"(]*' /tmp/$1.json | cut -d'"' -f4; }

# expect_order NAME F1 F2 ...: the ping's IPv4 events (10.0.0.x, not e.g. a neighbour
# solicitation that crossed the same netns meanwhile) pass these functions in this order.
expect_order() {
    local name=$1; shift
    local path
    path=$(grep '"saddr":"10\.0\.0\.' /tmp/$name.json | grep -o '"func":"[^"(]*' | cut -d'"' -f4)
    local last=0 f line
    for f in "$@"; do
        # The first event of F after the previous function's.
        line=$(echo "$path" | tail -n +$((last + 1)) | grep -nx -- "$f" | head -1 | cut -d: -f1)
        if [ -z "$line" ]; then
            fail "$name: $f missing or out of order (want $*); got: $(echo "$path" | uniq | tr '\n' ' ')"
            return
        fi
        last=$((last + line))
    done
    pass "$name: order $*"
}

expect_min_distinct_funcs() {
    local n=$(funcs $1 | sort -u | wc -l)
    [ "$n" -ge "$2" ] && pass "$1: $n distinct functions" || fail "$1: only $n distinct functions (want >= $2)"
}

expect_only_netns() {
    local other=$(grep -v "\"netns\":$2," /tmp/$1.json | head -1)
    [ -z "$other" ] && pass "$1: every event in netns $2" || fail "$1: event outside netns $2: $other"
}

expect_only_funcs() {
    local other=$(funcs $1 | grep -Ev -- "$2" | sort -u | head -3 | tr '\n' ' ')
    [ -z "$other" ] && pass "$1: only --filter-func functions" || fail "$1: --filter-func let through: $other"
}

# expect_line NAME PATTERN [PATTERN2]: some event contains both fixed strings.
expect_line() {
    if grep -F -- "$2" /tmp/$1.json | grep -qF -- "${3:-$2}"; then
        pass "$1: has $2 ${3:-}"
    else
        fail "$1: no event with $2 ${3:-}; functions seen: $(funcs $1 | sort -u | tr '\n' ' ')"
    fi
}

# expect_after NAME FIRST THEN FILTER: after the first event with FIRST and FILTER, one with THEN
# and FILTER.
expect_after() {
    local at
    at=$(grep -nF -- "$2" /tmp/$1.json | grep -F -- "$4" | head -1 | cut -d: -f1)
    if [ -n "$at" ] && tail -n +"$at" /tmp/$1.json | grep -F -- "$3" | grep -qF -- "$4"; then
        pass "$1: $3 after $2 ($4)"
    else
        fail "$1: no $3 after $2 ($4); functions seen: $(funcs $1 | sort -u | tr '\n' ' ')"
    fi
}

expect_no_line() {
    local hit=$(grep -F -- "$2" /tmp/$1.json | head -1)
    [ -z "$hit" ] && pass "$1: nothing with $2" || fail "$1: unexpected event: $hit"
}

# expect_rotation NAME MAX_BACKUPS: /tmp/NAME-<time>.json backups (MAX_BACKUPS of them, or at
# least two when 0) and /tmp/NAME.json each hold at most 1 MiB of whole JSON events, in time
# order from the oldest file to the newest; with no cap, no event is missing from them.
expect_rotation() {
    local name=$1 cap=$2 f files backups total=0 received
    backups=$(ls /tmp/$name-*.json 2>/dev/null | sort)
    local n=$(echo "$backups" | grep -c .)
    if [ "$cap" -gt 0 ] && [ "$n" -ne "$cap" ]; then fail "$name: $n backups (want $cap): $backups"; return; fi
    if [ "$cap" -eq 0 ] && [ "$n" -lt 2 ]; then fail "$name: $n backups (want at least 2)"; return; fi
    files="$backups /tmp/$name.json"
    for f in $files; do
        if [ "$(stat -c %s "$f")" -gt 1048576 ]; then fail "$name: $f over 1 MiB"; return; fi
        if [ -n "$(tail -c 1 "$f")" ] || grep -qv '^{.*}$' "$f"; then
            fail "$name: $f has a partial event: $(grep -v '^{.*}$' "$f" | head -1 | cut -c 1-200)"; return
        fi
        total=$((total + $(wc -l < "$f")))
    done
    # shellcheck disable=SC2086
    local order
    order=$(cat $files | grep -o '"time":[0-9]*' | cut -d: -f2 |
        awk 'NR > 1 && $1 < last { print "out of order at event " NR; exit } { last = $1 } END { print NR }')
    if [ "$order" != "$total" ]; then
        fail "$name: across $files: $order (want $total events, each with a time, in order)"; return
    fi
    if [ "$cap" -eq 0 ]; then
        received=$(sed -n 's/.* \([0-9]*\) events received.*/\1/p' /tmp/$name.err | tail -1)
        if [ "$total" != "$received" ]; then
            fail "$name: $total events in the files, pwru-rs received ${received:-?}"; return
        fi
    fi
    pass "$name: $n backups, $total whole events in time order"
}

# expect_clone_of_traced NAME IFNAME: an event on IFNAME has a parent_skb, and that parent is an
# skb of the trace (the clone was followed from the skb it was cloned from).
expect_clone_of_traced() {
    local clone parent
    clone=$(grep -F "\"ifname\":\"$2\"" /tmp/$1.json | grep -F '"parent_skb":"0x' | head -1)
    if [ -z "$clone" ]; then
        fail "$1: no event on $2 with a parent_skb; events there: $(grep -F "\"ifname\":\"$2\"" /tmp/$1.json | head -2)"
        return
    fi
    parent=$(echo "$clone" | sed -n 's/.*"parent_skb":"\(0x[0-9a-f]*\)".*/\1/p')
    if grep -qF "\"skb\":\"$parent\"" /tmp/$1.json; then
        pass "$1: clone on $2 of traced skb $parent: $(echo "$clone" | grep -o '"func":"[^"]*"')"
    else
        fail "$1: the clone's parent $parent is not in the trace"
    fi
}

finish() {
    if [ $FAILURES -eq 0 ]; then echo "guest tests on $KVER: all passed"; exit 0; fi
    echo "guest tests on $KVER: $FAILURES failure(s)"
    exit 1
}
