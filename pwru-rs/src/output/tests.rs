use pwru_rs_common::{Event, EVENT_HAS_DEV, EVENT_HAS_REASON, IP_NONE, IP_V4, IP_V6};

use super::*;
use crate::backend::HookNames;

fn config(json: bool, timestamp: TimestampChoice) -> PrinterConfig {
    PrinterConfig {
        json,
        timestamp,
        output_meta: true,
        output_tuple: true,
        hooks: HookNames::ByIndex(vec!["net_dev_queue".into(), "kfree_skb".into()]),
        drop_reasons: [
            (2, "SKB_DROP_REASON_NOT_SPECIFIED".to_string()),
            (3, "SKB_DROP_REASON_NO_SOCKET".into()),
        ]
        .into_iter()
        .collect(),
    }
}

fn fixed_name<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0; N];
    out[..s.len()].copy_from_slice(s.as_bytes());
    out
}

/// A UDP packet 10.0.0.1:4242 -> 10.0.0.2:53 leaving veth0.
fn udp_event() -> Event {
    let mut e = Event::zeroed();
    e.ts_ns = 5_000_000_123;
    e.skb = 0xffff_8880_0a1b_2c00;
    e.hook = 0;
    e.pid = 4711;
    e.cpu = 1;
    e.netns = 4_026_531_840;
    e.mark = 0x42;
    e.ifindex = 7;
    e.len = 60;
    e.mtu = 1500;
    e.flags = EVENT_HAS_DEV;
    e.protocol = 0x0800;
    e.ip_version = IP_V4;
    e.l4_proto = 17;
    e.sport = 4242;
    e.dport = 53;
    e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
    e.comm = fixed_name("dig");
    e.ifname = fixed_name("veth0");
    e
}

fn text(printer: &mut Printer, event: &Event) -> String {
    let mut out = Vec::new();
    printer.write_event(event, &mut out);
    String::from_utf8(out).unwrap()
}

fn json(printer: &mut Printer, event: &Event) -> JsonEvent {
    let mut out = Vec::new();
    printer.write_event(event, &mut out);
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line per event"
    );
    assert_eq!(out.last(), Some(&b'\n'));
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

#[test]
fn header_matches_pwru_layout() {
    let printer = Printer::new(config(false, TimestampChoice::None));
    let mut out = Vec::new();
    printer.write_header(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "SKB                CPU PROCESS          NETNS      MARK/x        IFACE       PROTO  MTU   LEN   TUPLE    FUNC\n"
    );
}

#[test]
fn header_follows_toggles_and_timestamps() {
    let mut cfg = config(false, TimestampChoice::Current);
    cfg.output_meta = false;
    cfg.output_tuple = false;
    let mut out = Vec::new();
    Printer::new(cfg).write_header(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "SKB                CPU PROCESS          TIMESTAMP        FUNC\n"
    );

    let mut out = Vec::new();
    Printer::new(config(false, TimestampChoice::Absolute)).write_header(&mut out);
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("TIME            SKB "));

    let mut out = Vec::new();
    Printer::new(config(true, TimestampChoice::None)).write_header(&mut out);
    assert!(out.is_empty(), "JSON lines have no header");
}

#[test]
fn every_text_column() {
    let mut printer = Printer::new(config(false, TimestampChoice::None));
    assert_eq!(
        text(&mut printer, &udp_event()),
        "0xffff88800a1b2c00 1   dig:4711         4026531840 0x42         veth0:7      0x0800 1500  60    \
         10.0.0.1:4242->10.0.0.2:53(udp) net_dev_queue\n"
    );
}

#[test]
fn text_columns_line_up_with_header() {
    let mut printer = Printer::new(config(false, TimestampChoice::Current));
    let mut header = Vec::new();
    printer.write_header(&mut header);
    let header = String::from_utf8(header).unwrap();
    let line = text(&mut printer, &udp_event());
    for column in [
        "CPU",
        "PROCESS",
        "TIMESTAMP",
        "NETNS",
        "MARK/x",
        "PROTO",
        "MTU",
        "LEN",
        "TUPLE",
    ] {
        let at = header.find(column).unwrap();
        assert_eq!(
            &line[at - 1..at],
            " ",
            "column {column} starts after a space in {line:?}"
        );
        assert_ne!(
            &line[at..at + 1],
            " ",
            "column {column} is left-aligned in {line:?}"
        );
    }
}

#[test]
fn iface_is_centred_and_bare_ifindex_without_device() {
    let mut printer = Printer::new(config(false, TimestampChoice::None));
    let mut e = udp_event();
    e.flags = 0;
    e.ifindex = 0;
    let line = text(&mut printer, &e);
    assert!(
        line.contains(" 0x42            0         0x0800 "),
        "{line:?}"
    );
}

#[test]
fn ipv6_tuple_in_brackets() {
    let mut printer = Printer::new(config(false, TimestampChoice::None));
    let mut e = udp_event();
    e.ip_version = IP_V6;
    e.protocol = 0x86dd;
    e.l4_proto = 58;
    e.sport = 0;
    e.dport = 0;
    e.saddr = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    e.daddr = "fe80::abcd:1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let line = text(&mut printer, &e);
    assert!(line.contains(" 0x86dd "), "{line}");
    assert!(
        line.contains(" [fd00::1]:0->[fe80::abcd:1]:0(icmp6) net_dev_queue\n"),
        "{line}"
    );
    let j = json(&mut Printer::new(config(true, TimestampChoice::None)), &e);
    let tuple = j.tuple.unwrap();
    assert_eq!(
        (tuple.saddr.as_str(), tuple.daddr.as_str(), tuple.proto),
        ("fd00::1", "fe80::abcd:1", 58)
    );
    assert_eq!(j.proto, 0x86dd);
}

#[test]
fn tuple_without_ip_header_and_unnamed_protocols() {
    let mut printer = Printer::new(config(false, TimestampChoice::None));
    let mut e = udp_event();
    e.ip_version = IP_NONE;
    e.protocol = 0x0806;
    assert!(text(&mut printer, &e).contains(" 0.0.0.0:0->0.0.0.0:0() net_dev_queue"));
    assert_eq!(
        json(&mut Printer::new(config(true, TimestampChoice::None)), &e).tuple,
        None
    );

    let mut e = udp_event();
    e.l4_proto = 47; // GRE
    assert!(text(&mut printer, &e).contains("->10.0.0.2:53(47) "));
}

#[test]
fn drop_reason_names_from_btf_and_numbers_otherwise() {
    let mut printer = Printer::new(config(false, TimestampChoice::None));
    let mut e = udp_event();
    e.hook = 1;
    e.flags |= EVENT_HAS_REASON;
    e.reason = 3;
    assert!(text(&mut printer, &e).ends_with(" kfree_skb(SKB_DROP_REASON_NO_SOCKET)\n"));
    let j = json(&mut Printer::new(config(true, TimestampChoice::None)), &e);
    assert_eq!(j.func, "kfree_skb(SKB_DROP_REASON_NO_SOCKET)");
    assert_eq!(j.reason.as_deref(), Some("SKB_DROP_REASON_NO_SOCKET"));
    assert_eq!(j.reason_code, Some(3));

    e.reason = 999;
    assert!(text(&mut printer, &e).ends_with(" kfree_skb(999)\n"));
    let j = json(&mut Printer::new(config(true, TimestampChoice::None)), &e);
    assert_eq!((j.reason, j.reason_code), (None, Some(999)));

    e.hook = 77;
    assert!(text(&mut printer, &e).ends_with(" unknown_hook_0x4d(999)\n"));
}

#[test]
fn output_toggles_drop_columns() {
    let mut cfg = config(false, TimestampChoice::None);
    cfg.output_meta = false;
    cfg.output_tuple = false;
    let line = text(&mut Printer::new(cfg), &udp_event());
    assert_eq!(
        line,
        "0xffff88800a1b2c00 1   dig:4711         net_dev_queue\n"
    );
}

#[test]
fn json_round_trip_has_every_field() {
    let mut printer = Printer::new(config(true, TimestampChoice::None));
    let e = udp_event();
    let j = json(&mut printer, &e);
    assert_eq!(
        j,
        JsonEvent {
            skb: "0xffff88800a1b2c00".into(),
            cpu: 1,
            process: "dig:4711".into(),
            func: "net_dev_queue".into(),
            time: None,
            netns: 4_026_531_840,
            mark: 0x42,
            iface: "veth0:7".into(),
            proto: 0x0800,
            mtu: 1500,
            len: 60,
            tuple: Some(JsonTuple {
                saddr: "10.0.0.1".into(),
                daddr: "10.0.0.2".into(),
                sport: 4242,
                dport: 53,
                proto: 17,
            }),
            pid: 4711,
            comm: "dig".into(),
            ifindex: 7,
            ifname: "veth0".into(),
            reason: None,
            reason_code: None,
        }
    );
    // Same bytes as serde would write for the schema type: key order and spelling are the contract.
    let mut out = Vec::new();
    printer.write_event(&e, &mut out);
    let mut expected = serde_json::to_vec(&j).unwrap();
    expected.push(b'\n');
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[test]
fn zeros_are_kept_in_json() {
    let mut e = Event::zeroed();
    e.comm = fixed_name("swapper/0");
    let text = {
        let mut out = Vec::new();
        Printer::new(config(true, TimestampChoice::None)).write_event(&e, &mut out);
        String::from_utf8(out).unwrap()
    };
    for key in [
        "\"cpu\":0",
        "\"netns\":0",
        "\"mark\":0",
        "\"mtu\":0",
        "\"len\":0",
        "\"iface\":\"0\"",
        "\"ifname\":\"\"",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
}

#[test]
fn json_escapes_kernel_names() {
    let mut e = udp_event();
    e.comm.copy_from_slice(b"a\"b\\c\n\xff\x01zzzzzzzz");
    let j = json(&mut Printer::new(config(true, TimestampChoice::None)), &e);
    assert_eq!(j.comm, "a\"b\\c\n\u{fffd}\u{1}zzzzzzzz");
    assert_eq!(j.process, "a\"b\\c\n\u{fffd}\u{1}zzzzzzzz:4711");
}

#[test]
fn relative_timestamps_are_per_skb() {
    let mut printer = Printer::new(config(true, TimestampChoice::Relative));
    let a = udp_event().skb;
    let b = a + 0x100;
    let times: Vec<_> = [(a, 1_000), (b, 1_500), (a, 1_700), (b, 2_000), (a, 2_900)]
        .into_iter()
        .map(|(skb, ts)| {
            let mut e = udp_event();
            e.skb = skb;
            e.ts_ns = ts;
            json(&mut printer, &e).time
        })
        .collect();
    let ns = |n| Some(JsonTime::Nanos(n));
    assert_eq!(times, [ns(0), ns(0), ns(700), ns(500), ns(1_200)]);
}

#[test]
fn current_and_absolute_timestamps() {
    let e = udp_event();
    let j = json(
        &mut Printer::new(config(true, TimestampChoice::Current)),
        &e,
    );
    assert_eq!(j.time, Some(JsonTime::Nanos(5_000_000_123)));

    // ktime 5.000000123 s ↔ 2026-11-23T18:20:01.000000123Z
    let clock = WallClock::fixed(1_795_457_996_000_000_000, 0);
    let j = json(
        &mut Printer::with_clock(config(true, TimestampChoice::Absolute), clock),
        &e,
    );
    assert_eq!(
        j.time,
        Some(JsonTime::Wall("2026-11-23T18:20:01.000000123+00:00".into()))
    );
    let line = text(
        &mut Printer::with_clock(config(false, TimestampChoice::Absolute), clock),
        &e,
    );
    assert!(
        line.starts_with("18:20:01.000000 0xffff88800a1b2c00 "),
        "{line}"
    );

    let line = text(
        &mut Printer::new(config(false, TimestampChoice::Current)),
        &e,
    );
    assert!(
        line.starts_with("0xffff88800a1b2c00 1   dig:4711         5000000123       4026531840 "),
        "{line}"
    );
}
