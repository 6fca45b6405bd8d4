//! Userspace pipeline benchmark: synthetic ring-buffer records through the real decoder and
//! formatter to /dev/null, one core. No kernel needed, so it is comparable across commits.
//! `cargo run --release --example pipeline -- [EVENTS]` prints `text <ns/event>` and
//! `json <ns/event>` (used by `cargo xtask bench`).

use std::io::Write;

use pwru_rs::{
    backend::HookNames,
    cli::TimestampChoice,
    events::decode,
    output::{Printer, PrinterConfig},
};
use pwru_rs_common::{Event, EVENT_HAS_DEV, EVENT_HAS_REASON, IP_V4, IP_V6};

/// A mix like a real trace: mostly IPv4 TCP, some IPv6, some drops.
fn records() -> Vec<[u8; size_of::<Event>()]> {
    (0..64u64)
        .map(|i| {
            let mut e = Event::zeroed();
            e.ts_ns = 1_000_000 + i * 1000;
            e.skb = 0xffff_8880_1234_5600 + ((i % 8) << 8);
            e.hook = i % 30;
            e.cpu = (i % 2) as u32;
            e.pid = 4242;
            e.netns = 4_026_531_840;
            e.len = 98 + i as u32;
            e.mtu = 1500;
            e.ifindex = 2;
            e.flags = EVENT_HAS_DEV;
            e.comm[..4].copy_from_slice(b"curl");
            e.ifname[..4].copy_from_slice(b"eth0");
            if i % 8 == 7 {
                e.protocol = 0x86dd;
                e.ip_version = IP_V6;
                e.l4_proto = 58;
                e.saddr = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
                e.daddr = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
            } else {
                e.protocol = 0x0800;
                e.ip_version = IP_V4;
                e.l4_proto = 6;
                e.sport = 443;
                e.dport = 51_000 + i as u16;
                e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
                e.daddr[..4].copy_from_slice(&[192, 168, 1, i as u8]);
            }
            if i % 16 == 15 {
                e.flags |= EVENT_HAS_REASON;
                e.reason = 3;
            }
            // SAFETY: Event is plain #[repr(C)] data without padding.
            unsafe { std::mem::transmute::<Event, [u8; size_of::<Event>()]>(e) }
        })
        .collect()
}

fn run(json: bool, events: u64) -> f64 {
    let mut printer = Printer::new(PrinterConfig {
        json,
        timestamp: TimestampChoice::None,
        output_meta: true,
        output_tuple: true,
        hooks: HookNames::ByIndex((0..30).map(|i| format!("skb_function_{i}")).collect()),
        drop_reasons: [(3, "SKB_DROP_REASON_NO_SOCKET".to_string())]
            .into_iter()
            .collect(),
    });
    let records = records();
    let mut sink = std::fs::File::create("/dev/null").expect("/dev/null");
    let mut buf = Vec::with_capacity(1 << 16);
    let started = std::time::Instant::now();
    for i in 0..events {
        let event = decode(&records[(i % 64) as usize]).expect("a whole record");
        printer.write_event(&event, &mut buf);
        if buf.len() >= 1 << 16 {
            sink.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    sink.write_all(&buf).unwrap();
    started.elapsed().as_nanos() as f64 / events as f64
}

fn main() {
    let events = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    run(false, events / 10); // warm-up
    println!("text {:.1}", run(false, events));
    println!("json {:.1}", run(true, events));
}
