//! `--output-pcap` on real traffic (tracepoint backend on the host): the pcapng file holds one
//! packet per traced event, with the bytes the kernel held and the hook in the comment, and
//! tshark and tcpdump read it back.

use integration_tests::{require_root, veth_pair, Tracer, EVENT_TIMEOUT};
use pwru_rs_harness::sh;

const BACKEND: &str = "tracepoint";

#[test]
fn each_traced_event_is_a_packet_with_its_hook_in_the_comment() {
    require_root();
    let pcap = std::env::temp_dir().join(format!("pwru-rs-test-{}.pcapng", std::process::id()));
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let net = veth_pair();
    let tracer = Tracer::start_in_b(
        BACKEND,
        &net,
        &[
            "--output-pcap",
            &pcap_arg,
            "--output-pcap-snaplen",
            "60",
            "icmp",
        ],
    );
    net.ping_a_to_b().unwrap();
    // The request in and the reply out.
    tracer.wait_for(
        |t| {
            !t.with_tuple(Some(&net.addr_a), Some(&net.addr_b))
                .is_empty()
                && !t
                    .with_tuple(Some(&net.addr_b), Some(&net.addr_a))
                    .is_empty()
        },
        EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    assert!(!trace.events.is_empty());

    let fields = sh(&format!(
        "tshark -r {pcap_arg} -T fields -E separator='|' -e frame.interface_name \
         -e frame.interface_description -e frame.cap_len -e frame.len -e ip.src -e icmp.type \
         -e icmp.seq -e frame.time_epoch -e frame.comment 2>/dev/null"
    ))
    .expect("tshark reads the file");
    let packets: Vec<Vec<&str>> = fields.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(
        packets.len(),
        trace.events.len(),
        "one packet per event:\n{fields}\n{}",
        trace.dump()
    );
    for (p, e) in packets.iter().zip(&trace.events) {
        let [ifname, description, caplen, len, src, icmp_type, seq, epoch, comment] = p[..] else {
            panic!("tshark line {p:?}");
        };
        // The kernel's clock, read for outputs that print time, made wall-clock time.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let at: f64 = epoch.parse().unwrap_or_else(|_| panic!("{p:?}"));
        assert!(
            now - at >= 0.0 && now - at < 600.0,
            "a packet at {at}, now {now}: {p:?}"
        );
        assert_eq!(ifname, e.ifname, "{p:?}");
        assert_eq!(
            description,
            format!("netns {} ifindex {}", e.netns, e.ifindex)
        );
        assert!(
            comment.starts_with(&format!("func={} skb={} netns={}", e.func, e.skb, e.netns)),
            "{comment} for {e:?}"
        );
        // Cut at the snap length; the original length is the packet's.
        assert!(caplen.parse::<u32>().unwrap() <= 60, "{p:?}");
        assert!(
            len.parse::<u32>().unwrap() >= 84,
            "an IPv4 ping of 56 bytes: {p:?}"
        );
        // The ping's own bytes: echo request from a or reply from b, its first sequence number.
        let t = e.tuple.as_ref().unwrap();
        assert_eq!(src, t.saddr, "{p:?}");
        assert_eq!(
            icmp_type,
            if t.saddr == net.addr_a { "8" } else { "0" },
            "{p:?}"
        );
        assert_eq!(seq, "1", "{p:?}");
    }
    // Frames from their MAC header (received) and packets from their network header (sent before
    // the link header is known) are interfaces of two link types.
    let types = sh(&format!(
        "tshark -r {pcap_arg} -T fields -e frame.interface_id -e frame.protocols 2>/dev/null | sort -u"
    ))
    .unwrap();
    assert!(
        types.contains("\teth:ethertype:ip:icmp") && types.contains("\traw:ip:icmp"),
        "{types}"
    );
    let _ = std::fs::remove_file(&pcap);
}

#[test]
fn tcpdump_reads_a_trace_of_one_link_type() {
    require_root();
    // libpcap reads a pcapng file only while its interfaces share one link type: received
    // frames only, here.
    let pcap = std::env::temp_dir().join(format!("pwru-rs-test-rx-{}.pcapng", std::process::id()));
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let net = veth_pair();
    let tracer = Tracer::start_in_b(
        BACKEND,
        &net,
        &[
            "--filter-func",
            "netif_receive_skb",
            "--output-pcap",
            &pcap_arg,
            "icmp",
        ],
    );
    let trace = tracer.ping_a_to_b_and_stop(&net);
    let tcpdump = sh(&format!("tcpdump -nn -r {pcap_arg} 2>/dev/null")).expect("tcpdump reads it");
    assert_eq!(tcpdump.lines().count(), trace.events.len(), "{tcpdump}");
    // The whole packet (under the default snap length of 256): its ICMP header and payload.
    assert!(
        tcpdump.contains(&format!(
            "{} > {}: ICMP echo request, id",
            net.addr_a, net.addr_b
        )) && tcpdump.contains(", seq 1, length 64"),
        "{tcpdump}"
    );
    let _ = std::fs::remove_file(&pcap);
}
