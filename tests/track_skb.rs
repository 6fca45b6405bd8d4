//! `--filter-track-skb` on the host (tracepoint backend): a packet is followed after an
//! nftables DNAT rewrote the headers the filter matched on; unrelated traffic is not taken for a
//! tracked packet; a full tracking map is counted, not hidden.

use integration_tests::{dport, require_root, show, veth_pair, Tracer, VethPair, EVENT_TIMEOUT};

const BACKEND: &str = "tracepoint";
/// What the client in netns a connects to; b rewrites it to its own address, port 8080.
const SERVICE: &str = "10.10.20.99";

/// Netns b DNATs SERVICE:80 to b:8080 (nothing listens there: the SYN is answered with RST).
fn dnat_pair() -> VethPair {
    let net = veth_pair();
    net.b
        .sh(&format!(
            "printf 'table ip pwrt {{\\n chain pre {{\\n  type nat hook prerouting priority -100;\\n  \
             ip daddr {SERVICE} tcp dport 80 dnat to {}:8080\\n }}\\n}}\\n' | nft -f -",
            net.addr_b
        ))
        .unwrap();
    net.a
        .sh(&format!("ip route add {SERVICE} via {}", net.addr_b))
        .unwrap();
    net
}

fn connect_to_service(net: &VethPair) {
    net.a
        .sh_any(&format!("timeout 2 bash -c 'echo > /dev/tcp/{SERVICE}/80'"))
        .unwrap();
}

/// Events after the rewrite: the SYN's new destination.
fn rewritten(e: &&pwru_rs::output::JsonEvent, net: &VethPair) -> bool {
    e.tuple
        .as_ref()
        .is_some_and(|t| t.daddr == net.addr_b && t.dport == 8080)
}

#[test]
fn a_tracked_skb_is_followed_through_dnat_and_nothing_else_is() {
    require_root();
    let net = dnat_pair();
    let netns = net.b.path();
    let filter = format!("dst host {SERVICE}");
    let tracer = Tracer::start(
        BACKEND,
        &["--filter-netns", &netns, "--filter-track-skb", &filter],
    );
    connect_to_service(&net);
    tracer.wait_for(
        |t| t.events.iter().any(|e| rewritten(&e, &net)),
        EVENT_TIMEOUT,
    );
    // Unrelated traffic into b afterwards, through the skb addresses the SYN freed.
    net.a
        .sh(&format!(
            "for i in $(seq 20); do echo x > /dev/udp/{}/7999; done",
            net.addr_b
        ))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let trace = tracer.stop();
    assert!(
        trace.stderr.contains("tracked by address only"),
        "the host's missing fexit is said: {}",
        trace.stderr
    );

    let matched: Vec<_> = trace
        .events
        .iter()
        .filter(|e| e.tuple.as_ref().is_some_and(|t| t.daddr == SERVICE))
        .collect();
    let first = matched
        .first()
        .unwrap_or_else(|| panic!("no event to {SERVICE}: {}", trace.dump()));
    assert_eq!(
        first.tracked_by.as_deref(),
        Some("filter"),
        "{}",
        show(first)
    );
    let after: Vec<_> = trace.events.iter().filter(|e| rewritten(e, &net)).collect();
    assert!(
        !after.is_empty(),
        "nothing after the DNAT to {}:8080: {}",
        net.addr_b,
        trace.dump()
    );
    for e in &after {
        assert_eq!(e.tracked_by.as_deref(), Some("skb"), "{}", show(e));
        assert!(
            matched.iter().any(|m| m.skb == e.skb),
            "{} is not an skb that matched the filter",
            show(e)
        );
    }
    // The SYN's life ends in a drop (no socket on 8080): where its tracking ends too.
    assert!(
        after.iter().any(|e| e.func.starts_with("kfree_skb")),
        "{}",
        trace.dump()
    );
    let unrelated: Vec<_> = trace
        .events
        .iter()
        .filter(|e| dport(e) == Some(7999))
        .collect();
    assert!(
        unrelated.is_empty(),
        "unrelated traffic traced as tracked: {}",
        show(unrelated[0])
    );
    for e in &trace.events {
        assert!(e.tracked_by.is_some(), "{}", show(e));
        assert_eq!(e.parent_skb, None, "no clones followed here: {}", show(e));
    }
}

#[test]
fn without_tracking_the_rewritten_packet_is_not_traced() {
    require_root();
    let net = dnat_pair();
    let netns = net.b.path();
    let filter = format!("dst host {SERVICE}");
    let tracer = Tracer::start(BACKEND, &["--filter-netns", &netns, &filter]);
    connect_to_service(&net);
    tracer.wait_for(
        |t| t.with_tuple(None, Some(SERVICE)).len() >= 2,
        EVENT_TIMEOUT,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let trace = tracer.stop();
    assert!(
        !trace.with_tuple(None, Some(SERVICE)).is_empty(),
        "{}",
        trace.dump()
    );
    assert!(
        !trace.events.iter().any(|e| rewritten(&e, &net)),
        "{}",
        trace.dump()
    );
    assert!(trace.events.iter().all(|e| e.tracked_by.is_none()));
}

#[test]
fn skbs_that_find_the_tracking_map_full_are_counted() {
    require_root();
    let net = veth_pair();
    let netns = net.b.path();
    // One entry: b's echo reply is made while the request it answers is still tracked.
    let tracer = Tracer::start(
        BACKEND,
        &[
            "--filter-netns",
            &netns,
            "--filter-track-skb",
            "--filter-track-skb-map-size",
            "1",
            "icmp",
        ],
    );
    for _ in 0..3 {
        net.ping_a_to_b().unwrap();
    }
    tracer.wait_for(
        |t| t.with_tuple(Some(&net.addr_b), Some(&net.addr_a)).len() >= 3,
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    assert!(
        trace
            .stderr
            .contains("skbs could not be tracked (tracking map full"),
        "{}",
        trace.stderr
    );
    // The replies are still traced: they pass the filter themselves.
    let replies = trace.with_tuple(Some(&net.addr_b), Some(&net.addr_a));
    assert!(!replies.is_empty(), "{}", trace.dump());
}
