#!/bin/bash
# Guest end-to-end tests of the kprobe backends, run by `cargo xtask test` inside QEMU guests
# booting stock Debian kernels (6.12: kprobe-multi and kprobe; 6.1: kprobe). In the style of
# pwru's CI: start pwru-rs with --output-file and --ready-file, make traffic, stop it, check the
# log. Every check runs; failures are counted and the script exits non-zero if any failed.
set -u
. "$(dirname "$0")/lib.sh"

KVER=$(uname -r)
echo "guest kernel $KVER"
setup_veth

# Functions a ping across the veth pair passes on its way in (netns b) and back out.
RX_FUNCS='^(ip_rcv|ip_rcv_core|ip_local_deliver|icmp_rcv|icmp_echo|icmp_reply|ip_output|ip_finish_output2?|__dev_queue_xmit|dev_hard_start_xmit|veth_xmit|netif_receive_skb|__netif_receive_skb_core)(\..*)?$'

kprobe_multi_supported() { [[ $KVER == 6.1[0-9]* || $KVER == 6.[2-9][0-9]* ]]; }

# --- auto picks the best backend, and says why -------------------------------------------------
run_tracer auto --filter-netns /run/netns/b --filter-func 'ip_rcv'
ping_a_to_b
stop_tracer
if kprobe_multi_supported; then
    expect_stderr auto "backend: kprobe-multi"
    expect_ready auto kprobe-multi
else
    expect_stderr auto "backend: kprobe (kprobe-multi unavailable"
    expect_ready auto kprobe
fi

# --- the ping's path, every skb function attached ---------------------------------------------
if kprobe_multi_supported; then
    run_tracer multi --backend kprobe-multi --filter-netns /run/netns/b
    ping_a_to_b
    stop_tracer
    report_attach multi
    expect_ready multi kprobe-multi
    expect_func_tuple multi ip_rcv 10.0.0.1 10.0.0.2
    expect_func_tuple multi icmp_rcv 10.0.0.1 10.0.0.2
    expect_func_tuple multi ip_output 10.0.0.2 10.0.0.1
    expect_func_tuple multi __dev_queue_xmit 10.0.0.2 10.0.0.1
    expect_order multi ip_rcv icmp_rcv ip_output __dev_queue_xmit
    expect_min_distinct_funcs multi 20
    expect_only_netns multi "$(netns_inode b)"
fi

# --- plain kprobes on a subset (detaching thousands under TCG takes minutes) -------------------
run_tracer kprobe --backend kprobe --filter-netns /run/netns/b --filter-func "$RX_FUNCS"
ping_a_to_b
stop_tracer
report_attach kprobe
expect_ready kprobe kprobe
expect_func_tuple kprobe ip_rcv 10.0.0.1 10.0.0.2
expect_func_tuple kprobe icmp_rcv 10.0.0.1 10.0.0.2
expect_order kprobe ip_rcv icmp_rcv ip_output
expect_only_funcs kprobe "$RX_FUNCS"

# Plain kprobes on every skb function would take minutes to detach under TCG: use a subset there.
BACKEND=(--backend=kprobe --filter-func "$RX_FUNCS|kfree_skb_reason|sk_skb_reason_drop|nf_hook_slow")
kprobe_multi_supported && BACKEND=(--backend=kprobe-multi)

# --- an nftables drop rule shows the netfilter drop reason -------------------------------------
ip netns exec b nft -f - <<'NFT'
table inet pwrt {
  chain in { type filter hook input priority 0; tcp dport 7100 drop; }
}
NFT
run_tracer nfdrop --backend=${BACKEND[0]#--backend=} --filter-netns /run/netns/b --filter-func '(kfree_skb_reason|sk_skb_reason_drop|nf_hook_slow)'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/7100' 2>/dev/null
stop_tracer
expect_line nfdrop 'SKB_DROP_REASON_NETFILTER_DROP' '"dport":7100'

# --- --output-netfilter: each base chain's verdict, the dropping chain named, the ruleset untouched --
ip netns exec b nft add chain inet pwrt out '{ type filter hook output priority 10; }'
ruleset_before=$(ip netns exec b nft -a list ruleset)
ip netns exec b bash -c 'busybox nc -l -p 7101 >/dev/null 2>&1 &'
NF_FUNCS='^(kfree_skb_reason|sk_skb_reason_drop|ip_local_deliver)$'
run_tracer nf --backend=${BACKEND[0]#--backend=} --filter-netns /run/netns/b --filter-func "$NF_FUNCS" \
    --output-netfilter 'tcp port 7100 or tcp port 7101'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/7100' 2>/dev/null
ip netns exec a timeout 2 bash -c 'echo hi > /dev/tcp/10.0.0.2/7101' 2>/dev/null
stop_tracer
expect_stderr nf "--output-netfilter: fentry and fexit on nft_do_chain [nf_tables]"
# The entry, the drop (inside the chain on 6.12, after it on 6.1), the chain's verdict.
NF_IN='"netfilter":{"family":"inet","table":"pwrt","chain":"in","hook":"input","priority":0}'
expect_line nf '"func":"nft_do_chain",' "$NF_IN"
expect_line nf '"func":"nft_do_chain(NF_DROP)"' "$NF_IN"
expect_line nf '"verdict":"NF_DROP"' '"dport":7100,'
expect_after nf '"func":"nft_do_chain",' '"reason":"SKB_DROP_REASON_NETFILTER_DROP"' '"dport":7100,'
expect_line nf '"func":"nft_do_chain(NF_ACCEPT)"' '"dport":7101,'
expect_after nf '"func":"nft_do_chain(NF_ACCEPT)"' '"func":"ip_local_deliver"' '"dport":7101,'
# The answer leaves through the output chain.
expect_line nf '"chain":"out","hook":"output","priority":10' '"sport":7101,'
if grep -F '"func":"nft_do_chain(NF_ACCEPT)"' /tmp/nf.json | grep -qF '"dport":7100,'; then
    fail "nf: the chain accepted TCP to port 7100"
fi
[ "$(ip netns exec b nft -a list ruleset)" = "$ruleset_before" ] && pass "nf: ruleset unchanged" ||
    fail "nf: the ruleset changed under --output-netfilter"
# The packet's story ends with the chain that dropped it; --summary counts verdicts by chain.
run_tracer nfgroup --backend=${BACKEND[0]#--backend=} --filter-netns /run/netns/b --filter-func "$NF_FUNCS" \
    --output-netfilter --output-group-by-skb --summary 'tcp port 7100'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/7100' 2>/dev/null
stop_tracer
expect_line nfgroup '"reason":"SKB_DROP_REASON_NETFILTER_DROP","netfilter":{"chain":"inet pwrt in","hook":"input"}}'
expect_line nfgroup '"netfilter":[{"chain":"inet pwrt in","hook":"input","verdict":"NF_DROP","count":'
ip netns exec b nft delete chain inet pwrt out

# --- --filter-mark -------------------------------------------------------------------------------
ip netns exec a nft -f - <<'NFT'
table inet pwrt {
  chain out { type filter hook output priority 0; udp dport 7001 meta mark set 0x42; }
}
NFT
run_tracer mark --backend=${BACKEND[0]#--backend=} --filter-netns /run/netns/a --filter-mark 0x42/0xff --filter-func "$RX_FUNCS"
ip netns exec a bash -c 'echo x > /dev/udp/10.0.0.2/7001; echo x > /dev/udp/10.0.0.2/7002'
stop_tracer
expect_line mark '"dport":7001'
expect_no_line mark '"dport":7002'

# --- --filter-ifname -----------------------------------------------------------------------------
run_tracer ifname "${BACKEND[@]}" --filter-netns /run/netns/b --filter-ifname vb
ping_a_to_b
ip netns exec b ping -c 1 -W 2 127.0.0.1 >/dev/null
stop_tracer
expect_line ifname '"ifname":"vb"'
expect_no_line ifname '"ifname":"lo"'

# --- a pcap filter selects the ping and one UDP port, not the neighbouring one ----------------
# (a port test loads at an offset known only at run time: the verifier must take that too)
run_tracer pcap "${BACKEND[@]}" --filter-netns /run/netns/b '(icmp and host 10.0.0.1) or udp dst port 7301'
ip netns exec a bash -c 'echo x > /dev/udp/10.0.0.2/7300; echo x > /dev/udp/10.0.0.2/7301'
ping_a_to_b
stop_tracer
expect_func_tuple pcap ip_rcv 10.0.0.1 10.0.0.2
expect_line pcap '"dport":7301'
expect_no_line pcap '"dport":7300'

# --- output options: the kernel's skb dump, skb->cb, TCP flags (SYN, then the RST) -------------
run_tracer outopts "${BACKEND[@]}" --filter-netns /run/netns/b --output-skb --output-skb-cb --output-tcp-flags 'tcp port 7400'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/7400' 2>/dev/null
stop_tracer
expect_line outopts '"skb_dump":"(struct sk_buff){' '"flags":"SYN"'
expect_line outopts '"flags":"RST|ACK"' '"sport":7400'
expect_line outopts '"cb":[' '"dport":7400'

# --- BTF expressions: --filter-skb-expr and --output-skb-metadata, injected like the pcap filter --
# On each kprobe backend: only skbs on vb pass, and the values read through the injected chains
# are the programs' own columns (len, ifindex, name).
expr_backends=("--backend=kprobe --filter-func $RX_FUNCS")
kprobe_multi_supported && expr_backends+=("--backend=kprobe-multi")
for b in "${expr_backends[@]}"; do
    name=skbexpr${b:10:8}; name=${name//[^a-z]/}
    read -r -a bargs <<< "$b"
    run_tracer $name "${bargs[@]}" --filter-netns /run/netns/b --filter-skb-expr 'skb->dev->name == "vb"' \
        --output-skb-metadata 'skb->len,skb->dev->ifindex,skb->dev->name' icmp
    ping_a_to_b
    ip netns exec b ping -c 1 -W 2 127.0.0.1 >/dev/null
    stop_tracer
    expect_line $name '"ifname":"vb"' '"skb_metadata":{"skb->len":'
    expect_no_line $name '"ifname":"lo"'
    bad=$(awk '{
        l = m = i = j = "";
        if (match($0, /,"len":[0-9]+/)) l = substr($0, RSTART + 7, RLENGTH - 7);
        if (match($0, /"skb->len":[0-9]+/)) m = substr($0, RSTART + 11, RLENGTH - 11);
        if (match($0, /"ifindex":[0-9]+/)) i = substr($0, RSTART + 10, RLENGTH - 10);
        if (match($0, /"skb->dev->ifindex":[0-9]+/)) j = substr($0, RSTART + 20, RLENGTH - 20);
        if (l == "" || l != m || i != j || index($0, "\"skb->dev->name\":\"vb\"") == 0) print
    }' /tmp/$name.json | head -2)
    lines=$(wc -l < /tmp/$name.json)
    if [ "$lines" -gt 0 ] && [ -z "$bad" ]; then
        pass "$name: $lines events, metadata equal to the columns"
    else
        fail "$name: $lines events; differing: $bad $(tail -3 /tmp/$name.err)"
    fi
done

# --- --kmods / --all-kmods: a module's skb functions (veth), named as kallsyms names them -------
# Without the option veth_xmit (module veth) is not probed; with it, b's reply leaves through it.
run_tracer nokmods --backend=kprobe --filter-func '^(veth_xmit|ip_rcv)$' --filter-netns /run/netns/b icmp
ping_a_to_b
stop_tracer
expect_no_line nokmods '"func":"veth_xmit'
kmod_backends=("--backend=kprobe --filter-func ^(veth_xmit|ip_rcv)$")
kprobe_multi_supported && kmod_backends+=("--backend=kprobe-multi")
for b in "${kmod_backends[@]}"; do
    name=kmods${b:10:8}; name=${name//[^a-z]/}
    read -r -a bargs <<< "$b"
    run_tracer $name "${bargs[@]}" --kmods veth,no-such-module --filter-netns /run/netns/b icmp
    ping_a_to_b
    stop_tracer
    expect_func_tuple $name 'veth_xmit [veth]' 10.0.0.2 10.0.0.1
    expect_stderr $name 'module no_such_module is not loaded'
done
if kprobe_multi_supported; then
    run_tracer allkmods --backend=kprobe-multi --all-kmods --filter-netns /run/netns/b icmp
    ping_a_to_b
    stop_tracer
    expect_func_tuple allkmods 'veth_xmit [veth]' 10.0.0.2 10.0.0.1
    all=$(sed -n 's/.*"hooks":\([0-9]*\).*/\1/p' /tmp/allkmods.ready-info)
    vmlinux=$(sed -n 's/.*"hooks":\([0-9]*\).*/\1/p' /tmp/multi.ready-info 2>/dev/null)
    if [ "${all:-0}" -gt "${vmlinux:-0}" ]; then
        pass "allkmods: $all functions with every module, $vmlinux without ($(grep -o 'module BTF read: .*' /tmp/allkmods.err | cut -c1-120))"
    else
        fail "allkmods: $all functions with every module, $vmlinux without"
    fi
fi

# --- tunnels: VXLAN, Geneve and IPIP between a and b; the inner ping selected by its inner packet --
# (--filter-tunnel-pcap-l3), the inner tuple beside the outer one (--output-tunnel).
tunnel_case() { # NAME N OUTER-FILTER OUTER-CHECK TYPE ARGS...
    local name=$1 n=$2 outer=$3 check=$4
    shift 4
    ip -n a link add tun$n "$@" local 10.0.0.1 remote 10.0.0.2 2>/dev/null ||
        ip -n a link add tun$n "$@" remote 10.0.0.2
    ip -n b link add tun$n "$@" local 10.0.0.2 remote 10.0.0.1 2>/dev/null ||
        ip -n b link add tun$n "$@" remote 10.0.0.1
    ip -n a addr add 192.168.$n.1/24 dev tun$n; ip -n b addr add 192.168.$n.2/24 dev tun$n
    ip -n a link set tun$n up; ip -n b link set tun$n up
    run_tracer $name "${BACKEND[@]}" --filter-netns /run/netns/b --output-tunnel \
        --filter-tunnel-pcap-l3 "icmp and host 192.168.$n.1" "$outer"
    ip netns exec a ping -c 1 -W 2 192.168.$n.2 >/dev/null || fail "$name: inner ping"
    stop_tracer
    expect_line $name "$check" "\"tunnel_tuple\":{\"saddr\":\"192.168.$n.1\",\"daddr\":\"192.168.$n.2\""
    expect_line $name "$check" "\"tunnel_tuple\":{\"saddr\":\"192.168.$n.2\",\"daddr\":\"192.168.$n.1\""
    expect_no_line $name '"tunnel_tuple":null'
    ip -n a link del tun$n; ip -n b link del tun$n
}
tunnel_case vxlan 10 'udp port 4789' '"dport":4789' type vxlan id 42 dstport 4789
tunnel_case geneve 11 'udp port 6081' '"dport":6081' type geneve id 43
tunnel_case ipip 12 'ip proto 4' '"proto":4,' type ipip
tunnel_case gre 13 'ip proto 47' '"proto":47,' type gre
tunnel_case gretap 14 'ip proto 47' '"proto":47,' type gretap

# --- --output-pcap: the packet-copying programs load here too (the host tests read files back) --
run_tracer pcapng "${BACKEND[@]}" --filter-netns /run/netns/b --output-pcap /tmp/pcapng.pcapng icmp
ping_a_to_b
stop_tracer
# A section header block, then one Enhanced Packet Block (type 6) per event at least.
magic=$(head -c 4 /tmp/pcapng.pcapng | od -An -tx1 | tr -d ' ')
size=$(stat -c %s /tmp/pcapng.pcapng 2>/dev/null || echo 0)
events=$(wc -l < /tmp/pcapng.json)
if [ "$magic" = 0a0d0d0a ] && [ "$events" -gt 0 ] && [ "$size" -gt $((events * 84)) ]; then
    pass "pcapng: $size bytes for $events events"
else
    fail "pcapng: magic $magic, $size bytes for $events events: $(tail -3 /tmp/pcapng.err)"
fi

# --- --output-netns-names: the ip-netns name of the namespace -------------------------------------
run_tracer nsname "${BACKEND[@]}" --filter-netns /run/netns/b --output-netns-names icmp
ping_a_to_b
stop_tracer
expect_line nsname '"netns_name":"b"' '"saddr":"10.0.0.1"'

# --- --filter-track-skb: followed through a DNAT; into a clone (tc mirred mirror) --------------
ip netns exec b nft -f - <<'NFT'
table ip pwrnat {
  chain pre { type nat hook prerouting priority -100; ip daddr 10.10.20.99 tcp dport 80 dnat to 10.0.0.2:8080; }
}
NFT
ip -n a route add 10.10.20.99 via 10.0.0.2
# On every kprobe backend of the kernel (plain kprobes: the subset, where kfree_skbmem is
# hooked by the tracking itself).
TRACK_RUNS=(track)
kprobe_multi_supported && TRACK_RUNS+=(trackkp)
for run in "${TRACK_RUNS[@]}"; do
    args=("${BACKEND[@]}")
    [ $run = trackkp ] && args=(--backend=kprobe --filter-func "$RX_FUNCS|kfree_skb_reason")
    run_tracer $run "${args[@]}" --filter-netns /run/netns/b --filter-track-skb 'dst host 10.10.20.99'
    ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.10.20.99/80' 2>/dev/null
    # Unrelated traffic afterwards, into skbs at the addresses the SYN's freed ones had.
    ip netns exec a bash -c 'for i in $(seq 20); do echo x > /dev/udp/10.0.0.2/7999; done'
    stop_tracer
    expect_stderr $run "clones and copies followed through skb_clone"
    expect_line $run '"daddr":"10.10.20.99"' '"tracked_by":"filter"'
    expect_line $run '"dport":8080' '"tracked_by":"skb"'
    expect_no_line $run '"dport":7999'
done

ip -n a link add vd type dummy && ip -n a link set vd up
ip netns exec a tc qdisc add dev va clsact
ip netns exec a tc filter add dev va egress protocol ip flower action mirred egress mirror dev vd
run_tracer clone "${BACKEND[@]}" --filter-netns /run/netns/a --filter-track-skb icmp
ping_a_to_b
stop_tracer
expect_clone_of_traced clone vd
# The same without fexit, as on a kernel without BPF trampolines: kprobe + kretprobe pairs.
export PWRU_RS_TEST_NO_FEXIT=1
run_tracer clonekretprobe "${BACKEND[@]}" --filter-netns /run/netns/a --filter-track-skb icmp
unset PWRU_RS_TEST_NO_FEXIT
ping_a_to_b
stop_tracer
expect_stderr clonekretprobe "clones and copies followed by kretprobes"
expect_clone_of_traced clonekretprobe vd
ip netns exec a tc qdisc del dev va clsact

# --- --output-stack and --output-caller: the kernel's own stack, the real caller -------------
run_tracer stack "${BACKEND[@]}" --filter-netns /run/netns/b --output-stack --output-caller icmp
ping_a_to_b
stop_tracer
expect_line stack '"func":"icmp_rcv"' '"caller_func":"ip_protocol_deliver_rcu"'
expect_line stack '"func":"icmp_rcv"' '"stack":["'
expect_line stack '"func":"icmp_rcv"' '"ip_local_deliver_finish+0x'

# --- veth's XDP path rebuilds the skb it receives: the copy is followed, with its parent ------
# (with an XDP program on vb, veth copies the ping's skb: skb_pp_cow_data on 6.12; 6.1 copies
# inline, where nothing can be hooked)
if grep -qE ' (skb_pp_cow_data|veth_convert_skb_to_xdp_buff)' /proc/kallsyms; then
    ip -n b link set dev vb xdp obj /usr/lib/pwru-vm/xdp_pass.o sec xdp
    run_tracer vethxdp "${BACKEND[@]}" --filter-track-skb 'icmp and dst host 10.0.0.2'
    ping_a_to_b
    stop_tracer
    ip -n b link set dev vb xdp off
    expect_stderr vethxdp "skb_pp_cow_data"
    expect_clone_of_traced vethxdp vb
else
    echo "vethxdp: no function copies veth's XDP skbs on this kernel: skipped"
fi

# --- --filter-trace-tc / --filter-trace-xdp: a dataplane's programs, attached by iproute2 -------
# The test dataplane on vb: tc ingress drops TCP to port 9 and passes the rest, XDP passes all.
DP=/usr/lib/pwru-vm/test-dataplane.o
ip netns exec b tc qdisc add dev vb clsact
ip netns exec b tc filter add dev vb ingress bpf da obj $DP sec classifier || fail "tc: cannot attach the test dataplane"
ip -n b link set dev vb xdp obj $DP sec xdp || fail "ip: cannot attach the test dataplane's XDP program"
ip netns exec b bash -c 'busybox nc -l -p 7600 >/dev/null 2>&1 &'
run_tracer bpfprog "${BACKEND[@]}" --filter-trace-tc --filter-trace-xdp --output-packet-bytes 'tcp port 9 or tcp port 7600'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/9' 2>/dev/null
ip netns exec a timeout 2 bash -c 'echo hi > /dev/tcp/10.0.0.2/7600' 2>/dev/null
stop_tracer
expect_stderr bpfprog "): pwru_test_tc, pwru_test_xdp"
expect_line bpfprog '"func":"pwru_test_tc",' '"dport":9,'
expect_line bpfprog '"func":"pwru_test_tc(TC_ACT_SHOT)"' '"dport":9,'
expect_line bpfprog '"verdict":"TC_ACT_SHOT","verdict_code":2' '"dport":9,'
expect_line bpfprog '"func":"pwru_test_tc(TC_ACT_OK)"' '"dport":7600'
expect_line bpfprog '"func":"pwru_test_xdp(XDP_PASS)"' '"xdp":{"rx_queue":0}'
# The XDP program's frame, from its Ethernet header (the SYN: 74 bytes).
expect_line bpfprog '"func":"pwru_test_xdp(XDP_PASS)"' '"packet_bytes":{"link":1,"orig_len":74,'
if grep -F '"func":"pwru_test_tc(TC_ACT_OK)"' /tmp/bpfprog.json | grep -qF '"dport":9,'; then
    fail "bpfprog: the dataplane passed TCP to port 9"
fi
# The dropped SYN is freed with tc's drop reason; the passed one goes on into the stack.
expect_line bpfprog '"reason":"SKB_DROP_REASON_TC_INGRESS"' '"dport":9,'
expect_after bpfprog '"func":"pwru_test_tc(TC_ACT_OK)"' '"func":"ip_rcv_core"' '"dport":7600'
# --filter-track-bpf-helpers: the helpers the dataplane calls (it reads headers with
# bpf_skb_load_bytes), inside its entry and exit, for the packets the filter passed only.
ip netns exec b bash -c 'busybox nc -l -p 7600 >/dev/null 2>&1 &'
run_tracer bpfhelpers "${BACKEND[@]}" --filter-trace-tc --filter-track-bpf-helpers 'tcp port 7600'
ip netns exec a timeout 2 bash -c 'echo > /dev/tcp/10.0.0.2/9' 2>/dev/null
ip netns exec a timeout 2 bash -c 'echo hi > /dev/tcp/10.0.0.2/7600' 2>/dev/null
stop_tracer
expect_stderr bpfhelpers "functions the traced programs call: "
expect_stderr bpfhelpers "bpf_skb_load_bytes"
expect_line bpfhelpers '"func":"bpf_skb_load_bytes"' '"dport":7600'
expect_after bpfhelpers '"func":"pwru_test_tc",' '"func":"bpf_skb_load_bytes"' '"dport":7600'
expect_after bpfhelpers '"func":"bpf_skb_load_bytes"' '"func":"pwru_test_tc(TC_ACT_OK)"' '"dport":7600'
expect_no_line bpfhelpers '"dport":9,'
# --output-bpfmap: the dataplane counts packets per port in a hash map (a lookup the verifier
# turns into a call of __htab_map_lookup_elem, an update of htab_map_update_elem): each shows
# with the map, the key (port 7600, little-endian) and the value.
ip netns exec b bash -c 'busybox nc -l -p 7600 >/dev/null 2>&1 &'
# (--filter-track-skb-by-stackid: pwru-rs's own programs then update a hash map inside the
# dataplane's, an access that is not the dataplane's and must not show.)
run_tracer bpfmap "${BACKEND[@]}" --filter-trace-tc --filter-track-bpf-helpers --output-bpfmap \
    --filter-track-skb-by-stackid 'tcp port 7600'
ip netns exec a timeout 2 bash -c 'echo hi > /dev/tcp/10.0.0.2/7600' 2>/dev/null
stop_tracer
other_maps=$(grep -o '"bpf_map":{"op":"[a-z]*","id":[0-9]*,"name":"[^"]*"' /tmp/bpfmap.json | grep -v '"name":"PORT_HITS"' | sort -u)
[ -z "$other_maps" ] && pass "bpfmap: only the dataplane's map shows" || fail "bpfmap: other maps show: $other_maps"
expect_stderr bpfmap "map operations the traced programs call: "
expect_line bpfmap '"func":"htab_map_update_elem"' '"bpf_map":{"op":"update","id":'
expect_line bpfmap '"bpf_map":{"op":"update"' '"name":"PORT_HITS","key_size":2,"value_size":8,"key":"b01d","value":"'
expect_line bpfmap '"bpf_map":{"op":"lookup"' '"name":"PORT_HITS","key_size":2,"value_size":8,"key":"b01d"'
# A lookup's value is what the update after it wrote less one: the count it found.
lookup_value=$(grep -F '"func":"__htab_map_lookup_elem"' /tmp/bpfmap.json | grep -F '"value":"' | tail -1 | sed 's/.*"key":"b01d","value":"\(..\).*/\1/')
update_value=$(grep -F '"func":"htab_map_update_elem"' /tmp/bpfmap.json | tail -1 | sed 's/.*"key":"b01d","value":"\(..\).*/\1/')
if [ -n "$lookup_value" ] && [ $((16#$update_value)) -eq $((16#$lookup_value + 1)) ]; then
    pass "bpfmap: the last lookup found $lookup_value, the update after it wrote $update_value"
else
    fail "bpfmap: the last lookup found '$lookup_value', the update after it wrote '$update_value'"
fi
expect_line bpfmap '"func":"bpf_skb_load_bytes"' '"bpf_map":null'
expect_after bpfmap '"func":"pwru_test_tc",' '"bpf_map":{"op":"update"' '"dport":7600'
# With --filter-track-skb, the skb built on a packet XDP passed is followed (here it was not
# traced before: only functions after XDP are hooked).
ip netns exec b bash -c 'busybox nc -l -p 7600 >/dev/null 2>&1 &'
run_tracer xdptrack --backend=${BACKEND[0]#--backend=} --filter-trace-xdp --filter-track-skb --filter-func '^(ip_rcv_core|tcp_v4_rcv)$' 'tcp dst port 7600'
ip netns exec a timeout 2 bash -c 'echo hi > /dev/tcp/10.0.0.2/7600' 2>/dev/null
stop_tracer
expect_line xdptrack '"func":"pwru_test_xdp(XDP_PASS)"' '"dport":7600'
expect_line xdptrack '"func":"ip_rcv_core"' '"tracked_by":"xdp"'
# XDP expressions over the xdp_buff: its device by index, and its fields printed.
vb_index=$(cat /sys/class/net/vb/ifindex 2>/dev/null || ip netns exec b cat /sys/class/net/vb/ifindex)
run_tracer xdpexpr --backend=${BACKEND[0]#--backend=} --filter-trace-xdp --filter-func '^ip_rcv_core$' \
    --filter-xdp-expr "xdp->rxq->dev->ifindex == $vb_index" \
    --output-xdp-metadata 'xdp->rxq->dev->name,xdp->rxq->queue_index' 'icmp'
ping_a_to_b
stop_tracer
expect_line xdpexpr '"func":"pwru_test_xdp(XDP_PASS)"' '"skb_metadata":{"xdp->rxq->dev->name":"vb","xdp->rxq->queue_index":0}'
run_tracer xdpexprno --backend=${BACKEND[0]#--backend=} --filter-trace-xdp --filter-func '^ip_rcv_core$' \
    --filter-xdp-expr "xdp->rxq->dev->ifindex == $((vb_index + 100))" 'icmp'
ping_a_to_b
stop_tracer
expect_no_line xdpexprno '"func":"pwru_test_xdp'
ip -n b link set dev vb xdp off
ip netns exec b tc qdisc del dev vb clsact

# --- --filter-track-skb-by-stackid across a bridge; --filter-non-skb-funcs ---------------------
# c -- [bridge in netns br] -- d. The SYN to d:7500 matches; d's RST is a new skb made on the
# stack the SYN ran on: only stack tracking shows it.
ip netns add c && ip netns add d && ip netns add br
ip link add vc netns c type veth peer name bc netns br
ip link add vd netns d type veth peer name bd netns br
ip -n br link add br0 type bridge
for port in bc bd; do ip -n br link set $port master br0 && ip -n br link set $port up; done
ip -n br link set br0 up
ip -n c addr add 10.0.1.1/24 dev vc && ip -n c link set vc up
ip -n d addr add 10.0.1.2/24 dev vd && ip -n d link set vd up
ip netns exec c ping -c 1 -W 5 10.0.1.2 >/dev/null || fail "bridge does not pass traffic"
run_tracer stackid "${BACKEND[@]}" --filter-track-skb-by-stackid 'tcp dst port 7500'
ip netns exec c timeout 2 bash -c 'echo > /dev/tcp/10.0.1.2/7500' 2>/dev/null
stop_tracer
expect_line stackid '"dport":7500' '"ifname":"bd"'
expect_line stackid '"sport":7500' '"tracked_by":"stackid"'
run_tracer nostackid "${BACKEND[@]}" 'tcp dst port 7500'
ip netns exec c timeout 2 bash -c 'echo > /dev/tcp/10.0.1.2/7500' 2>/dev/null
stop_tracer
expect_no_line nostackid '"sport":7500'

run_tracer nonskb "${BACKEND[@]}" --filter-netns /run/netns/b --filter-non-skb-funcs fib_table_lookup icmp
ping_a_to_b
stop_tracer
expect_line nonskb '"func":"fib_table_lookup"' '"tracked_by":"stackid"'

# --- --output-file rotation: whole events, in time order across the files; the backups cap -----
# (one CPU, so the ring buffer holds the flood's events in time order; ~4 MiB of events: about
# 50 per ping with every function, fewer with the subset)
PINGS=600
kprobe_multi_supported && PINGS=200
rotation_flood() {
    local name=$1; shift
    run_tracer $name "${BACKEND[@]}" --filter-netns /run/netns/b --timestamp current \
        --output-file-max-size 1 "$@" icmp
    ip netns exec a taskset -c 0 ping -q -A -c $PINGS 10.0.0.2 >/dev/null
    stop_tracer
}
rotation_flood rotall
expect_rotation rotall 0
rotation_flood rotcap --output-file-max-backups 2
expect_rotation rotcap 2

# --- least privilege: kprobe-multi runs with CAP_BPF, CAP_PERFMON and CAP_SYSLOG (for kallsyms'
# addresses); without CAP_SYSLOG it says so; plain kprobes need CAP_SYS_ADMIN and say so.
if kprobe_multi_supported; then
    rm -f /tmp/caps.ready
    setpriv --bounding-set=-all,+bpf,+perfmon,+syslog -- pwru-rs --backend kprobe-multi \
        --filter-netns /run/netns/b --output-json --output-file /tmp/caps.json \
        --ready-file /tmp/caps.ready icmp 2>/tmp/caps.err &
    caps_pid=$!
    for _ in $(seq 600); do [ -e /tmp/caps.ready ] && break; kill -0 $caps_pid 2>/dev/null || break; sleep 0.1; done
    ping_a_to_b
    sleep 0.5
    kill -INT $caps_pid 2>/dev/null
    wait $caps_pid
    if grep -q '"saddr":"10.0.0.1"' /tmp/caps.json 2>/dev/null; then
        pass "caps: kprobe-multi with CAP_BPF, CAP_PERFMON and CAP_SYSLOG traces the ping"
    else
        fail "caps: kprobe-multi with CAP_BPF, CAP_PERFMON, CAP_SYSLOG: $(tail -2 /tmp/caps.err)"
    fi
    err=$(setpriv --bounding-set=-all,+bpf,+perfmon -- pwru-rs --backend kprobe-multi icmp 2>&1 | grep error)
    [[ $err == *CAP_SYSLOG* ]] && pass "caps: without CAP_SYSLOG: $err" || fail "caps: without CAP_SYSLOG: $err"
fi
err=$(setpriv --bounding-set=-all,+bpf,+perfmon,+syslog -- pwru-rs --backend kprobe --filter-func '^ip_rcv$' icmp 2>&1 | grep error)
[[ $err == *CAP_SYS_ADMIN* ]] && pass "caps: plain kprobe without CAP_SYS_ADMIN: $err" || fail "caps: plain kprobe without CAP_SYS_ADMIN: $err"

# --- what pwru-rs survives on the kprobe backends: each signal, an attach failing half-way; then
# nothing of it in the kernel (programs, maps; links hold programs) nor in kprobe_events ----------
# pwru-rs's objects, once the kernel has freed what it frees a moment after the exit.
pwru_objects() {
    local n i
    for i in $(seq 50); do
        n=$( { bpftool prog show; bpftool map show; } 2>/dev/null |
            grep -cE ' name (pwru_[a-z0-9_]*|EVENTS|TRACKED|DUMPS|RECORDS|STACKS) ')
        [ "$n" -eq 0 ] && break
        sleep 0.1
    done
    local events
    events=$(grep -c pwru /sys/kernel/tracing/kprobe_events 2>/dev/null)
    echo "$n ${events:-0}"
}
# What pwru_objects counts, named, with who holds them.
pwru_object_names() {
    { bpftool prog show; bpftool map show; } 2>/dev/null |
        grep -E ' name (pwru_[a-z0-9_]*|EVENTS|TRACKED|DUMPS|RECORDS|STACKS) ' | cut -c1-60 | tr '\n' ';'
    bpftool prog show 2>/dev/null | grep -A4 ' name pwru_' | grep -o 'pids [^ ]*' | sort -u | tr '\n' ' '
}
if command -v bpftool >/dev/null; then
    SURVIVE_BACKENDS="kprobe"
    kprobe_multi_supported && SURVIVE_BACKENDS="kprobe-multi kprobe"
    for backend in $SURVIVE_BACKENDS; do
        for sig in INT TERM HUP KILL; do
            run_tracer "survive-$backend-$sig" --backend $backend --filter-func "$RX_FUNCS" icmp
            ping_a_to_b
            kill -$sig "$TRACER_PID"
            wait "$TRACER_PID"
            rc=$?
            want=0
            [ $sig = KILL ] && want=137
            left=$(pwru_objects)
            if [ $rc -eq $want ] && [ "$left" = "0 0" ]; then
                pass "survive: $backend SIG$sig: exit $rc, nothing left"
            else
                fail "survive: $backend SIG$sig: exit $rc (want $want), left (objects, kprobe events): $left"
            fi
            TRACER_PID=
        done
    done
    # kprobe-multi: its one link refused after the program loaded is an error, and the program
    # and maps go with it.
    if kprobe_multi_supported; then
        out=$(PWRU_RS_TEST_FAIL_ATTACH_AT=0 timeout 120 pwru-rs --backend kprobe-multi icmp 2>&1 >/dev/null)
        rc=$?
        left=$(pwru_objects)
        if [ $rc -eq 1 ] && [ "$(echo "$out" | grep -c error)" -eq 1 ] && [ "$left" = "0 0" ]; then
            pass "survive: kprobe-multi link refused: $(echo "$out" | grep error)"
        else
            fail "survive: kprobe-multi link refused: exit $rc, left $left: $out"
        fi
    fi
    # Plain kprobes: a refused function is skipped, counted, and the rest traced.
    run_tracer survive-kprobe-skip --backend kprobe --filter-func "$RX_FUNCS" icmp
    stop_tracer
    left=$(pwru_objects)
    [ "$left" = "0 0" ] && pass "survive: kprobe stop: nothing left" || fail "survive: kprobe stop: left $left"
    rm -f /tmp/skip.ready
    skipped=
    if PWRU_RS_TEST_FAIL_ATTACH_AT=0 pwru_start /tmp/skip.ready /tmp/skip.err 180 --backend kprobe \
        --filter-func "$RX_FUNCS" --output-file /dev/null icmp; then
        skipped=$(sed -n 's/.*"skipped":\([0-9]*\).*/\1/p' /tmp/skip.ready)
        pwru_stop
    fi
    left=$(pwru_objects)
    if [ "$PWRU_STATUS" -eq 0 ] && [ "${skipped:-0}" -ge 1 ] && [ "$left" = "0 0" ]; then
        pass "survive: kprobe with one function refused: skipped $skipped, exit 0, nothing left"
    else
        fail "survive: kprobe with one function refused: exit $PWRU_STATUS, skipped ${skipped:-?}, left $left: $(tail -2 /tmp/skip.err)"
    fi
else
    echo "survive: no bpftool in this guest: the leftover checks run on the host only"
fi

# --- concurrency: two pwru-rs at once; another tool's kprobe on the same function; a traced
# module unloaded during the trace. Each ends with a clean exit and nothing of pwru-rs left. ----
CONC_BACKENDS="kprobe"
kprobe_multi_supported && CONC_BACKENDS="kprobe-multi kprobe"
for backend in $CONC_BACKENDS; do
    # Two instances on the same functions with different filters: each sees its own packets,
    # and stopping one leaves the other tracing.
    second=conc2-$backend
    rm -f /tmp/$second.json
    if pwru_start /tmp/$second.ready /tmp/$second.err 180 --backend $backend --filter-func "$RX_FUNCS" \
        --output-json --output-file /tmp/$second.json 'udp port 7777'; then
        second_pid=$PWRU_PID
        run_tracer conc1-$backend --backend $backend --filter-func "$RX_FUNCS" --filter-netns /run/netns/b icmp
        ping_a_to_b
        ip netns exec a bash -c 'echo x > /dev/udp/10.0.0.2/7777'
        sleep 0.5
        PWRU_PID=$second_pid
        pwru_stop
        second_rc=$PWRU_STATUS
        PWRU_PID=$TRACER_PID # stop_tracer's
        : >/tmp/conc1-$backend.json # from here on, only what arrived after the other stopped
        ping_a_to_b
        stop_tracer
        expect_line conc1-$backend '"func":"ip_rcv' '"saddr":"10.0.0.1"'
        expect_no_line conc1-$backend '"dport":7777'
        if [ "$second_rc" -eq 0 ] && grep -q '"dport":7777' /tmp/$second.json &&
            ! grep -q '"proto":1,' /tmp/$second.json; then
            pass "$second: its own datagram only, exit 0"
        else
            fail "$second: exit $second_rc, events: $(head -c 300 /tmp/$second.json)"
        fi
    else
        fail "$second: pwru-rs did not get ready: $(tail -3 /tmp/$second.err)"
    fi
    left=$(pwru_objects)
    [ "$left" = "0 0" ] || fail "conc-$backend: left $left: $(pwru_object_names)"

    # Another tool's kprobe (here: tracefs) on a function pwru-rs traces: both work, and
    # pwru-rs leaves the other's probe as it found it.
    if echo 'p:othertool/iprcv ip_rcv' >>/sys/kernel/tracing/kprobe_events &&
        echo 1 >/sys/kernel/tracing/events/othertool/iprcv/enable; then
        run_tracer other-$backend --backend $backend --filter-func "$RX_FUNCS" --filter-netns /run/netns/b icmp
        ping_a_to_b
        stop_tracer
        expect_line other-$backend '"func":"ip_rcv' '"saddr":"10.0.0.1"'
        hits=$(awk '$1 == "iprcv" {print $2}' /sys/kernel/tracing/kprobe_profile)
        enabled=$(cat /sys/kernel/tracing/events/othertool/iprcv/enable)
        if [ "${hits:-0}" -gt 0 ] && [ "$enabled" = 1 ]; then
            pass "other-$backend: the other tool's kprobe kept ($hits hits, enabled)"
        else
            fail "other-$backend: the other tool's kprobe: hits ${hits:-none}, enabled $enabled"
        fi
        echo 0 >/sys/kernel/tracing/events/othertool/iprcv/enable
        echo '-:othertool/iprcv' >>/sys/kernel/tracing/kprobe_events
    else
        fail "other-$backend: cannot add a kprobe through tracefs"
    fi

    # A module whose function is traced, unloaded during the trace (after its traffic). With
    # kprobe-multi the kernel refuses the unload while the link holds the module; with plain
    # kprobes it unloads and disarms them. Either way pwru-rs keeps tracing and exits cleanly.
    if modprobe dummy && ip link add dm0 type dummy && ip addr add 10.9.0.1/24 dev dm0 &&
        ip link set dm0 up; then
        run_tracer rmmod-$backend --backend $backend --kmods dummy \
            --filter-func '^(dummy_xmit|ip_rcv)$' 'host 10.9.0.2 or icmp'
        ping -c 1 -W 1 10.9.0.2 >/dev/null 2>&1
        sleep 0.3
        ip link del dm0
        if rmmod dummy 2>/tmp/rmmod.err; then unloaded="unloaded"; else unloaded="refused ($(cat /tmp/rmmod.err))"; fi
        alive=no
        kill -0 "$TRACER_PID" 2>/dev/null && alive=yes
        ping_a_to_b
        stop_tracer
        expect_line rmmod-$backend '"func":"dummy_xmit [dummy]' '"daddr":"10.9.0.2"'
        expect_line rmmod-$backend '"func":"ip_rcv' '"saddr":"10.0.0.1"'
        left=$(pwru_objects)
        if [ $alive = yes ] && [ "$left" = "0 0" ]; then
            pass "rmmod-$backend: module $unloaded during the trace; pwru-rs went on, exit 0, nothing left"
        else
            fail "rmmod-$backend: module $unloaded; pwru-rs alive after it: $alive; left $left: $(pwru_object_names)"
        fi
        rmmod dummy 2>/dev/null
    else
        fail "rmmod-$backend: no dummy device"
    fi
done

# --- the CI actions (actions/pwru-rs-run, actions/pwru-rs-log): their shell steps as GitHub runs
# them, on the "runner" and through `vm-exec` (here `env`, a shell on the same machine, as
# `ssh root@vm` would be one in the VM): ready before the traffic, the trace printed after it
# with the summary, exit 0, nothing left.
# The first step's `run: |` block of an action.yml.
action_run() {
    awk '/^      run: \|$/ {p = 1; next} p && /^        / {sub(/^        /, ""); print; next} p {exit}' "$1"
}
for via in runner vm-exec; do
    vm_exec=
    [ $via = vm-exec ] && vm_exec=env
    rm -rf /tmp/action-state /tmp/action-runner && mkdir -p /tmp/action-runner
    action_env=(GITHUB_ACTION_PATH=/payload/actions/pwru-rs-run RUNNER_TEMP=/tmp/action-runner
        VM_EXEC="$vm_exec" PWRU_RS_STATE=/tmp/action-state)
    if env "${action_env[@]}" PWRU_RS_FLAGS="--output-json --filter-netns /run/netns/b ${BACKEND[*]}" \
        PWRU_RS_PCAP_FILTER="icmp and host 10.0.0.1" PWRU_RS_BINARY=pwru-rs PWRU_RS_READY_TIMEOUT=300 \
        bash -e -o pipefail -c "$(action_run /payload/actions/pwru-rs-run/action.yml)" >/tmp/action-run.out 2>&1; then
        grep -q '^pwru-rs ready: {"backend"' /tmp/action-run.out && pass "action-$via: pwru-rs-run waited until ready" ||
            fail "action-$via: pwru-rs-run: $(cat /tmp/action-run.out)"
        ping_a_to_b
        env "${action_env[@]}" GITHUB_ACTION_PATH=/payload/actions/pwru-rs-log PWRU_RS_PRINT_LINES=3 \
            bash -e -o pipefail -c "$(action_run /payload/actions/pwru-rs-log/action.yml)" >/tmp/action-log.out 2>&1
        rc=$?
        left=$(pwru_objects)
        if [ $rc -eq 0 ] && grep -q '^::group::pwru-rs trace' /tmp/action-log.out &&
            grep -q '"saddr":"10.0.0.1"' /tmp/action-log.out && grep -q '^pwru-rs stats: {"backend"' /tmp/action-log.out &&
            grep -q '"saddr":"10.0.0.1"' /tmp/action-runner/pwru-rs/trace && [ "$left" = "0 0" ]; then
            pass "action-$via: pwru-rs-log stopped it, printed the trace and stats, copied the trace, nothing left"
        else
            fail "action-$via: pwru-rs-log exit $rc, left $left: $(head -c 1500 /tmp/action-log.out)"
        fi
    else
        fail "action-$via: pwru-rs-run failed: $(cat /tmp/action-run.out)"
    fi
done
# pwru-rs refusing its flags: pwru-rs-run fails at once, saying why.
if env GITHUB_ACTION_PATH=/payload/actions/pwru-rs-run RUNNER_TEMP=/tmp/action-runner VM_EXEC= \
    PWRU_RS_STATE=/tmp/action-state PWRU_RS_FLAGS="--filter-mark 0x1/0x0" PWRU_RS_PCAP_FILTER= \
    PWRU_RS_BINARY=pwru-rs PWRU_RS_READY_TIMEOUT=300 \
    bash -e -o pipefail -c "$(action_run /payload/actions/pwru-rs-run/action.yml)" >/tmp/action-run.out 2>&1; then
    fail "action-refused: pwru-rs-run succeeded: $(cat /tmp/action-run.out)"
else
    grep -q 'pwru-rs stopped before it was ready' /tmp/action-run.out && grep -q 'error:' /tmp/action-run.out &&
        pass "action-refused: pwru-rs-run failed, with pwru-rs's error" ||
        fail "action-refused: $(cat /tmp/action-run.out)"
fi

# --- direct reads (bpf_rdonly_cast, 6.2+) on the kprobe program type; 6.1 keeps the helper -----
run_tracer direct "${BACKEND[@]}" --debug --filter-netns /run/netns/b \
    --filter-skb-expr 'skb->dev->mtu == 1500' 'icmp'
ping_a_to_b
stop_tracer
expect_func_tuple direct ip_rcv 10.0.0.1 10.0.0.2
if [[ $KVER == 6.1.* ]]; then
    if grep -qF "direct reads" /tmp/direct.err; then
        fail "direct: 6.1 has no bpf_rdonly_cast, yet: $(grep -F 'direct reads' /tmp/direct.err)"
    else
        pass "direct: 6.1 reads with the helper"
    fi
else
    expect_stderr direct "direct reads (bpf_rdonly_cast): yes"
fi

# --- --version names the backends this kernel has ---------------------------------------------
version=$(pwru-rs --version 2>&1)
if echo "$version" | grep -q 'kprobe: supported' && \
   { ! kprobe_multi_supported || echo "$version" | grep -q 'kprobe-multi: supported'; }; then
    pass "version: $(echo "$version" | tail -1)"
else
    fail "version: $version"
fi

finish
