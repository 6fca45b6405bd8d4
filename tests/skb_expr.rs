//! BTF expressions in the kernel (tracepoint backend on the host): `--output-skb-metadata`
//! reads through the injected code what the programs' own columns read (len, device, mark set
//! by nftables), and `--filter-skb-expr` keeps exactly the skbs it holds for.

use integration_tests::{require_root, show, veth_pair, Tracer, VethPair};
use serde_json::{json, Value};

const BACKEND: &str = "tracepoint";

/// nftables in a marks every packet a sends with 0x42.
fn mark_in_a(net: &VethPair) {
    net.a
        .sh("nft add table inet pwrt && \
             nft add chain inet pwrt out '{ type filter hook output priority 0; }' && \
             nft add rule inet pwrt out meta mark set 0x42")
        .expect("nftables rule in netns a");
}

/// Traces a's netns with `args` while a pings b.
fn traced_ping_from_a(net: &VethPair, args: &[&str]) -> integration_tests::Trace {
    let netns = net.a.path();
    let mut all = vec!["--filter-netns", netns.as_str()];
    all.extend_from_slice(args);
    Tracer::start(BACKEND, &all).ping_a_to_b_and_stop(net)
}

#[test]
fn metadata_reads_what_the_programs_read() {
    require_root();
    let net = veth_pair();
    mark_in_a(&net);
    let trace = traced_ping_from_a(
        &net,
        &[
            "--output-skb-metadata",
            "skb->len,skb->dev->ifindex,skb->mark,skb->dev->name",
            "icmp",
        ],
    );
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let with_dev: Vec<_> = echo.iter().filter(|e| e.ifindex != 0).collect();
    assert!(
        !with_dev.is_empty(),
        "no echo request on a device: {}",
        trace.dump()
    );
    for e in with_dev {
        let md = e
            .skb_metadata
            .as_ref()
            .unwrap_or_else(|| panic!("{}", show(e)));
        let keys: Vec<&str> = md.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "skb->len",
                "skb->dev->ifindex",
                "skb->mark",
                "skb->dev->name"
            ]
        );
        assert_eq!(md["skb->len"], json!(e.len), "{}", show(e));
        assert_eq!(md["skb->dev->ifindex"], json!(e.ifindex), "{}", show(e));
        assert_eq!(md["skb->mark"], json!(e.mark), "{}", show(e));
        assert_eq!(md["skb->dev->name"], json!(e.ifname), "{}", show(e));
        assert_eq!(e.mark, 0x42, "nftables marked it: {}", show(e));
    }
    // No device: the pointer is NULL, the chain reads 0 (and the name "").
    for e in echo.iter().filter(|e| e.ifindex == 0) {
        let md = e.skb_metadata.as_ref().unwrap();
        assert_eq!(md["skb->dev->ifindex"], json!(0), "{}", show(e));
        assert_eq!(md["skb->dev->name"], Value::String(String::new()));
    }
}

#[test]
fn filters_keep_exactly_the_skbs_they_hold_for() {
    require_root();
    let net = veth_pair();
    mark_in_a(&net);
    // The device's name, a string in a struct the skb points to.
    let by_name = format!("skb->dev->name == \"{}\"", net.veth_a);
    let trace = traced_ping_from_a(&net, &["--filter-skb-expr", &by_name, "icmp"]);
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(!echo.is_empty(), "{}", trace.dump());
    for e in &trace.events {
        assert_eq!(e.ifname, net.veth_a, "{}", show(e));
    }
    // A masked mark set by nftables.
    let trace = traced_ping_from_a(&net, &["--filter-skb-expr", "skb->mark & 0xf0 == 0x40"]);
    assert!(!trace.events.is_empty(), "{}", trace.dump());
    assert!(trace.events.iter().all(|e| e.mark & 0xf0 == 0x40));
    // A three-pointer chain: the device's netns inode is the event's netns.
    let inum = format!("skb->dev->nd_net.net->ns.inum == {}", net.a.inode());
    let trace = traced_ping_from_a(&net, &["--filter-skb-expr", &inum, "icmp"]);
    assert!(
        !trace.with_tuple(Some(&net.addr_a), None).is_empty(),
        "{}",
        trace.dump()
    );
    assert!(trace.events.iter().all(|e| e.ifindex != 0));
}

#[test]
fn a_filter_that_never_holds_keeps_nothing() {
    require_root();
    let net = veth_pair();
    let netns = net.a.path();
    let tracer = Tracer::start(
        BACKEND,
        &[
            "--filter-netns",
            &netns,
            "--filter-skb-expr",
            "skb->len == 1",
            "icmp",
        ],
    );
    for _ in 0..3 {
        net.ping_a_to_b().unwrap();
    }
    let trace = tracer.stop();
    assert!(trace.events.is_empty(), "{}", trace.dump());
}

#[test]
fn bad_expressions_fail_before_anything_is_attached() {
    require_root();
    for (args, needle) in [
        (
            &["--filter-skb-expr", "skb->nope == 1"][..],
            "struct sk_buff has no member 'nope'",
        ),
        (
            &["--filter-skb-expr", "skb->len =="],
            "a number or a string must follow",
        ),
        (
            &["--output-skb-metadata", "skb->dev->nam"],
            "struct net_device has no member 'nam'",
        ),
        (
            &[
                "--output-skb-metadata",
                "skb->len,skb->mark,skb->hash,skb->len,skb->mark",
            ],
            "at most 4",
        ),
        (
            &["--filter-xdp-expr", "xdp->frame_sz == 1"][..],
            "add --filter-trace-xdp",
        ),
    ] {
        let out = integration_tests::run_within(
            std::process::Command::new(integration_tests::pwru_bin())
                .args(["--backend", BACKEND])
                .args(args),
            std::time::Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("pwru-rs: error: ") && last.contains(needle),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.contains("error")).count(),
            1,
            "{stderr}"
        );
        assert!(!stderr.contains("attached"), "{args:?}: {stderr}");
    }
}
