//! End-to-end tests of the tracepoint backend on the host kernel: real traffic between network
//! namespaces the tests create, real events from the kernel. Every tracer is started with
//! `--backend tracepoint`, so the tests mean the same on a host that has kprobes.

use integration_tests::{
    dport, require_root, show, tuple, veth_pair, Trace, Tracer, VethPair, EVENT_TIMEOUT,
};
use pwru_rs::ready::{ReadyInfo, RunStats};

const BACKEND: &str = "tracepoint";

fn start(args: &[&str]) -> Tracer {
    Tracer::start(BACKEND, args)
}

/// Whether some event from `saddr` to `daddr` satisfies `and`.
fn seen(
    t: &Trace,
    saddr: &str,
    daddr: &str,
    and: impl Fn(&pwru_rs::output::JsonEvent) -> bool,
) -> bool {
    t.with_tuple(Some(saddr), Some(daddr)).into_iter().any(and)
}

/// Whether some event from a to b, to `port`, was seen at `func`.
fn seen_at(t: &Trace, net: &VethPair, port: u16, func: &str) -> bool {
    seen(t, &net.addr_a, &net.addr_b, |e| {
        dport(e) == Some(port) && e.func == func
    })
}

/// A TCP connect from a to b's `port`, given up after `secs`: its failure (nothing listens, or
/// the SYN is dropped) is the point.
fn connect_a_to_b(net: &VethPair, port: u16, secs: u32) {
    net.a
        .sh_any(&format!(
            "timeout {secs} bash -c 'echo > /dev/tcp/{}/{port}'",
            net.addr_b
        ))
        .unwrap();
}

/// One UDP datagram from a to b's `port`.
fn udp_a_to_b(net: &VethPair, port: u16) {
    net.a
        .sh(&format!("echo x > /dev/udp/{}/{port}", net.addr_b))
        .unwrap();
}

#[test]
fn ready_file_says_what_was_attached() {
    require_root();
    let all = start(&[]);
    let ready = all.ready().clone();
    all.stop();
    // The file is the schema type exactly, and says what the harness read from it.
    let info: ReadyInfo = serde_json::from_str(&ready.json)
        .unwrap_or_else(|e| panic!("ready file does not fit ReadyInfo: {e}: {}", ready.json));
    assert_eq!(info.backend, BACKEND, "{}", ready.json);
    assert_eq!(info.skipped, 0, "{}", ready.json);
    assert_eq!(info.hooks as u64, ready.hooks);
    assert!(info.hooks > 10, "every skb tracepoint: {}", ready.json);

    let one = start(&["--filter-func", "kfree_skb"]);
    assert_eq!(one.ready().hooks, 1, "{}", one.ready().json);
    one.stop();
}

#[test]
fn stats_file_counts_what_was_printed() {
    require_root();
    let net = veth_pair();
    let stats = std::env::temp_dir().join(format!("pwru-rs-stats-{}", std::process::id()));
    let _ = std::fs::remove_file(&stats);
    let tracer = start(&["--stats-file", stats.to_str().unwrap(), "icmp"]);
    let hooks = tracer.ready().hooks;
    let trace = tracer.ping_a_to_b_and_stop(&net);
    let text = std::fs::read_to_string(&stats).expect("the stats file is written at exit");
    let _ = std::fs::remove_file(&stats);
    let s: RunStats = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stats file does not fit RunStats: {e}: {text}"));
    assert_eq!(s.backend, BACKEND, "{text}");
    assert_eq!(s.hooks as u64, hooks, "{text}");
    assert_eq!(s.received as usize, trace.events.len(), "{text}");
    assert_eq!((s.lost, s.malformed), (0, 0), "{text}");
    assert!(s.attach_ms > 0.0 && s.detach_ms > 0.0, "{text}");
    assert_eq!(s.link_ms, None, "no link times on tracepoints: {text}");
}

#[test]
fn ping_shows_transmit_and_receive_tracepoints_with_tuple() {
    require_root();
    let net = veth_pair();
    // No meta filter: the request crosses from netns a to b, and we want both halves of its path.
    let tracer = start(&[]);
    net.ping_a_to_b().unwrap();
    // The reply's arrival in a comes last: wait for it, then every earlier event has come too.
    tracer.wait_for(
        |t| {
            seen(t, &net.addr_b, &net.addr_a, |e| {
                e.func == "netif_receive_skb"
            })
        },
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();

    let echo = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let request = echo
        .iter()
        .find(|e| e.func == "net_dev_queue")
        .unwrap_or_else(|| panic!("no net_dev_queue for the echo request: {}", trace.dump()));
    // One skb carries the request through veth: follow it by address, in order.
    let path: Vec<_> = echo
        .iter()
        .filter(|e| e.skb == request.skb)
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
    let at = |func: &str| *path.iter().find(|e| e.func == func).unwrap();
    assert_eq!(
        u64::from(at("net_dev_queue").netns),
        net.a.inode(),
        "sent from netns a: {}",
        show(request)
    );
    assert_eq!(
        u64::from(at("netif_receive_skb").netns),
        net.b.inode(),
        "received in netns b"
    );
    assert_eq!(at("netif_receive_skb").ifname, net.veth_b);
    assert_eq!(tuple(request).proto, 1, "{}", show(request));
    assert_eq!(request.proto, 0x0800, "{}", show(request));

    let reply = trace.with_tuple(Some(&net.addr_b), Some(&net.addr_a));
    assert!(
        Trace::funcs(&reply).contains(&"netif_receive_skb"),
        "the echo reply was not seen received: {}",
        trace.dump()
    );
    let tx = at("net_dev_start_xmit");
    assert_eq!(tx.ifname, net.veth_a, "{}", show(tx));
    assert!(tx.len >= 84, "ICMP echo with IP+ICMP headers: {}", show(tx));
    assert!(tx.mtu >= 1280, "{}", show(tx));
    assert!(tx.skb.starts_with("0xffff"), "{}", show(tx));
}

#[test]
fn ipv6_tuple_is_reported() {
    require_root();
    let net = veth_pair();
    let tracer = start(&["--filter-netns", &net.b.path()]);
    net.a
        .sh(&format!("ping -6 -c 1 -W 2 {}", net.addr6_b))
        .unwrap();
    let icmp6 = |e: &pwru_rs::output::JsonEvent| tuple(e).proto == 58 && e.proto == 0x86dd;
    tracer.wait_for(
        |t| seen(t, &net.addr6_a, &net.addr6_b, icmp6),
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    let echo = trace.with_tuple(Some(&net.addr6_a), Some(&net.addr6_b));
    assert!(
        !echo.is_empty(),
        "no IPv6 event {} -> {}: {}",
        net.addr6_a,
        net.addr6_b,
        trace.dump()
    );
    assert!(echo.iter().any(|e| icmp6(e)), "{}", trace.dump());
}

#[test]
fn filter_netns_excludes_other_namespaces() {
    require_root();
    let watched = veth_pair();
    let other = veth_pair();
    let tracer = start(&["--filter-netns", &watched.b.path()]);
    other.ping_a_to_b().unwrap();
    watched.ping_a_to_b().unwrap();
    tracer.wait_for(
        |t| seen(t, &watched.addr_a, &watched.addr_b, |_| true),
        EVENT_TIMEOUT,
    );
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
    let net = veth_pair();
    let tracer = start(&[
        "--filter-netns",
        &net.b.path(),
        "--filter-ifname",
        &net.veth_b,
    ]);
    net.ping_a_to_b().unwrap();
    // Loopback traffic in the same namespace must not appear.
    net.b.sh("ping -c 1 -W 2 127.0.0.1").unwrap();
    tracer.wait_for(
        |t| seen(t, &net.addr_a, &net.addr_b, |_| true),
        EVENT_TIMEOUT,
    );
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
            e.ifname,
            net.veth_b,
            "--filter-ifname let through {}",
            show(e)
        );
    }
}

#[test]
fn filter_mark_includes_marked_and_excludes_unmarked_packets() {
    require_root();
    let net = veth_pair();
    // Mark UDP to port 7001 on its way out of namespace a; leave port 7002 unmarked.
    net.a
        .sh("nft -f - <<'EOF'
table inet pwrt {
  chain out { type filter hook output priority 0; udp dport 7001 meta mark set 0x42; }
}
EOF")
        .unwrap();
    let tracer = start(&[
        "--filter-netns",
        &net.a.path(),
        "--filter-mark",
        "0x42/0xff",
    ]);
    for port in [7001, 7002] {
        udp_a_to_b(&net, port);
    }
    let marked = |t: &Trace| seen(t, &net.addr_a, &net.addr_b, |e| dport(e) == Some(7001));
    tracer.wait_for(marked, EVENT_TIMEOUT);
    let trace = tracer.stop();
    assert!(marked(&trace), "marked packet missing: {}", trace.dump());
    for e in &trace.events {
        assert_eq!(e.mark & 0xff, 0x42, "--filter-mark let through {}", show(e));
        assert_ne!(dport(e), Some(7002), "unmarked packet leaked: {}", show(e));
    }
}

#[test]
fn udp_to_a_closed_port_is_dropped_with_no_socket() {
    require_root();
    let net = veth_pair();
    let tracer = start(&[
        "--filter-netns",
        &net.b.path(),
        "--filter-func",
        "kfree_skb",
    ]);
    udp_a_to_b(&net, 9);
    // The drop happens in b's softirq, possibly after the sender is done: wait for it.
    tracer.wait_for(
        |t| seen(t, &net.addr_a, &net.addr_b, |e| dport(e) == Some(9)),
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    let drops = trace.with_tuple(Some(&net.addr_a), Some(&net.addr_b));
    let drop = drops
        .iter()
        .find(|e| dport(e) == Some(9))
        .unwrap_or_else(|| panic!("no kfree_skb for the UDP packet: {}", trace.dump()));
    assert_eq!(
        drop.func,
        "kfree_skb(SKB_DROP_REASON_NO_SOCKET)",
        "{}",
        show(drop)
    );
    assert_eq!(
        drop.reason.as_deref(),
        Some("SKB_DROP_REASON_NO_SOCKET"),
        "{}",
        show(drop)
    );
    assert!(drop.reason_code.is_some(), "{}", show(drop));
    for e in &trace.events {
        assert!(
            e.func.starts_with("kfree_skb"),
            "--filter-func let through {}",
            show(e)
        );
    }
}

#[test]
fn netfilter_drop_rule_shows_netfilter_drop_reason() {
    require_root();
    let net = veth_pair();
    net.b
        .sh("nft -f - <<'EOF'
table inet pwrt {
  chain in { type filter hook input priority 0; tcp dport 7100 drop; }
}
EOF")
        .unwrap();
    let tracer = start(&["--filter-netns", &net.b.path()]);
    // The SYN is dropped, so the connect times out.
    connect_a_to_b(&net, 7100, 1);
    let dropped = |t: &Trace| seen_at(t, &net, 7100, "kfree_skb(SKB_DROP_REASON_NETFILTER_DROP)");
    tracer.wait_for(dropped, EVENT_TIMEOUT);
    let trace = tracer.stop();
    assert!(
        dropped(&trace),
        "no NETFILTER_DROP for the SYN: {}",
        trace.dump()
    );
}

#[test]
fn output_limit_lines_stops_by_itself() {
    require_root();
    let net = veth_pair();
    let mut tracer = Tracer::start_text(
        BACKEND,
        &["--filter-netns", &net.a.path(), "--output-limit-lines", "3"],
    );
    for _ in 0..3 {
        net.ping_a_to_b().unwrap();
        if tracer.has_exited() {
            break;
        }
    }
    let done = tracer.wait_exit(EVENT_TIMEOUT);
    assert!(done.status.success(), "{}: {}", done.status, done.stderr);
    let lines: Vec<&str> = done.output.lines().collect();
    // Text output: the header plus exactly three events.
    assert_eq!(lines.len(), 4, "{}", done.output);
    assert!(lines[0].starts_with("SKB"), "{}", done.output);
    assert!(!done.ready_file_left, "ready file left behind");
}

#[test]
fn pcap_filter_selects_the_ping_and_not_a_parallel_udp_flow() {
    require_root();
    let net = veth_pair();
    let expression = format!("icmp and host {}", net.addr_b);
    let tracer = start(&["--filter-netns", &net.a.path(), &expression]);
    for _ in 0..3 {
        udp_a_to_b(&net, 7300);
    }
    net.ping_a_to_b().unwrap();
    let ping = |t: &Trace| {
        seen(t, &net.addr_a, &net.addr_b, |e| {
            e.func == "net_dev_start_xmit"
        })
    };
    tracer.wait_for(ping, EVENT_TIMEOUT);
    let trace = tracer.stop();
    assert!(ping(&trace), "the ping is missing: {}", trace.dump());
    for e in &trace.events {
        assert_eq!(
            e.tuple.as_ref().map(|t| t.proto),
            Some(1),
            "'{expression}' let through {}",
            show(e)
        );
    }
}

#[test]
fn pcap_filter_selects_the_syn_of_a_connect() {
    require_root();
    let net = veth_pair();
    let expression = "tcp[tcpflags] & tcp-syn != 0 and port 7200";
    let tracer = start(&["--filter-netns", &net.b.path(), expression]);
    // Nothing listens on b:7200: the SYN is answered with a RST, which the filter must not show.
    connect_a_to_b(&net, 7200, 2);
    let syn = |t: &Trace| seen_at(t, &net, 7200, "netif_receive_skb");
    tracer.wait_for(syn, EVENT_TIMEOUT);
    let trace = tracer.stop();
    assert!(syn(&trace), "the SYN is missing: {}", trace.dump());
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
    let net = veth_pair();
    let tracer = start(&["--filter-netns", &net.b.path(), "ip6 and icmp6"]);
    net.ping_a_to_b().unwrap();
    net.a
        .sh(&format!("ping -6 -c 1 -W 2 {}", net.addr6_b))
        .unwrap();
    tracer.wait_for(
        |t| seen(t, &net.addr6_a, &net.addr6_b, |_| true),
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    assert!(
        !trace
            .with_tuple(Some(&net.addr6_a), Some(&net.addr6_b))
            .is_empty(),
        "the IPv6 ping is missing: {}",
        trace.dump()
    );
    for e in &trace.events {
        let t = tuple(e);
        assert_eq!(t.proto, 58, "'ip6 and icmp6' let through {}", show(e));
        assert!(t.saddr.contains(':'), "not IPv6: {}", show(e));
    }
}

/// `pwru-rs … | head -n 3`: once the reader goes, pwru-rs detaches at once and exits 0.
#[test]
fn a_closed_stdout_ends_the_trace_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    require_root();
    let net = veth_pair();
    let dir = pwru_rs_harness::TempDir::new("pwru-rs-pipe").unwrap();
    let ready = dir.join("ready");
    let stderr_path = dir.join("stderr");
    let mut child = Command::new(integration_tests::pwru_bin())
        .args(["--backend", BACKEND, "--filter-netns", &net.a.path()])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < EVENT_TIMEOUT, "not ready: {}", stderr());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    net.ping_a_to_b().unwrap();
    // The header and two events, then the reader goes away.
    for _ in 0..3 {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{}", stderr());
    }
    drop(stdout);
    // More events, whose write finds the pipe closed.
    for _ in 0..3 {
        net.ping_a_to_b().unwrap();
    }
    let status =
        pwru_rs_harness::wait_within(&mut child, EVENT_TIMEOUT, "pwru-rs", stderr).unwrap();
    let stderr = stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("output closed by its reader"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!ready.exists(), "ready file left behind");
}

/// SIGTERM and SIGHUP (a closed terminal) stop pwru-rs as Ctrl-C does: what was traced is
/// written, everything is detached, exit 0.
#[test]
fn sigterm_and_sighup_stop_it_cleanly() {
    require_root();
    let net = veth_pair();
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let mut tracer = start(&["--filter-netns", &net.a.path()]);
        net.ping_a_to_b().unwrap();
        tracer.wait_for(|t| !t.events.is_empty(), EVENT_TIMEOUT);
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(tracer.pid() as i32, signal) }, 0);
        let started = std::time::Instant::now();
        while !tracer.has_exited() {
            assert!(
                started.elapsed() < EVENT_TIMEOUT,
                "signal {signal}: still running"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let done = tracer.wait_exit(EVENT_TIMEOUT);
        assert!(
            done.status.success(),
            "signal {signal}: {}: {}",
            done.status,
            done.stderr
        );
        assert!(done.stderr.contains("stopped: "), "{}", done.stderr);
        assert!(done.stderr.contains("detached"), "{}", done.stderr);
        assert!(
            !done.output.is_empty(),
            "signal {signal}: the trace was not written"
        );
        assert!(!done.ready_file_left, "ready file left behind");
    }
}
