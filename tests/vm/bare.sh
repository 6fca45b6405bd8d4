#!/bin/sh
# The static pwru-rs of `cargo xtask dist`, alone in a guest image that has no shared library and
# no host program (busybox only; this runs under busybox sh): as it would be copied into a
# Multipass or QEMU VM. It must run, and trace the seed case, `pwru-rs port https`, on a TCP
# connection to port 443 of a test address.
FAILURES=0
fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok: $*"; }

echo "guest kernel $(uname -r) (bare image)"
libs=$(find / -xdev \( -name '*.so' -o -name '*.so.*' -o -name 'ld-linux*' \) 2>/dev/null | head -3)
[ -z "$libs" ] && pass "no shared library in the image" || fail "shared libraries in the image: $libs"

version=$(pwru-rs --version 2>&1)
case "$version" in
pwru-rs\ *) pass "runs alone: $(echo "$version" | head -1)" ;;
*) fail "pwru-rs --version: $version" ;;
esac

# The seed case: a TCP connection to 10.0.3.1:443, traced by `pwru-rs port https`.
ip addr add 10.0.3.1/32 dev lo
nc -l -p 443 >/dev/null 2>&1 &
listener=$!
rm -f /tmp/https.ready
# As typed, every skb function; where there is no kprobe-multi (6.1) plain kprobes take minutes
# to attach and detach them all under TCG: the TCP path's functions only there.
set -- port https
case "$(uname -r)" in
6.1.*) set -- --filter-func '(__)?(ip|tcp|dev|netif|skb)_.*|kfree_skb.*|consume_skb' "$@" ;;
esac
pwru-rs --ready-file /tmp/https.ready --output-file /tmp/https.txt "$@" 2>/tmp/https.err &
pwru=$!
i=0
while [ ! -e /tmp/https.ready ] && [ $i -lt 1200 ] && kill -0 $pwru 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
if [ -e /tmp/https.ready ]; then
    pass "ready: $(cat /tmp/https.ready)"
    echo hi | nc -w 2 10.0.3.1 443 >/dev/null 2>&1
    sleep 1
    kill -INT $pwru
fi
i=0
while kill -0 $pwru 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -KILL $pwru $listener 2>/dev/null
wait $pwru
status=$?
[ $status -eq 0 ] && pass "exit 0" || fail "exit $status: $(tail -3 /tmp/https.err)"
if grep -q '10\.0\.3\.1:[0-9]*->10\.0\.3\.1:443(tcp)' /tmp/https.txt; then
    pass "the connection to :443 is traced: $(grep -c ':443(tcp)' /tmp/https.txt) events"
else
    fail "no event with ->10.0.3.1:443(tcp): $(head -5 /tmp/https.txt) $(tail -3 /tmp/https.err)"
fi
head -1 /tmp/https.txt | grep -q '^SKB ' && pass "text header" || fail "no text header: $(head -1 /tmp/https.txt)"

if [ $FAILURES -eq 0 ]; then
    echo "bare guest tests on $(uname -r): all passed"
else
    echo "bare guest tests on $(uname -r): $FAILURES failure(s)"
fi
exit $FAILURES
