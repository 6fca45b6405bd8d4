//! Tunnels (tracepoint backend on the host, whose kernel has VXLAN): a VXLAN link between the
//! two namespaces of a veth pair carries an inner ping. `--filter-tunnel-pcap-l2/-l3` select
//! by the inner packet, `--output-tunnel` shows its tuple beside the outer UDP/4789 one.

use integration_tests::{require_root, show, veth_pair, Trace, Tracer, VethPair, EVENT_TIMEOUT};

const BACKEND: &str = "tracepoint";

/// VXLAN id 42 over the veth pair: a is 192.168.N.1, b 192.168.N.2 on `vx0`.
struct Vxlan {
    net: VethPair,
    inner_a: String,
    inner_b: String,
}

fn vxlan() -> Vxlan {
    let net = veth_pair();
    // The third octet of the outer subnet, so that parallel tests do not share addresses.
    let n = net.addr_a.split('.').nth(2).unwrap().to_owned();
    let (inner_a, inner_b) = (format!("192.168.{n}.1"), format!("192.168.{n}.2"));
    for (ns, local, remote, dev, inner) in [
        (&net.a, &net.addr_a, &net.addr_b, &net.veth_a, &inner_a),
        (&net.b, &net.addr_b, &net.addr_a, &net.veth_b, &inner_b),
    ] {
        ns.sh(&format!(
            "ip link add vx0 type vxlan id 42 dstport 4789 local {local} remote {remote} dev {dev} && \
             ip addr add {inner}/24 dev vx0 && ip link set vx0 up"
        ))
        .expect("a VXLAN link");
    }
    Vxlan {
        net,
        inner_a,
        inner_b,
    }
}

impl Vxlan {
    fn inner_ping(&self) {
        self.net
            .a
            .sh(&format!("ping -c 1 -W 2 {}", self.inner_b))
            .expect("inner ping");
    }

    /// Traces b's namespace with `args` during an inner ping (and an outer one, which no
    /// tunnel filter may let through as a tunnel packet: it is none).
    fn traced(&self, args: &[&str]) -> Trace {
        self.traced_for(args, EVENT_TIMEOUT)
    }

    /// [`Self::traced`] waiting at most `wait` for a first event (short where none is
    /// expected: the ping is over by then).
    fn traced_for(&self, args: &[&str], wait: std::time::Duration) -> Trace {
        let netns = self.net.b.path();
        let mut all = vec!["--filter-netns", netns.as_str()];
        all.extend_from_slice(args);
        let tracer = Tracer::start(BACKEND, &all);
        self.inner_ping();
        tracer.wait_for(|t| !t.events.is_empty(), wait);
        tracer.stop()
    }
}

#[test]
fn inner_filter_selects_the_tunnelled_ping_and_output_shows_both_tuples() {
    require_root();
    let vx = vxlan();
    let l3 = format!("icmp and host {}", vx.inner_a);
    let trace = vx.traced(&[
        "--output-tunnel",
        "--filter-tunnel-pcap-l3",
        &l3,
        "udp port 4789",
    ]);
    assert!(!trace.events.is_empty(), "{}", trace.dump());
    for e in &trace.events {
        let outer = e.tuple.as_ref().unwrap_or_else(|| panic!("{}", show(e)));
        assert!(outer.dport == 4789 && outer.proto == 17, "{}", show(e));
        let inner = e
            .tunnel_tuple
            .as_ref()
            .unwrap_or_else(|| panic!("no tunnel tuple: {}", show(e)));
        assert_eq!(inner.proto, 1, "{}", show(e));
        let addrs = [inner.saddr.as_str(), inner.daddr.as_str()];
        assert!(addrs.contains(&vx.inner_a.as_str()), "{}", show(e));
        assert!(addrs.contains(&vx.inner_b.as_str()), "{}", show(e));
    }
    // The request arrives from a, the reply leaves b: both directions, inner and outer.
    assert!(trace
        .events
        .iter()
        .any(|e| e.tunnel_tuple.as_ref().unwrap().saddr == vx.inner_a
            && e.tuple.as_ref().unwrap().saddr == vx.net.addr_a));
    assert!(trace
        .events
        .iter()
        .any(|e| e.tunnel_tuple.as_ref().unwrap().saddr == vx.inner_b
            && e.tuple.as_ref().unwrap().saddr == vx.net.addr_b));
}

#[test]
fn an_inner_filter_that_does_not_match_keeps_no_tunnel_packet() {
    require_root();
    let vx = vxlan();
    let short = std::time::Duration::from_secs(1);
    let trace = vx.traced_for(
        &[
            "--filter-tunnel-pcap-l3",
            "icmp and host 192.0.2.99",
            "udp port 4789",
        ],
        short,
    );
    assert!(trace.events.is_empty(), "{}", trace.dump());
    // The L2 form sees the inner Ethernet frame: an inner ARP or IP filter on it.
    let trace = vx.traced_for(&["--filter-tunnel-pcap-l2", "arp", "udp port 4789"], short);
    assert!(
        trace
            .events
            .iter()
            .all(|e| e.tunnel_tuple.is_none() && e.tuple.as_ref().is_some_and(|t| t.dport == 4789)),
        "{}",
        trace.dump()
    );
    let trace = vx.traced(&["--filter-tunnel-pcap-l2", "icmp", "udp port 4789"]);
    assert!(!trace.events.is_empty(), "{}", trace.dump());
}

#[test]
fn other_packets_are_not_affected_and_have_no_tunnel_tuple() {
    require_root();
    let vx = vxlan();
    let netns = vx.net.b.path();
    let tracer = Tracer::start(
        BACKEND,
        &[
            "--filter-netns",
            &netns,
            "--output-tunnel",
            "--filter-tunnel-pcap-l3",
            "host 192.0.2.99",
            "icmp",
        ],
    );
    // An outer ping is no tunnel packet: the tunnel filter does not apply to it.
    vx.net.ping_a_to_b().unwrap();
    tracer.wait_for(
        |t| {
            !t.with_tuple(Some(&vx.net.addr_a), Some(&vx.net.addr_b))
                .is_empty()
        },
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    let plain = trace.with_tuple(Some(&vx.net.addr_a), Some(&vx.net.addr_b));
    assert!(!plain.is_empty(), "{}", trace.dump());
    assert!(plain.iter().all(|e| e.tunnel_tuple.is_none()));
}
