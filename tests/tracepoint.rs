//! End-to-end tests of the tracepoint backend on the host kernel: real traffic between network
//! namespaces the tests create, real events from the kernel.

use integration_tests::{require_root, Trace, Tracer, VethPair};

fn netns_arg(ns: &str) -> String {
    VethPair::netns_path(ns)
}

#[test]
fn ping_shows_transmit_and_receive_tracepoints_with_tuple() {
    require_root();
    let net = VethPair::new();
    // No meta filter: the request crosses from netns a to b, and we want both halves of its path.
    let tracer = Tracer::start(&["--backend", "tracepoint"]);
    net.ping_a_to_b();
    let trace = tracer.stop();

    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let request = echo
        .iter()
        .find(|e| e["func"] == "net_dev_queue")
        .unwrap_or_else(|| panic!("no net_dev_queue for the echo request: {}", trace.dump()));
    // One skb carries the request through veth: follow it by address, in order.
    let path: Vec<_> = echo
        .iter()
        .filter(|e| e["skb"] == request["skb"])
        .copied()
        .collect();
    let funcs = Trace::funcs(&path);
    let expected = [
        "net_dev_queue",
        "net_dev_start_xmit",
        "netif_rx",
        "net_dev_xmit",
        "netif_receive_skb",
    ];
    let mut rest = funcs.iter();
    for want in expected {
        assert!(
            rest.any(|f| *f == want),
            "{want} missing or out of order in {funcs:?}: {}",
            trace.dump()
        );
    }
    let (a_inode, b_inode) = (VethPair::netns_inode(&net.a), VethPair::netns_inode(&net.b));
    let at = |func: &str| path.iter().find(|e| e["func"] == func).unwrap();
    assert_eq!(
        at("net_dev_queue")["netns"],
        a_inode,
        "sent from netns a: {request}"
    );
    assert_eq!(
        at("netif_receive_skb")["netns"],
        b_inode,
        "received in netns b"
    );
    assert_eq!(at("netif_receive_skb")["ifname"], net.veth_b.as_str());
    assert_eq!(request["tuple"]["proto"], 1, "{request}");
    assert_eq!(request["proto"], 0x0800, "{request}");

    let reply = trace.with_tuple(Some(&net.addr_b), Some(&net.addr_a));
    assert!(
        Trace::funcs(&reply).contains(&"netif_receive_skb"),
        "the echo reply was not seen received: {}",
        trace.dump()
    );
    let tx = at("net_dev_start_xmit");
    assert_eq!(tx["ifname"], net.veth_a.as_str(), "{tx}");
    assert!(
        tx["len"].as_u64().unwrap() >= 84,
        "ICMP echo with IP+ICMP headers: {tx}"
    );
    assert!(tx["mtu"].as_u64().unwrap() >= 1280, "{tx}");
    assert!(tx["skb"].as_str().unwrap().starts_with("0xffff"), "{tx}");
}

#[test]
fn ipv6_tuple_is_reported() {
    require_root();
    let net = VethPair::new();
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&net.b)]);
    VethPair::exec(&net.a, &format!("ping -6 -c 1 -W 2 {}", net.addr6_b));
    let trace = tracer.stop();
    let echo = trace.with_tuple(Some(&net.addr6_a), Some(&net.addr6_b));
    assert!(
        !echo.is_empty(),
        "no IPv6 event {} -> {}: {}",
        net.addr6_a,
        net.addr6_b,
        trace.dump()
    );
    assert!(
        echo.iter()
            .any(|e| e["tuple"]["proto"] == 58 && e["proto"] == 0x86dd),
        "{}",
        trace.dump()
    );
}

#[test]
fn filter_netns_excludes_other_namespaces() {
    require_root();
    let watched = VethPair::new();
    let other = VethPair::new();
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&watched.b)]);
    other.ping_a_to_b();
    watched.ping_a_to_b();
    let trace = tracer.stop();
    assert!(
        !trace
            .with_tuple(Some(&watched.addr_a), Some(&watched.addr_b))
            .is_empty(),
        "the watched namespace's ping is missing: {}",
        trace.dump()
    );
    assert!(
        trace.with_tuple(Some(&other.addr_a), None).is_empty()
            && trace.with_tuple(None, Some(&other.addr_a)).is_empty(),
        "another namespace's ping leaked through --filter-netns: {}",
        trace.dump()
    );
}

#[test]
fn filter_ifname_selects_one_interface_in_the_given_netns() {
    require_root();
    let net = VethPair::new();
    let tracer = Tracer::start(&[
        "--filter-netns",
        &netns_arg(&net.b),
        "--filter-ifname",
        &net.veth_b,
    ]);
    net.ping_a_to_b();
    // Loopback traffic in the same namespace must not appear.
    VethPair::exec(&net.b, "ping -c 1 -W 2 127.0.0.1");
    let trace = tracer.stop();
    assert!(
        !trace
            .with_tuple(Some(&net.addr_a), Some(&net.addr_b))
            .is_empty(),
        "no events on {}: {}",
        net.veth_b,
        trace.dump()
    );
    for e in &trace.events {
        assert_eq!(
            e["ifname"],
            net.veth_b.as_str(),
            "--filter-ifname let through {e}"
        );
    }
}

#[test]
fn filter_mark_includes_marked_and_excludes_unmarked_packets() {
    require_root();
    let net = VethPair::new();
    // Mark UDP to port 7001 on its way out of namespace a; leave port 7002 unmarked.
    VethPair::exec(
        &net.a,
        "nft -f - <<'EOF'
table inet pwrt {
  chain out { type filter hook output priority 0; udp dport 7001 meta mark set 0x42; }
}
EOF",
    );
    let tracer = Tracer::start(&[
        "--filter-netns",
        &netns_arg(&net.a),
        "--filter-mark",
        "0x42/0xff",
    ]);
    for port in [7001, 7002] {
        VethPair::exec(
            &net.a,
            &format!("bash -c 'echo x > /dev/udp/{}/{port}'", net.addr_b),
        );
    }
    let trace = tracer.stop();
    let udp = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(
        udp.iter().any(|e| e["tuple"]["dport"] == 7001),
        "marked packet missing: {}",
        trace.dump()
    );
    for e in &trace.events {
        assert_eq!(
            e["mark"].as_u64().unwrap() & 0xff,
            0x42,
            "--filter-mark let through {e}"
        );
        assert_ne!(e["tuple"]["dport"], 7002, "unmarked packet leaked: {e}");
    }
}

#[test]
fn udp_to_a_closed_port_is_dropped_with_no_socket() {
    require_root();
    let net = VethPair::new();
    let tracer = Tracer::start(&[
        "--filter-netns",
        &netns_arg(&net.b),
        "--filter-func",
        "kfree_skb",
    ]);
    VethPair::exec(
        &net.a,
        &format!("bash -c 'echo x > /dev/udp/{}/9'", net.addr_b),
    );
    let trace = tracer.stop();
    let drops = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let drop = drops
        .iter()
        .find(|e| e["tuple"]["dport"] == 9)
        .unwrap_or_else(|| panic!("no kfree_skb for the UDP packet: {}", trace.dump()));
    assert_eq!(
        drop["func"], "kfree_skb(SKB_DROP_REASON_NO_SOCKET)",
        "{drop}"
    );
    assert_eq!(drop["reason"], "SKB_DROP_REASON_NO_SOCKET", "{drop}");
    for e in &trace.events {
        assert!(
            e["func"].as_str().unwrap().starts_with("kfree_skb"),
            "--filter-func let through {e}"
        );
    }
}

#[test]
fn netfilter_drop_rule_shows_netfilter_drop_reason() {
    require_root();
    let net = VethPair::new();
    VethPair::exec(
        &net.b,
        "nft -f - <<'EOF'
table inet pwrt {
  chain in { type filter hook input priority 0; tcp dport 7100 drop; }
}
EOF",
    );
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&net.b)]);
    // The SYN is dropped, so the connect times out; its failure is the point.
    VethPair::exec_any(
        &net.a,
        &format!("timeout 1 bash -c 'echo > /dev/tcp/{}/7100'", net.addr_b),
    );
    let trace = tracer.stop();
    let syn = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(
        syn.iter().any(|e| e["tuple"]["dport"] == 7100
            && e["func"] == "kfree_skb(SKB_DROP_REASON_NETFILTER_DROP)"),
        "no NETFILTER_DROP for the SYN: {}",
        trace.dump()
    );
}

#[test]
fn output_limit_lines_stops_by_itself() {
    require_root();
    let net = VethPair::new();
    let dir = std::env::temp_dir().join(format!("pwru-rs-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let mut child = std::process::Command::new(integration_tests::pwru_bin())
        .args([
            "--filter-netns",
            &netns_arg(&net.a),
            "--output-limit-lines",
            "3",
        ])
        .arg("--output-file")
        .arg(&out)
        .arg("--ready-file")
        .arg(dir.join("ready"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir.join("ready").exists() {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for _ in 0..3 {
        net.ping_a_to_b();
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Text output: the header plus exactly three events.
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("SKB"), "{text}");
    assert!(!dir.join("ready").exists(), "ready file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pcap_filter_selects_the_ping_and_not_a_parallel_udp_flow() {
    require_root();
    let net = VethPair::new();
    let expression = format!("icmp and host {}", net.addr_b);
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&net.a), &expression]);
    VethPair::exec(
        &net.a,
        &format!(
            "bash -c 'for i in 1 2 3; do echo x > /dev/udp/{}/7300; done'",
            net.addr_b
        ),
    );
    net.ping_a_to_b();
    let trace = tracer.stop();
    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(
        Trace::funcs(&echo).contains(&"net_dev_start_xmit"),
        "the ping is missing: {}",
        trace.dump()
    );
    for e in &trace.events {
        assert_eq!(e["tuple"]["proto"], 1, "'{expression}' let through {e}");
    }
}

#[test]
fn pcap_filter_selects_the_syn_of_a_connect() {
    require_root();
    let net = VethPair::new();
    let expression = "tcp[tcpflags] & tcp-syn != 0 and port 7200";
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&net.b), expression]);
    // Nothing listens on b:7200: the SYN is answered with a RST, which the filter must not show.
    VethPair::exec_any(
        &net.a,
        &format!("timeout 2 bash -c 'echo > /dev/tcp/{}/7200'", net.addr_b),
    );
    let trace = tracer.stop();
    let syn = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    assert!(
        syn.iter()
            .any(|e| e["tuple"]["dport"] == 7200 && e["func"] == "netif_receive_skb"),
        "the SYN is missing: {}",
        trace.dump()
    );
    assert!(
        trace
            .with_tuple(Some(&net.addr_b), Some(&net.addr_a))
            .is_empty(),
        "the RST (no SYN flag) leaked through '{expression}': {}",
        trace.dump()
    );
}

#[test]
fn pcap_filter_selects_ipv6_only() {
    require_root();
    let net = VethPair::new();
    let tracer = Tracer::start(&["--filter-netns", &netns_arg(&net.b), "ip6 and icmp6"]);
    net.ping_a_to_b();
    VethPair::exec(&net.a, &format!("ping -6 -c 1 -W 2 {}", net.addr6_b));
    let trace = tracer.stop();
    assert!(
        !trace
            .with_tuple(Some(&net.addr6_a), Some(&net.addr6_b))
            .is_empty(),
        "the IPv6 ping is missing: {}",
        trace.dump()
    );
    for e in &trace.events {
        assert_eq!(e["tuple"]["proto"], 58, "'ip6 and icmp6' let through {e}");
        assert!(
            e["tuple"]["saddr"].as_str().unwrap().contains(':'),
            "not IPv6: {e}"
        );
    }
}
