//! `--output-group-by-skb` on real traffic (tracepoint backend on the host): one block per
//! packet, ending where its life ended.

use std::time::Duration;

use integration_tests::{require_root, veth_pair, Tracer};
use pwru_rs::output::JsonEvent;

const BACKEND: &str = "tracepoint";

#[test]
fn a_dropped_datagram_and_a_ping_each_are_one_packet() {
    require_root();
    let net = veth_pair();
    let tracer = Tracer::start_in_b(
        BACKEND,
        &net,
        &["--output-group-by-skb", "udp port 7999 or icmp"],
    );
    net.a
        .sh(&format!("echo x > /dev/udp/{}/7999", net.addr_b))
        .unwrap();
    net.ping_a_to_b().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT: the packets still held are written too.
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGINT) };
    let finished = tracer.wait_exit(Duration::from_secs(20));
    assert!(finished.status.success(), "{}", finished.stderr);
    let packets: Vec<serde_json::Value> = finished
        .output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let events = |p: &serde_json::Value| -> Vec<JsonEvent> {
        serde_json::from_value(p["events"].clone()).expect("events are events")
    };
    let dport = |e: &JsonEvent| e.tuple.as_ref().map(|t| t.dport);
    // The datagram: every event of it in one packet, freed with the drop at the end.
    let udp: Vec<&serde_json::Value> = packets
        .iter()
        .filter(|p| events(p).iter().any(|e| dport(e) == Some(7999)))
        .collect();
    assert_eq!(udp.len(), 1, "{}", finished.output);
    let udp = udp[0];
    assert_eq!(udp["end"], "freed", "{udp}");
    assert_eq!(udp["drop"]["reason"], "SKB_DROP_REASON_NO_SOCKET", "{udp}");
    let udp_events = events(udp);
    assert!(
        udp_events.last().unwrap().func.starts_with("kfree_skb"),
        "{udp}"
    );
    assert_eq!(udp["hops"].as_array().unwrap().len(), udp_events.len() - 1);
    assert!(udp_events.iter().all(|e| e.skb == udp["packet"]), "{udp}");
    // The echo request: received, answered, consumed; in order of time.
    let echo = packets
        .iter()
        .find(|p| {
            events(p).iter().any(|e| {
                e.tuple
                    .as_ref()
                    .is_some_and(|t| t.saddr == net.addr_a && t.proto == 1)
            })
        })
        .unwrap_or_else(|| panic!("no echo request: {}", finished.output));
    assert_eq!(echo["end"], "freed", "{echo}");
    assert_eq!(echo["drop"], serde_json::Value::Null, "{echo}");
    let hops = echo["hops"].as_array().unwrap();
    assert!(!hops.is_empty(), "{echo}");
    assert!(hops.iter().all(|h| h["ns"].as_u64().is_some()), "{echo}");
    // Read from the kernel's clock, which the programs read only for outputs that use it.
    assert!(
        hops.iter().any(|h| h["ns"].as_u64() > Some(0)),
        "no hop took time: {echo}"
    );
}
