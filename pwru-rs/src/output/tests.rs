use std::net::IpAddr;

use super::*;
use crate::events::{Frame, NetfilterChain, Stack, Stamp, TrackedBy, Tuple, Verdict, XdpPacket};
use json::{JsonNetfilter, JsonXdp};

fn config(json: bool, timestamp: TimestampChoice) -> PrinterConfig {
    PrinterConfig {
        json,
        timestamp,
        output_meta: true,
        output_tuple: true,
        output_skb_cb: false,
        netns_names_width: None,
        output_caller: false,
        output_tunnel: false,
        packet_bytes: false,
    }
}

fn printer(json: bool, timestamp: TimestampChoice) -> Printer {
    Printer::new(config(json, timestamp), WallClock::fixed(0, 0))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A UDP packet 10.0.0.1:4242 -> 10.0.0.2:53 leaving veth0.
fn udp_event() -> Event<'static> {
    Event {
        skb: 0xffff_8880_0a1b_2c00,
        cpu: 1,
        pid: 4711,
        comm: b"dig",
        hook: Hook::Known("net_dev_queue"),
        reason: None,
        verdict: None,
        xdp: None,
        ts_ns: 5_000_000_123,
        time: Stamp::None,
        netns: 4_026_531_840,
        netns_name: None,
        mark: 0x42,
        ifindex: 7,
        ifname: b"veth0",
        mtu: 1500,
        len: 60,
        protocol: 0x0800,
        tuple: Some(Tuple {
            saddr: ip("10.0.0.1"),
            daddr: ip("10.0.0.2"),
            sport: 4242,
            dport: 53,
            proto: 17,
            tcp_flags: None,
        }),
        cb: None,
        skb_dump: None,
        shinfo_dump: None,
        tracked_by: None,
        parent_skb: None,
        stack: None,
        caller: None,
        packet: None,
        skb_metadata: None,
        tunnel_tuple: None,
        netfilter: None,
        bpf_map: None,
        pod: None,
    }
}

fn text(printer: &Printer, event: &Event<'_>) -> String {
    let mut out = Vec::new();
    printer.write_event(event, &mut out);
    String::from_utf8(out).unwrap()
}

fn json(event: &Event<'_>) -> JsonEvent {
    let mut out = Vec::new();
    printer(true, TimestampChoice::None).write_event(event, &mut out);
    assert_eq!(
        out.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line per event"
    );
    assert_eq!(out.last(), Some(&b'\n'));
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
}

/// The JSON form of [`udp_event`].
pub(super) fn json_sample() -> JsonEvent {
    json(&udp_event())
}

#[test]
fn header_matches_pwru_layout() {
    let mut out = Vec::new();
    printer(false, TimestampChoice::None).write_header(&mut out);
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
    Printer::new(cfg, WallClock::fixed(0, 0)).write_header(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "SKB                CPU PROCESS          TIMESTAMP        FUNC\n"
    );

    let mut out = Vec::new();
    printer(false, TimestampChoice::Absolute).write_header(&mut out);
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("TIME            SKB "));

    let mut out = Vec::new();
    printer(true, TimestampChoice::None).write_header(&mut out);
    assert!(out.is_empty(), "JSON lines have no header");
}

#[test]
fn every_text_column() {
    assert_eq!(
        text(&printer(false, TimestampChoice::None), &udp_event()),
        "0xffff88800a1b2c00 1   dig:4711         4026531840 0x42         veth0:7      0x0800 1500  60    \
         10.0.0.1:4242->10.0.0.2:53(udp) net_dev_queue\n"
    );
}

#[test]
fn text_columns_line_up_with_header() {
    let printer = printer(false, TimestampChoice::Current);
    let mut header = Vec::new();
    printer.write_header(&mut header);
    let header = String::from_utf8(header).unwrap();
    let line = text(
        &printer,
        &Event {
            time: Stamp::Nanos(5_000_000_123),
            ..udp_event()
        },
    );
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
    let e = Event {
        ifname: b"",
        ifindex: 0,
        ..udp_event()
    };
    let line = text(&printer(false, TimestampChoice::None), &e);
    assert!(
        line.contains(" 0x42            0         0x0800 "),
        "{line:?}"
    );
}

#[test]
fn ipv6_tuple_in_brackets() {
    let e = Event {
        protocol: 0x86dd,
        tuple: Some(Tuple {
            saddr: ip("fd00::1"),
            daddr: ip("fe80::abcd:1"),
            sport: 0,
            dport: 0,
            proto: 58,
            tcp_flags: None,
        }),
        ..udp_event()
    };
    let line = text(&printer(false, TimestampChoice::None), &e);
    assert!(line.contains(" 0x86dd "), "{line}");
    assert!(
        line.contains(" [fd00::1]:0->[fe80::abcd:1]:0(icmp6) net_dev_queue\n"),
        "{line}"
    );
    let j = json(&e);
    let tuple = j.tuple.unwrap();
    assert_eq!(
        (tuple.saddr.as_str(), tuple.daddr.as_str(), tuple.proto),
        ("fd00::1", "fe80::abcd:1", 58)
    );
    assert_eq!(j.proto, 0x86dd);
}

#[test]
fn tuple_without_ip_header_and_unnamed_protocols() {
    let printer = printer(false, TimestampChoice::None);
    let e = Event {
        protocol: 0x0806,
        tuple: None,
        ..udp_event()
    };
    assert!(text(&printer, &e).contains(" 0.0.0.0:0->0.0.0.0:0() net_dev_queue"));
    assert_eq!(json(&e).tuple, None);

    let mut e = udp_event();
    e.tuple.as_mut().unwrap().proto = 47; // GRE
    assert!(text(&printer, &e).contains("->10.0.0.2:53(47) "));
}

#[test]
fn drop_reason_names_from_btf_and_numbers_otherwise() {
    let printer = printer(false, TimestampChoice::None);
    let mut e = Event {
        hook: Hook::Known("kfree_skb"),
        reason: Some(Reason {
            code: 3,
            name: Some("SKB_DROP_REASON_NO_SOCKET"),
        }),
        ..udp_event()
    };
    assert!(text(&printer, &e).ends_with(" kfree_skb(SKB_DROP_REASON_NO_SOCKET)\n"));
    let j = json(&e);
    assert_eq!(j.func, "kfree_skb(SKB_DROP_REASON_NO_SOCKET)");
    assert_eq!(j.reason.as_deref(), Some("SKB_DROP_REASON_NO_SOCKET"));
    assert_eq!(j.reason_code, Some(3));

    e.reason = Some(Reason {
        code: 999,
        name: None,
    });
    assert!(text(&printer, &e).ends_with(" kfree_skb(999)\n"));
    let j = json(&e);
    assert_eq!((j.reason, j.reason_code), (None, Some(999)));

    e.hook = Hook::Unknown(77);
    assert!(text(&printer, &e).ends_with(" unknown_hook_0x4d(999)\n"));
}

#[test]
fn output_toggles_drop_columns() {
    let mut cfg = config(false, TimestampChoice::None);
    cfg.output_meta = false;
    cfg.output_tuple = false;
    let line = text(&Printer::new(cfg, WallClock::fixed(0, 0)), &udp_event());
    assert_eq!(
        line,
        "0xffff88800a1b2c00 1   dig:4711         net_dev_queue\n"
    );
}

#[test]
fn json_round_trip_has_every_field() {
    let e = udp_event();
    let j = json(&e);
    assert_eq!(
        j,
        JsonEvent {
            skb: "0xffff88800a1b2c00".into(),
            cpu: 1,
            process: "dig:4711".into(),
            func: "net_dev_queue".into(),
            time: None,
            netns: 4_026_531_840,
            netns_name: None,
            mark: 0x42,
            iface: "veth0:7".into(),
            proto: 0x0800,
            mtu: 1500,
            len: 60,
            cb: None,
            tuple: Some(JsonTuple {
                saddr: "10.0.0.1".into(),
                daddr: "10.0.0.2".into(),
                sport: 4242,
                dport: 53,
                proto: 17,
                flags: None,
            }),
            pid: 4711,
            comm: "dig".into(),
            ifindex: 7,
            ifname: "veth0".into(),
            reason: None,
            reason_code: None,
            skb_dump: None,
            skb_shared_info: None,
            tracked_by: None,
            parent_skb: None,
            stack: None,
            stack_error: None,
            caller_func: None,
            verdict: None,
            verdict_code: None,
            xdp: None,
            skb_metadata: None,
            tunnel_tuple: None,
            packet_bytes: None,
            netfilter: None,
            bpf_map: None,
            pod: None,
            k8s_namespace: None,
        }
    );
    // Same bytes as serde would write for the schema type: key order and spelling are the contract.
    let mut out = Vec::new();
    printer(true, TimestampChoice::None).write_event(&e, &mut out);
    let mut expected = serde_json::to_vec(&j).unwrap();
    expected.push(b'\n');
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(expected).unwrap()
    );
}

#[test]
fn json_writer_keys_are_the_documented_schema_in_every_case() {
    let documented: Vec<&str> = schema::FIELDS.iter().map(|f| f.key).collect();
    let drop = Event {
        reason: Some(Reason {
            code: 3,
            name: None,
        }),
        tuple: None,
        time: Stamp::Wall(1),
        ..udp_event()
    };
    let clone = Event {
        tracked_by: Some(TrackedBy::Skb),
        parent_skb: Some(0xffff_8880_0a1b_2d00),
        ..udp_event()
    };
    let frames = [frame("ip_rcv+0x10")];
    let stacked = Event {
        stack: Some(Stack::Frames(&frames)),
        caller: Some("__netif_receive_skb_core"),
        ..udp_event()
    };
    let unstacked = Event {
        stack: Some(Stack::Failed("stack map full (ENOMEM)")),
        ..udp_event()
    };
    let chain = Event {
        netfilter: Some(sample_chain()),
        verdict: Some(Verdict::netfilter(1)),
        ..udp_event()
    };
    for e in [udp_event(), drop, clone, stacked, unstacked, chain] {
        let mut out = Vec::new();
        printer(true, TimestampChoice::None).write_event(&e, &mut out);
        assert_eq!(schema::tests::keys_of(&out), documented);
    }
}

#[test]
fn json_says_why_a_tracked_skb_was_traced_and_its_parent() {
    let mut e = udp_event();
    let j = json(&e);
    assert_eq!((j.tracked_by, j.parent_skb), (None, None));
    e.tracked_by = Some(TrackedBy::Filter);
    assert_eq!(json(&e).tracked_by.as_deref(), Some("filter"));
    e.tracked_by = Some(TrackedBy::Skb);
    e.parent_skb = Some(0xffff_8880_0a1b_2d00);
    let j = json(&e);
    assert_eq!(j.tracked_by.as_deref(), Some("skb"));
    assert_eq!(j.parent_skb.as_deref(), Some("0xffff88800a1b2d00"));
    // The text columns stay pwru's.
    let printer = printer(false, TimestampChoice::None);
    assert_eq!(text(&printer, &e), text(&printer, &udp_event()));
}

fn frame(text: &str) -> Frame {
    Frame::new(text.to_owned(), text.find('+').unwrap_or(text.len()))
}

#[test]
fn stacks_and_callers_in_text_and_json() {
    let frames = [frame("ip_rcv+0x10"), frame("veth_xmit+0x4 [veth]")];
    let e = Event {
        stack: Some(Stack::Frames(&frames)),
        caller: Some("__netif_receive_skb_core"),
        ..udp_event()
    };
    let j = json(&e);
    assert_eq!(
        j.stack.as_deref(),
        Some(
            &[
                "ip_rcv+0x10".to_string(),
                "veth_xmit+0x4 [veth]".to_string()
            ][..]
        )
    );
    assert_eq!(
        (j.stack_error, j.caller_func.as_deref()),
        (None, Some("__netif_receive_skb_core"))
    );
    let mut cfg = config(false, TimestampChoice::None);
    cfg.output_caller = true;
    let printer = Printer::new(cfg, WallClock::fixed(0, 0));
    let line = text(&printer, &e);
    assert!(
        line.ends_with(
            " net_dev_queue __netif_receive_skb_core\n    ip_rcv+0x10\n    veth_xmit+0x4 [veth]\n"
        ),
        "{line}"
    );
    let mut header = Vec::new();
    printer.write_header(&mut header);
    assert!(String::from_utf8(header)
        .unwrap()
        .ends_with(" FUNC CALLER\n"));

    // A stack the kernel could not capture says so: it is not an empty stack.
    let failed = Event {
        stack: Some(Stack::Failed("stack map full (ENOMEM)")),
        caller: None,
        ..udp_event()
    };
    let j = json(&failed);
    assert_eq!(
        (j.stack, j.stack_error.as_deref()),
        (None, Some("stack map full (ENOMEM)"))
    );
    assert!(text(&printer, &failed)
        .ends_with(" net_dev_queue -\n    (stack not captured: stack map full (ENOMEM))\n"));
}

#[test]
fn zeros_are_kept_in_json() {
    let e = Event {
        skb: 0,
        pid: 0,
        comm: b"swapper/0",
        hook: Hook::Unknown(0),
        netns: 0,
        ifindex: 0,
        ifname: b"",
        mtu: 0,
        len: 0,
        protocol: 0,
        ..Event::sample(0, "", 0)
    };
    let mut out = Vec::new();
    printer(true, TimestampChoice::None).write_event(&e, &mut out);
    let text = String::from_utf8(out).unwrap();
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
    let e = Event {
        comm: b"a\"b\\c\n\xff\x01zzzzzzzz",
        ..udp_event()
    };
    let j = json(&e);
    assert_eq!(j.comm, "a\"b\\c\n\u{fffd}\u{1}zzzzzzzz");
    assert_eq!(j.process, "a\"b\\c\n\u{fffd}\u{1}zzzzzzzz:4711");
}

#[test]
fn nanosecond_and_wall_clock_times() {
    let e = Event {
        time: Stamp::Nanos(5_000_000_123),
        ..udp_event()
    };
    assert_eq!(json(&e).time, Some(JsonTime::Nanos(5_000_000_123)));
    let line = text(&printer(false, TimestampChoice::Current), &e);
    assert!(
        line.starts_with("0xffff88800a1b2c00 1   dig:4711         5000000123       4026531840 "),
        "{line}"
    );

    // 2026-11-23T18:20:01.000000123Z
    let e = Event {
        time: Stamp::Wall(1_795_457_996_000_000_000 + 5_000_000_123),
        ..udp_event()
    };
    assert_eq!(
        json(&e).time,
        Some(JsonTime::Wall("2026-11-23T18:20:01.000000123+00:00".into()))
    );
    let line = text(&printer(false, TimestampChoice::Absolute), &e);
    assert!(
        line.starts_with("18:20:01.000000 0xffff88800a1b2c00 "),
        "{line}"
    );
}

#[test]
fn tcp_flags_cb_and_dumps() {
    let mut e = udp_event();
    {
        let t = e.tuple.as_mut().unwrap();
        t.proto = 6;
        t.tcp_flags = Some(0x12); // SYN|ACK
    }
    e.cb = Some([0, 1, 0xdead_beef, 0, 5]);
    let dump = crate::events::Dump {
        text: b"(struct sk_buff){\n .len = (unsigned int)60,\n}",
        full_len: 45,
    };
    e.skb_dump = Some(dump);
    e.shinfo_dump = Some(crate::events::Dump {
        text: b"(struct skb_shared_info){",
        full_len: 900,
    });
    let mut cfg = config(false, TimestampChoice::None);
    cfg.output_skb_cb = true;
    let text_printer = Printer::new(cfg, WallClock::fixed(0, 0));
    let line = text(&text_printer, &e);
    assert!(
        line.contains(
            " 60    [0x00000000,0x00000001,0xDEADBEEF,0x00000000,0x00000005] 10.0.0.1:4242->10.0.0.2:53(tcp:[S.]) net_dev_queue\n(struct sk_buff){\n .len = (unsigned int)60,\n}\n(struct skb_shared_info){\n... cut at 25 of 900 bytes (--set-percpu-buf)\n"
        ),
        "{line}"
    );
    let mut header = Vec::new();
    text_printer.write_header(&mut header);
    let header = String::from_utf8(header).unwrap();
    assert!(header.contains(" LEN   __sk_buff->cb[]"), "{header}");
    let at = header.find("TUPLE").unwrap();
    assert_eq!(
        &line[at..at + 8],
        "10.0.0.1",
        "cb column is 56 wide: {line}"
    );

    let j = json(&e);
    assert_eq!(j.cb, Some([0, 1, 0xdead_beef, 0, 5]));
    assert_eq!(j.tuple.unwrap().flags.as_deref(), Some("SYN|ACK"));
    assert_eq!(j.skb_dump.as_deref(), std::str::from_utf8(dump.text).ok());
    assert!(j
        .skb_shared_info
        .unwrap()
        .ends_with("cut at 25 of 900 bytes (--set-percpu-buf)"));

    for (flags, short, long) in [
        (0x02, "[S]", "SYN"),
        (0x14, "[R.]", "RST|ACK"),
        (0x11, "[F.]", "FIN|ACK"),
        (0x18, "[P.]", "PSH|ACK"),
        (0x00, "[none]", ""),
    ] {
        let mut out = Vec::new();
        write_tcp_flags_short(&mut out, flags);
        assert_eq!(out, short.as_bytes());
        let mut out = Vec::new();
        write_tcp_flags_names(&mut out, flags);
        assert_eq!(out, long.as_bytes());
    }
}

#[test]
fn netns_name_column_and_key() {
    let mut cfg = config(false, TimestampChoice::None);
    cfg.netns_names_width = Some(8);
    let printer = Printer::new(cfg, WallClock::fixed(0, 0));
    let mut header = Vec::new();
    printer.write_header(&mut header);
    let header = String::from_utf8(header).unwrap();
    assert!(header.contains(" LEN   NETNS NAME TUPLE"), "{header}");
    let named = Event {
        netns_name: Some("pwrt-b12345"),
        ..udp_event()
    };
    // Cut to the width, centred, then the tuple.
    assert!(
        text(&printer, &named).contains(" 60    pwrt-b12 10.0.0.1:"),
        "{}",
        text(&printer, &named)
    );
    assert!(text(&printer, &udp_event()).contains(" 60             10.0.0.1:"));
    let short = Event {
        netns_name: Some("b"),
        ..udp_event()
    };
    assert!(text(&printer, &short).contains(" 60       b     10.0.0.1:"));
    assert_eq!(
        json(&named).netns_name.as_deref(),
        Some("pwrt-b12345"),
        "JSON keeps it whole"
    );
    assert_eq!(json(&udp_event()).netns_name, None);
}

#[test]
fn bpf_program_exit_shows_its_verdict() {
    let mut e = udp_event();
    e.hook = Hook::Known("cil_from_container");
    e.verdict = Some(Verdict::tc(2));
    let line = text(&printer(false, TimestampChoice::None), &e);
    assert!(line.contains(" cil_from_container(TC_ACT_SHOT)"), "{line}");
    let j = json(&e);
    assert_eq!(j.func, "cil_from_container(TC_ACT_SHOT)");
    assert_eq!(
        (j.verdict.as_deref(), j.verdict_code, j.xdp),
        (Some("TC_ACT_SHOT"), Some(2), None)
    );
    // TC_ACT_UNSPEC is -1; a value outside the enum keeps its number.
    e.verdict = Some(Verdict::tc(-1));
    assert_eq!(json(&e).verdict.as_deref(), Some("TC_ACT_UNSPEC"));
    assert_eq!(json(&e).verdict_code, Some(-1));
    e.verdict = Some(Verdict::tc(77));
    let j = json(&e);
    assert_eq!(
        (j.func.as_str(), j.verdict, j.verdict_code),
        ("cil_from_container(77)", None, Some(77))
    );
}

#[test]
fn xdp_packet_has_its_rx_queue_and_verdict() {
    let mut e = udp_event();
    e.hook = Hook::Known("xdp_prog");
    e.xdp = Some(XdpPacket { rx_queue: 3 });
    e.verdict = Some(Verdict::xdp(2));
    let j = json(&e);
    assert_eq!(j.func, "xdp_prog(XDP_PASS)");
    assert_eq!(j.xdp, Some(JsonXdp { rx_queue: 3 }));
    for (code, name) in [
        (0, Some("XDP_ABORTED")),
        (1, Some("XDP_DROP")),
        (3, Some("XDP_TX")),
        (4, Some("XDP_REDIRECT")),
        (5, None),
        (-1, None),
    ] {
        assert_eq!(Verdict::xdp(code).name, name, "{code}");
    }
    assert_eq!(Verdict::tc(7).name, Some("TC_ACT_REDIRECT"));
    assert_eq!(Verdict::tc(0).name, Some("TC_ACT_OK"));
}

#[test]
fn skb_metadata_in_text_and_json() {
    use crate::events::{MetadataField, SkbMetadata, ValueKind};
    let field = |key: &str, kind, at, bytes| MetadataField {
        key: key.into(),
        label: crate::expr::label_of(key).into(),
        kind,
        at,
        bytes,
    };
    let fields = vec![
        field("skb->mark", ValueKind::Unsigned, 0, 8),
        field("skb->dev->name", ValueKind::Chars, 8, 16),
        field("skb->dev->ifindex", ValueKind::Signed, 24, 8),
        field("skb->sk", ValueKind::Pointer, 32, 8),
        field("skb->cb", ValueKind::Bytes, 40, 3),
    ];
    let mut words = Vec::new();
    words.extend_from_slice(&66u64.to_le_bytes());
    words.extend_from_slice(b"veth0\0\0\0\0\0\0\0\0\0\0\0");
    words.extend_from_slice(&(-2i64).to_le_bytes());
    words.extend_from_slice(&0xffff_8880_0000_1000u64.to_le_bytes());
    words.extend_from_slice(&[1, 0xab, 0, 0, 0, 0, 0, 0]);
    let mut e = udp_event();
    e.skb_metadata = Some(SkbMetadata::Words {
        fields: &fields,
        words: &words,
    });
    let line = text(&printer(false, TimestampChoice::None), &e);
    assert!(
        line.trim_end().ends_with(
            "net_dev_queue mark=66 name=veth0 ifindex=-2 sk=0xffff888000001000 cb=0x01ab00"
        ),
        "{line}"
    );
    let j = json(&e);
    let md = j.skb_metadata.clone().expect("skb_metadata");
    let expected = serde_json::json!({
        "skb->mark": 66,
        "skb->dev->name": "veth0",
        "skb->dev->ifindex": -2,
        "skb->sk": "0xffff888000001000",
        "skb->cb": "0x01ab00",
    });
    assert_eq!(serde_json::Value::Object(md.clone()), expected);
    // Written in the order given, and re-written the same from what was read back.
    let keys: Vec<&str> = md.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "skb->mark",
            "skb->dev->name",
            "skb->dev->ifindex",
            "skb->sk",
            "skb->cb"
        ]
    );
    let mut again = e;
    again.skb_metadata = Some(SkbMetadata::Json(&md));
    let p = printer(true, TimestampChoice::None);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    p.write_event(&e, &mut a);
    p.write_event(&again, &mut b);
    assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    let line2 = text(&printer(false, TimestampChoice::None), &again);
    assert_eq!(line, line2);
}

#[test]
fn tunnel_tuple_in_text_and_json() {
    let mut e = udp_event();
    let inner = Tuple {
        saddr: ip("192.168.77.1"),
        daddr: ip("192.168.77.2"),
        sport: 0,
        dport: 0,
        proto: 1,
        tcp_flags: None,
    };
    e.tunnel_tuple = Some(inner);
    let mut config = PrinterConfig {
        output_tunnel: true,
        ..config(false, TimestampChoice::None)
    };
    let p = Printer::new(config, WallClock::fixed(0, 0));
    let mut header = Vec::new();
    p.write_header(&mut header);
    assert!(String::from_utf8(header)
        .unwrap()
        .trim_end()
        .ends_with("FUNC TUNNEL"));
    let line = text(&p, &e);
    assert!(
        line.trim_end()
            .ends_with("net_dev_queue 192.168.77.1:0->192.168.77.2:0(icmp)"),
        "{line}"
    );
    e.tunnel_tuple = None;
    let line = text(&p, &e);
    assert!(
        line.trim_end()
            .ends_with("net_dev_queue 0.0.0.0:0->0.0.0.0:0()"),
        "{line}"
    );
    e.tunnel_tuple = Some(inner);
    let j = json(&e);
    let t = j.tunnel_tuple.expect("tunnel_tuple");
    assert_eq!(
        (t.saddr.as_str(), t.daddr.as_str(), t.proto),
        ("192.168.77.1", "192.168.77.2", 1)
    );
    config = self::config(false, TimestampChoice::None);
    assert!(!config.output_tunnel);
}

fn sample_chain() -> NetfilterChain<'static> {
    NetfilterChain {
        family: "inet",
        table: b"filter",
        chain: b"input",
        hook: "input",
        priority: -150,
    }
}

#[test]
fn netfilter_chain_and_verdict_in_text_and_json() {
    let mut e = udp_event();
    e.hook = Hook::Known("nft_do_chain");
    e.netfilter = Some(sample_chain());
    e.verdict = Some(Verdict::netfilter(0));
    let p = printer(false, TimestampChoice::None);
    let line = text(&p, &e);
    assert!(
        line.trim_end().ends_with(
            "nft_do_chain(NF_DROP) table=inet/filter chain=input hook=input priority=-150"
        ),
        "{line}"
    );
    let j = json(&e);
    assert_eq!(j.func, "nft_do_chain(NF_DROP)");
    assert_eq!(
        (j.verdict.as_deref(), j.verdict_code),
        (Some("NF_DROP"), Some(0))
    );
    assert_eq!(
        j.netfilter,
        Some(JsonNetfilter {
            family: "inet".into(),
            table: "filter".into(),
            chain: "input".into(),
            hook: "input".into(),
            priority: -150,
        })
    );
    // At the entry: the chain, no verdict.
    e.verdict = None;
    assert!(text(&p, &e)
        .trim_end()
        .ends_with("nft_do_chain table=inet/filter chain=input hook=input priority=-150"));
    e.netfilter = None;
    assert_eq!(json(&e).netfilter, None);
}

#[test]
fn netfilter_verdicts_are_named_as_the_kernel_means_them() {
    let name = |code: i32| Verdict::netfilter(code).name;
    assert_eq!(name(0), Some("NF_DROP"));
    assert_eq!(name(1), Some("NF_ACCEPT"));
    assert_eq!(name(2), Some("NF_STOLEN"));
    // NF_QUEUE_NR(5): the queue number above the verdict.
    assert_eq!(name(5 << 16 | 3), Some("NF_QUEUE"));
    // NF_DROP_ERR(-EPERM) on older kernels; NF_DROP_REASON's stolen-with-errno on newer ones.
    assert_eq!(name(1 << 16), Some("NF_DROP"));
    assert_eq!(name(1 << 16 | 2), Some("NF_DROP"));
    assert_eq!(name(9), None);
    assert_eq!(Verdict::netfilter(1 << 16 | 2).code, 65538);
}

#[test]
fn netfilter_hooks_and_families_by_nft_names() {
    assert_eq!(NetfilterChain::hook_name(2, 1), "input");
    assert_eq!(NetfilterChain::hook_name(10, 4), "postrouting");
    assert_eq!(NetfilterChain::hook_name(1, 5), "ingress");
    assert_eq!(NetfilterChain::hook_name(5, 1), "egress");
    assert_eq!(NetfilterChain::hook_name(3, 1), "output");
    assert_eq!(NetfilterChain::hook_name(2, 9), "unknown");
    assert_eq!(NetfilterChain::family_name(1), "inet");
    assert_eq!(NetfilterChain::family_name(10), "ip6");
    assert_eq!(NetfilterChain::family_name(7), "bridge");
    assert_eq!(sample_chain().label(), "inet filter input");
}

#[test]
fn bpf_map_access_in_text_and_json() {
    let mut e = udp_event();
    e.hook = Hook::Known("htab_map_update_elem");
    let (key, value) = ([0xb0u8, 0x1d], [7u8, 0, 0, 0, 0, 0, 0, 0]);
    e.bpf_map = Some(crate::events::BpfMapAccess {
        op: "update",
        id: 42,
        name: b"PORT_HITS",
        key_size: 2,
        value_size: 8,
        key: &key,
        value: Some(&value),
        ret: 0,
    });
    let p = printer(false, TimestampChoice::None);
    let out = text(&p, &e);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with("htab_map_update_elem"), "{out}");
    assert_eq!(
        lines[1],
        "    bpf_map: update id=42 name=PORT_HITS key[2]=b01d value[8]=0700000000000000"
    );
    let j = json(&e).bpf_map.expect("bpf_map");
    assert_eq!(
        (j.op.as_str(), j.id, j.name.as_str(), j.key.as_str()),
        ("update", 42, "PORT_HITS", "b01d")
    );
    assert_eq!(j.value.as_deref(), Some("0700000000000000"));
    // A lookup that found nothing, a failed delete.
    e.bpf_map = Some(crate::events::BpfMapAccess {
        op: "delete",
        value: None,
        ret: -2,
        ..e.bpf_map.unwrap()
    });
    assert!(
        text(&p, &e).contains("bpf_map: delete id=42 name=PORT_HITS key[2]=b01d value=none ret=-2")
    );
    assert_eq!(json(&e).bpf_map.unwrap().value, None);
    e.bpf_map = None;
    assert_eq!(json(&e).bpf_map, None);
    assert_eq!(text(&p, &e).lines().count(), 1);
}
