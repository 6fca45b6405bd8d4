//! Userspace pipeline benchmark: synthetic ring-buffer records through the real decoder, enricher
//! and formatter to /dev/null, one core. No kernel needed, so it is comparable across commits.
//! `cargo run --release --example pipeline -- [EVENTS]` prints `text <ns/event>` and
//! `json <ns/event>` (used by `cargo xtask bench`).

use pwru_rs::{
    cli::TimestampChoice,
    events::{encode, encode_with, AlignedRecord, Enricher, HookTable, Pipeline},
    output::{OutputSink, Printer, PrinterConfig, WallClock},
};
use pwru_rs_common::record::{
    Cb, Meta, Tuple, HOOK_COOKIE, IP_V4, IP_V6, META_HAS_DEV, META_HAS_REASON, SECTION_SKB_DUMP,
};

/// A mix like a real trace: mostly IPv4 TCP, some IPv6, some drops. With `all_outputs`, every
/// record also carries `skb->cb`, TCP flags and a dump as long as the default buffer keeps.
fn records(all_outputs: bool) -> Vec<AlignedRecord> {
    let dump: Vec<u8> = b"(struct sk_buff){\n .len = (unsigned int)98,\n}"
        .iter()
        .copied()
        .cycle()
        .take(pwru_rs_common::DEFAULT_DUMP_BUF as usize - 1)
        .collect();
    (0..64u64)
        .map(|i| {
            let mut m = Meta {
                ts_ns: 1_000_000 + i * 1000,
                skb: 0xffff_8880_1234_5600 + ((i % 8) << 8),
                hook: i % 30,
                hook_kind: HOOK_COOKIE,
                cpu: (i % 2) as u32,
                pid: 4242,
                netns: 4_026_531_840,
                len: 98 + i as u32,
                mtu: 1500,
                ifindex: 2,
                flags: META_HAS_DEV,
                ..Default::default()
            };
            m.comm[..4].copy_from_slice(b"curl");
            m.ifname[..4].copy_from_slice(b"eth0");
            let mut t = Tuple::default();
            if i % 8 == 7 {
                m.protocol = 0x86dd;
                t.ip_version = IP_V6;
                t.l4_proto = 58;
                t.saddr = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
                t.daddr = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
            } else {
                m.protocol = 0x0800;
                t.ip_version = IP_V4;
                t.l4_proto = 6;
                t.sport = 443;
                t.dport = 51_000 + i as u16;
                t.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
                t.daddr[..4].copy_from_slice(&[192, 168, 1, i as u8]);
            }
            if i % 16 == 15 {
                m.flags |= META_HAS_REASON;
                m.reason = 3;
            }
            let bytes = if all_outputs {
                t.tcp_flags = 0x12;
                let cb = Cb {
                    words: [i as u32, 0, 0, 0, 0],
                    _pad: 0,
                };
                encode_with(&m, Some(&t), Some(&cb), &[(SECTION_SKB_DUMP, &dump, 6000)])
            } else {
                encode(&m, Some(&t))
            };
            // 8-byte aligned, as the kernel's ring-buffer records are.
            let mut record = AlignedRecord::default();
            record.copy_of(&bytes);
            record
        })
        .collect()
}

fn run(json: bool, all_outputs: bool, events: u64) -> f64 {
    let clock = WallClock::now();
    let printer = Printer::new(
        PrinterConfig {
            json,
            timestamp: TimestampChoice::None,
            output_meta: true,
            output_tuple: true,
            output_skb_cb: all_outputs,
            netns_names_width: None,
            output_caller: false,
            output_tunnel: false,
            packet_bytes: false,
        },
        clock,
    );
    let enricher = Enricher::new(
        HookTable::by_cookie((0..30).map(|i| format!("skb_function_{i}")).collect()),
        [(3, "SKB_DROP_REASON_NO_SOCKET".to_string())]
            .into_iter()
            .collect(),
        TimestampChoice::None,
        clock,
    )
    .with_tcp_flags(all_outputs);
    let devnull = std::fs::File::create("/dev/null").expect("/dev/null");
    let mut sink = OutputSink::new(printer, Box::new(devnull), None);
    let mut pipeline = Pipeline::new(enricher, &mut sink);
    let records = records(all_outputs);
    let started = std::time::Instant::now();
    for i in 0..events {
        pipeline
            .push(records[(i % 64) as usize].bytes())
            .expect("/dev/null takes it");
    }
    pipeline.flush().unwrap();
    started.elapsed().as_nanos() as f64 / events as f64
}

fn main() {
    let events = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    run(false, false, events / 10); // warm-up
    println!("text {:.1}", run(false, false, events));
    println!("json {:.1}", run(true, false, events));
    // Every output option on: far more bytes per event, so fewer events.
    println!("text-all {:.1}", run(false, true, events / 10));
    println!("json-all {:.1}", run(true, true, events / 10));
}
