//! `--output-json`: one object per line. pwru's keys keep pwru's names and meanings; every key is
//! always present (zeros kept, `null` where a value does not exist), so scripts never guess.
//! [`JsonEvent`] is the schema as a type: the writer's output must deserialize into it exactly
//! (tests check this with `deny_unknown_fields`).

use serde::{Deserialize, Serialize};

use super::{
    write_cut_marker, write_func, write_hex, write_i64, write_iface, write_ip, write_meta_number,
    write_process, write_reason, write_tcp_flags_names, write_u64, WallClock, HEX_DIGITS,
};
use crate::events::{Event, MetaValue, Stack, Stamp};

/// One line of `--output-json`. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    /// Address of the `struct sk_buff`, `0x`-prefixed hex.
    pub skb: String,
    pub cpu: u32,
    /// `comm:pid` of the task on the CPU.
    pub process: String,
    /// Function, tracepoint or traced BPF program, with `(SKB_DROP_REASON_...)` for drops and
    /// `(TC_ACT_...)`/`(XDP_...)` at a BPF program's exit.
    pub func: String,
    /// `--timestamp`: `null` for none, ns for current/relative, RFC 3339 string for absolute.
    pub time: Option<JsonTime>,
    pub netns: u32,
    /// The netns's name; `null` without `--output-netns-names` or when none is known.
    pub netns_name: Option<String>,
    pub mark: u32,
    /// `ifname:ifindex`, or the ifindex alone when the skb has no device.
    pub iface: String,
    /// `skb->protocol` as a number (2048 = IPv4, 34525 = IPv6).
    pub proto: u16,
    pub mtu: u32,
    pub len: u32,
    /// `skb->cb` as five u32 words; `null` without `--output-skb-cb`.
    pub cb: Option<[u32; 5]>,
    /// `null` when the packet has no parsable IPv4/IPv6 header at this point.
    pub tuple: Option<JsonTuple>,
    pub pid: u32,
    pub comm: String,
    pub ifindex: u32,
    pub ifname: String,
    /// Drop reason name; `null` unless the hook reports one (or the kernel's BTF has no name).
    pub reason: Option<String>,
    /// Drop reason number; `null` unless the hook reports one.
    pub reason_code: Option<u32>,
    /// `struct sk_buff` as the kernel printed it; `null` without `--output-skb`.
    pub skb_dump: Option<String>,
    /// `struct skb_shared_info`; `null` without `--output-skb-shared-info`.
    pub skb_shared_info: Option<String>,
    /// `"filter"`, `"skb"` or `"stackid"` with `--filter-track-skb(-by-stackid)`, else `null`.
    pub tracked_by: Option<String>,
    /// With tracking, the skb this one was cloned or copied from, `0x` hex; else `null`.
    pub parent_skb: Option<String>,
    /// `--output-stack`: the kernel stack, `func+0xoff` innermost first; `null` when not asked
    /// for or not captured.
    pub stack: Option<Vec<String>>,
    /// `--output-stack`: why the stack was not captured; else `null`.
    pub stack_error: Option<String>,
    /// `--output-caller`: the calling function; `null` when not asked for or unknown.
    pub caller_func: Option<String>,
    /// At a traced BPF program's exit (`--filter-trace-tc`/`-xdp`) its return value's name
    /// (`TC_ACT_SHOT`, `XDP_PASS`, …; `null` for a value without one); else `null`.
    pub verdict: Option<String>,
    /// That return value as a number; else `null`.
    pub verdict_code: Option<i32>,
    /// `--filter-trace-xdp`: the packet is an XDP program's (`skb` is its `xdp_buff`); else
    /// `null`.
    pub xdp: Option<JsonXdp>,
    /// `--output-skb-metadata`: each expression and its value, in the order given (numbers as
    /// numbers, `char` arrays as strings, pointers and other bytes as `0x` hex strings); else
    /// `null`.
    pub skb_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `--output-tunnel`: a tunnel packet's inner tuple (as `tuple`); `null` for other packets
    /// or without the option.
    pub tunnel_tuple: Option<JsonTuple>,
    /// `--output-packet-bytes`: the packet's first bytes as the kernel held them at the hook;
    /// else `null`.
    pub packet_bytes: Option<JsonPacket>,
    /// `--output-netfilter`: at an `nft_do_chain` exit (`func` `nft_do_chain(NF_DROP)`, the
    /// verdict in `verdict`/`verdict_code`), the base chain it ran; else `null`. Absent in
    /// traces of older versions.
    #[serde(default)]
    pub netfilter: Option<JsonNetfilter>,
    /// `--output-bpfmap`: at a map operation a traced BPF program made (`func` the operation's
    /// kernel function, `htab_map_update_elem`), the map, key and value; else `null`. Absent in
    /// traces of older versions.
    #[serde(default)]
    pub bpf_map: Option<JsonBpfMap>,
    /// On a Kubernetes node: the pod whose network namespace `netns` is; else `null`. Absent in
    /// traces of older versions.
    #[serde(default)]
    pub pod: Option<String>,
    /// That pod's namespace; else `null`.
    #[serde(default)]
    pub k8s_namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBpfMap {
    /// `lookup`, `update` or `delete`.
    pub op: String,
    pub id: u32,
    pub name: String,
    pub key_size: u32,
    pub value_size: u32,
    /// Lowercase hex, at most 64 bytes of it.
    pub key: String,
    /// The value given (update) or found (lookup), lowercase hex, at most 64 bytes; `null` for
    /// a delete or a lookup that found nothing.
    pub value: Option<String>,
    /// The operation's return value (0 or `-errno`; a lookup's is 0).
    pub ret: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonNetfilter {
    /// The table's family as nft names it (`ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`).
    pub family: String,
    pub table: String,
    pub chain: String,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`, `ingress`, `egress`.
    pub hook: String,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPacket {
    /// pcap link type: 1 Ethernet (from the MAC header), 101 raw IP (from the network header).
    pub link: u32,
    /// Bytes the packet has from there (more than `data` holds when cut at the snap length).
    pub orig_len: u32,
    /// The bytes, lowercase hex.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonXdp {
    /// The receive queue.
    pub rx_queue: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonTime {
    Nanos(u64),
    Wall(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonTuple {
    pub saddr: String,
    pub daddr: String,
    pub sport: u16,
    pub dport: u16,
    /// IP protocol number (1 icmp, 6 tcp, 17 udp, 58 icmpv6).
    pub proto: u8,
    /// TCP flags as pwru writes them (`SYN|ACK`); `null` without `--output-tcp-flags` or
    /// for other protocols.
    pub flags: Option<String>,
}

pub(super) fn write_event(e: &Event<'_>, clock: &WallClock, packet_bytes: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"skb\":\"");
    write_hex(out, e.skb);
    out.extend_from_slice(b"\",\"cpu\":");
    write_u64(out, e.cpu as u64);
    out.extend_from_slice(b",\"process\":");
    quoted(out, |o| write_process(e, o));
    out.extend_from_slice(b",\"func\":");
    quoted(out, |o| write_func(e, o));
    out.extend_from_slice(b",\"time\":");
    match e.time {
        Stamp::None => out.extend_from_slice(b"null"),
        Stamp::Nanos(ns) => write_u64(out, ns),
        Stamp::Wall(ns) => {
            out.push(b'"');
            clock.write_rfc3339(out, ns);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b",\"netns\":");
    write_u64(out, e.netns as u64);
    out.extend_from_slice(b",\"netns_name\":");
    match e.netns_name {
        Some(name) => quoted_bytes(out, name.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"mark\":");
    write_u64(out, e.mark as u64);
    out.extend_from_slice(b",\"iface\":");
    quoted(out, |o| write_iface(e, o));
    out.extend_from_slice(b",\"proto\":");
    write_u64(out, e.protocol as u64);
    for (key, value) in [(&b",\"mtu\":"[..], e.mtu), (b",\"len\":", e.len)] {
        out.extend_from_slice(key);
        write_u64(out, value as u64);
    }
    out.extend_from_slice(b",\"cb\":");
    match &e.cb {
        Some(cb) => {
            out.push(b'[');
            for (i, word) in cb.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_u64(out, *word as u64);
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"tuple\":");
    write_tuple(out, e.tuple.as_ref());
    out.extend_from_slice(b",\"pid\":");
    write_u64(out, e.pid as u64);
    out.extend_from_slice(b",\"comm\":");
    quoted_bytes(out, e.comm);
    out.extend_from_slice(b",\"ifindex\":");
    write_u64(out, e.ifindex as u64);
    out.extend_from_slice(b",\"ifname\":");
    quoted_bytes(out, e.ifname);
    match &e.reason {
        Some(reason) => {
            out.extend_from_slice(b",\"reason\":");
            match reason.name {
                Some(_) => quoted(out, |o| write_reason(reason, o)),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"reason_code\":");
            write_u64(out, reason.code as u64);
        }
        None => out.extend_from_slice(b",\"reason\":null,\"reason_code\":null"),
    }
    for (key, dump) in [
        (&b",\"skb_dump\":"[..], &e.skb_dump),
        (b",\"skb_shared_info\":", &e.shinfo_dump),
    ] {
        out.extend_from_slice(key);
        match dump {
            Some(dump) => {
                out.push(b'"');
                escape_into(out, dump.text);
                if dump.is_cut() {
                    write_cut_marker(out, dump, b"\\n");
                }
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"tracked_by\":");
    match e.tracked_by {
        Some(by) => quoted(out, |o| o.extend_from_slice(by.name().as_bytes())),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"parent_skb\":");
    match e.parent_skb {
        Some(parent) => {
            out.extend_from_slice(b"\"");
            write_hex(out, parent);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"stack\":");
    match e.stack {
        Some(Stack::Frames(frames)) => {
            out.push(b'[');
            for (i, frame) in frames.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                quoted_bytes(out, frame.text.as_bytes());
            }
            out.extend_from_slice(b"],\"stack_error\":null");
        }
        Some(Stack::Failed(why)) => {
            out.extend_from_slice(b"null,\"stack_error\":");
            quoted_bytes(out, why.as_bytes());
        }
        None => out.extend_from_slice(b"null,\"stack_error\":null"),
    }
    out.extend_from_slice(b",\"caller_func\":");
    match e.caller {
        Some(caller) => quoted_bytes(out, caller.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    match e.verdict {
        Some(verdict) => {
            out.extend_from_slice(b",\"verdict\":");
            match verdict.name {
                Some(name) => quoted_bytes(out, name.as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"verdict_code\":");
            write_i64(out, i64::from(verdict.code));
        }
        None => out.extend_from_slice(b",\"verdict\":null,\"verdict_code\":null"),
    }
    out.extend_from_slice(b",\"xdp\":");
    match e.xdp {
        Some(xdp) => {
            out.extend_from_slice(b"{\"rx_queue\":");
            write_u64(out, xdp.rx_queue as u64);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"skb_metadata\":");
    match &e.skb_metadata {
        Some(metadata) => {
            out.push(b'{');
            let mut first = true;
            metadata.for_each(|key, _, value| {
                if !first {
                    out.push(b',');
                }
                first = false;
                quoted_bytes(out, key.as_bytes());
                out.push(b':');
                match value {
                    MetaValue::Str(s) => quoted_bytes(out, s),
                    MetaValue::Json(v) => {
                        out.extend_from_slice(v.to_string().as_bytes());
                    }
                    MetaValue::Pointer(_) | MetaValue::Bytes(_) => {
                        out.push(b'"');
                        write_meta_number(out, &value);
                        out.push(b'"');
                    }
                    _ => {
                        write_meta_number(out, &value);
                    }
                }
            });
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"tunnel_tuple\":");
    write_tuple(out, e.tunnel_tuple.as_ref());
    out.extend_from_slice(b",\"packet_bytes\":");
    match &e.packet {
        Some(p) if packet_bytes => {
            out.extend_from_slice(b"{\"link\":");
            write_u64(out, u64::from(p.link));
            out.extend_from_slice(b",\"orig_len\":");
            write_u64(out, u64::from(p.orig_len));
            out.extend_from_slice(b",\"data\":");
            hex_string(out, p.bytes);
            out.push(b'}');
        }
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"netfilter\":");
    match &e.netfilter {
        Some(nf) => {
            out.extend_from_slice(b"{\"family\":");
            quoted_bytes(out, nf.family.as_bytes());
            out.extend_from_slice(b",\"table\":");
            quoted_bytes(out, nf.table);
            out.extend_from_slice(b",\"chain\":");
            quoted_bytes(out, nf.chain);
            out.extend_from_slice(b",\"hook\":");
            quoted_bytes(out, nf.hook.as_bytes());
            out.extend_from_slice(b",\"priority\":");
            write_i64(out, i64::from(nf.priority));
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"bpf_map\":");
    match &e.bpf_map {
        Some(m) => {
            out.extend_from_slice(b"{\"op\":");
            quoted_bytes(out, m.op.as_bytes());
            out.extend_from_slice(b",\"id\":");
            write_u64(out, u64::from(m.id));
            out.extend_from_slice(b",\"name\":");
            quoted_bytes(out, m.name);
            out.extend_from_slice(b",\"key_size\":");
            write_u64(out, u64::from(m.key_size));
            out.extend_from_slice(b",\"value_size\":");
            write_u64(out, u64::from(m.value_size));
            out.extend_from_slice(b",\"key\":");
            hex_string(out, m.key);
            out.extend_from_slice(b",\"value\":");
            match m.value {
                Some(v) => hex_string(out, v),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"ret\":");
            write_i64(out, i64::from(m.ret));
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    match e.pod {
        Some((namespace, name)) => {
            out.extend_from_slice(b",\"pod\":");
            quoted_bytes(out, name.as_bytes());
            out.extend_from_slice(b",\"k8s_namespace\":");
            quoted_bytes(out, namespace.as_bytes());
        }
        None => out.extend_from_slice(b",\"pod\":null,\"k8s_namespace\":null"),
    }
    out.extend_from_slice(b"}\n");
}

/// `bytes` as a quoted lowercase hex string.
fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for b in bytes {
        out.push(HEX_DIGITS[usize::from(b >> 4)]);
        out.push(HEX_DIGITS[usize::from(b & 0xf)]);
    }
    out.push(b'"');
}

/// A tuple object, or `null`.
fn write_tuple(out: &mut Vec<u8>, t: Option<&crate::events::Tuple>) {
    if let Some(t) = t {
        out.extend_from_slice(b"{\"saddr\":\"");
        write_ip(out, &t.saddr);
        out.extend_from_slice(b"\",\"daddr\":\"");
        write_ip(out, &t.daddr);
        out.extend_from_slice(b"\",\"sport\":");
        write_u64(out, t.sport as u64);
        out.extend_from_slice(b",\"dport\":");
        write_u64(out, t.dport as u64);
        out.extend_from_slice(b",\"proto\":");
        write_u64(out, t.proto as u64);
        out.extend_from_slice(b",\"flags\":");
        match t.tcp_flags {
            Some(flags) => quoted(out, |o| write_tcp_flags_names(o, flags)),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Writes a JSON string whose raw bytes `write` produces (short composite values: process,
/// func, iface). Plain values, the common case, are written once; others are escaped through a
/// per-thread buffer, which allocates nothing once warm.
fn quoted(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    thread_local! {
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    out.push(b'"');
    let start = out.len();
    write(out);
    if out[start..].iter().any(|&b| needs_escape(b) || b >= 0x80) {
        RAW.with_borrow_mut(|raw| {
            raw.clear();
            raw.extend_from_slice(&out[start..]);
            out.truncate(start);
            escape_into(out, raw);
        });
    }
    out.push(b'"');
}

/// Writes `raw` as a JSON string, escaped straight from the source: kernel-supplied names
/// (comm, ifname) and dumps may hold any byte.
fn quoted_bytes(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    escape_into(out, raw);
    out.push(b'"');
}

/// A byte JSON does not take as is inside a string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Invalid UTF-8 becomes U+FFFD; quotes, backslashes and control bytes are escaped.
fn escape_into(out: &mut Vec<u8>, raw: &[u8]) {
    out.reserve(raw.len() + 2);
    // Nearly always valid (and ASCII): the standard library checks that a word at a time.
    if std::str::from_utf8(raw).is_ok() {
        return escape_valid(out, raw);
    }
    for chunk in raw.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// Escapes valid UTF-8, skipping eight bytes at a time where none needs escaping (a 4 KiB skb
/// dump is runs of ~30 plain bytes between newlines) and copying plain runs whole.
fn escape_valid(out: &mut Vec<u8>, valid: &[u8]) {
    let mut run = 0;
    let mut i = 0;
    while i < valid.len() {
        if let Some(word) = valid.get(i..i + 8) {
            if !word_needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let b = valid[i];
        if needs_escape(b) {
            out.extend_from_slice(&valid[run..i]);
            run = i + 1;
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX_DIGITS[(b as usize) >> 4]);
                    out.push(HEX_DIGITS[(b as usize) & 0xf]);
                }
            }
        }
        i += 1;
    }
    out.extend_from_slice(&valid[run..]);
}

/// Whether any of eight bytes is below 0x20, a quote or a backslash (bytes of 0x80 and over,
/// parts of multi-byte UTF-8, never match). Exact as to "any", which is all it is asked.
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    (below_space | zero_byte(w ^ (ONES * b'"' as u64)) | zero_byte(w ^ (ONES * b'\\' as u64))) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(raw: &[u8]) -> String {
        let mut out = Vec::new();
        quoted_bytes(&mut out, raw);
        String::from_utf8(out).expect("escaped JSON is UTF-8")
    }

    #[test]
    fn every_byte_at_every_word_position_round_trips() {
        // Each byte value at each offset of a 24-byte plain run: the word-at-a-time skip must
        // stop for it wherever it falls.
        for b in 0..=255u8 {
            for at in 0..24 {
                let mut raw = b"0123456789abcdefghijklmn".to_vec();
                raw[at] = b;
                let json = escaped(&raw);
                let back: String = serde_json::from_str(&json)
                    .unwrap_or_else(|e| panic!("byte {b:#x} at {at}: {json}: {e}"));
                assert_eq!(back, String::from_utf8_lossy(&raw), "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn multibyte_utf8_is_kept_and_invalid_bytes_replaced() {
        let raw = "ÿ-κόσμε-😀-\"\\\n".as_bytes();
        assert_eq!(
            serde_json::from_str::<String>(&escaped(raw)).unwrap(),
            std::str::from_utf8(raw).unwrap()
        );
        let bad = b"eth\xff0\xc3(\xe2\x82";
        assert_eq!(
            serde_json::from_str::<String>(&escaped(bad)).unwrap(),
            String::from_utf8_lossy(bad)
        );
    }

    #[test]
    fn word_check_agrees_with_the_byte_check() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            // xorshift: words of every byte mix, plus a bias to near-miss values.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut w = x;
            if x & 1 == 0 {
                w = (x & 0x0f0f_0f0f_0f0f_0f0f) | 0x2020_2020_2020_2020;
            }
            let bytewise = w.to_le_bytes().iter().any(|&b| needs_escape(b));
            assert_eq!(word_needs_escape(w), bytewise, "{w:#018x}");
        }
    }
}
