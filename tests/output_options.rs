//! pwru's output options on real traffic (tracepoint backend on the host): the kernel's own
//! dump of the skb and its shared info, `skb->cb`, and the TCP flags in the tuple.

use integration_tests::{dport, require_root, show, tuple, veth_pair, Tracer, EVENT_TIMEOUT};

const BACKEND: &str = "tracepoint";

/// A ping from a to b, traced where b receives it, with `args` on top.
fn traced_ping(args: &[&str]) -> (integration_tests::Trace, integration_tests::VethPair) {
    let net = veth_pair();
    let netns = net.b.path();
    let mut all = vec!["--filter-netns", netns.as_str()];
    all.extend_from_slice(&["--filter-func", "netif_receive_skb", "icmp"]);
    all.extend_from_slice(args);
    let trace = Tracer::start(BACKEND, &all).ping_a_to_b_and_stop(&net);
    (trace, net)
}

#[test]
fn skb_and_shared_info_dumps_are_the_kernels_view_of_the_packet() {
    require_root();
    let (trace, net) = traced_ping(&["--output-skb", "--output-skb-shared-info"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let e = echo
        .first()
        .unwrap_or_else(|| panic!("no echo request: {}", trace.dump()));
    let skb = e
        .skb_dump
        .as_deref()
        .unwrap_or_else(|| panic!("no skb dump: {}", show(e)));
    assert!(skb.starts_with("(struct sk_buff){"), "{skb}");
    // The dump's fields agree with the event's own columns.
    assert!(
        skb.contains(&format!(".len = (unsigned int){},", e.len)),
        "len {} not in the dump: {skb}",
        e.len
    );
    // skb->protocol is big-endian: ETH_P_IP (0x0800) reads as 8 on this little-endian host.
    assert!(skb.contains(".protocol = (__be16)8,"), "{skb}");
    let shinfo = e.skb_shared_info.as_deref().unwrap();
    assert!(shinfo.starts_with("(struct skb_shared_info){"), "{shinfo}");
    assert_eq!(e.cb, None, "no --output-skb-cb");
}

#[test]
fn a_small_percpu_buffer_cuts_the_dump_and_says_so() {
    require_root();
    let (trace, net) = traced_ping(&["--output-skb", "--set-percpu-buf", "256"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let skb = echo[0].skb_dump.as_deref().unwrap();
    let (text, marker) = skb.rsplit_once('\n').unwrap();
    assert_eq!(text.len(), 255, "the buffer less its NUL: {skb}");
    assert!(
        marker.starts_with("... cut at 255 of ") && marker.ends_with(" bytes (--set-percpu-buf)"),
        "{marker}"
    );
}

#[test]
fn skb_cb_is_five_words() {
    require_root();
    let (trace, net) = traced_ping(&["--output-skb-cb"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(!echo.is_empty(), "{}", trace.dump());
    for e in echo {
        assert!(e.cb.is_some(), "{}", show(e));
        assert_eq!(e.skb_dump, None);
    }
}

#[test]
fn tcp_flags_show_the_syn_and_the_reset() {
    require_root();
    let net = veth_pair();
    let path = net.a.path();
    let args = [
        "--filter-netns",
        path.as_str(),
        "--filter-func",
        "net_dev_queue|netif_receive_skb",
        "--output-tcp-flags",
        "tcp port 7400",
    ];
    let tracer = Tracer::start(BACKEND, &args);
    // Nothing listens on b:7400: the SYN is answered with RST|ACK.
    let connect = format!("timeout 2 bash -c 'echo > /dev/tcp/{}/7400'", net.addr_b);
    net.a.sh_any(&connect).unwrap();
    let reset = |e: &pwru_rs::output::JsonEvent| {
        e.tuple
            .as_ref()
            .is_some_and(|t| t.sport == 7400 && t.flags.as_deref() == Some("RST|ACK"))
    };
    tracer.wait_for(|t| t.events.iter().any(reset), EVENT_TIMEOUT);
    let trace = tracer.stop();
    let syn = trace
        .with_tuple(Some(&net.addr_a), Some(&net.addr_b))
        .into_iter()
        .find(|e| dport(e) == Some(7400))
        .unwrap_or_else(|| panic!("no SYN: {}", trace.dump()));
    assert_eq!(tuple(syn).flags.as_deref(), Some("SYN"), "{}", show(syn));
    assert!(
        trace.events.iter().any(reset),
        "no RST|ACK: {}",
        trace.dump()
    );

    // The same in text: tcpdump's notation inside the tuple.
    let tracer = Tracer::start_text(
        BACKEND,
        &[&args[..], &["--output-limit-lines", "2"]].concat(),
    );
    net.a.sh_any(&connect).unwrap();
    let finished = tracer.wait_exit(EVENT_TIMEOUT);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert!(
        finished.output.contains(":7400(tcp:[S]) net_dev_queue"),
        "{}",
        finished.output
    );
}

#[test]
fn netns_names_name_the_test_namespace() {
    require_root();
    let (trace, net) = traced_ping(&["--output-netns-names"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(!echo.is_empty(), "{}", trace.dump());
    for e in echo {
        assert_eq!(
            e.netns_name.as_deref(),
            Some(net.b.name.as_str()),
            "{}",
            show(e)
        );
    }
}

#[test]
fn stacks_and_callers_are_the_kernels() {
    require_root();
    let (trace, net) = traced_ping(&["--output-stack", "--output-caller"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(!echo.is_empty(), "{}", trace.dump());
    for e in echo {
        let stack = e
            .stack
            .as_ref()
            .unwrap_or_else(|| panic!("no stack: {}", show(e)));
        // The veth's receive path, below the tracepoint: real network functions, symbolised.
        assert!(
            stack.iter().any(
                |f| f.starts_with("process_backlog+0x") || f.starts_with("__netif_receive_skb")
            ),
            "{stack:?}"
        );
        assert!(
            stack
                .iter()
                .all(|f| f.contains("+0x") || f.starts_with("0x")),
            "{stack:?}"
        );
        assert_eq!(e.stack_error, None);
        // The tracepoint netif_receive_skb sits in __netif_receive_skb_core.
        let caller = e.caller_func.as_deref().unwrap_or_default();
        assert!(
            caller.starts_with("__netif_receive_skb_core"),
            "{}",
            show(e)
        );
    }
}
