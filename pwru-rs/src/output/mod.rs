//! Turning ring-buffer events into pwru-style text columns or JSON lines.
//!
//! Formatting writes straight into the caller's byte buffer: no allocation and no `fmt`
//! machinery per event, so one core keeps up with millions of events per second.

mod clock;
pub mod group;
mod json;
pub mod pcap;
pub mod rotate;
pub mod schema;
mod sink;
pub mod summary;
mod text;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use clock::WallClock;
pub use json::{JsonEvent, JsonPacket, JsonTime, JsonTuple};
pub use sink::OutputSink;

use crate::{
    cli::TimestampChoice,
    events::{Event, Hook, Reason},
};

/// What the printer needs to know besides the events themselves.
pub struct PrinterConfig {
    pub json: bool,
    pub timestamp: TimestampChoice,
    /// Text only: the NETNS MARK/x IFACE PROTO MTU LEN columns. JSON always carries every field.
    pub output_meta: bool,
    /// Text only: the TUPLE column.
    pub output_tuple: bool,
    /// Text only: the `__sk_buff->cb[]` column after the metadata (`--output-skb-cb`).
    pub output_skb_cb: bool,
    /// Text only: the NETNS NAME column and its width (`--output-netns-names`).
    pub netns_names_width: Option<usize>,
    /// Text only: the CALLER column after FUNC (`--output-caller`).
    pub output_caller: bool,
    /// Text only: the TUNNEL column after FUNC and CALLER (`--output-tunnel`).
    pub output_tunnel: bool,
    /// JSON only: the packet's bytes (`--output-packet-bytes`).
    pub packet_bytes: bool,
}

pub struct Printer {
    config: PrinterConfig,
    /// Formats wall-clock times in the local time zone.
    clock: WallClock,
}

impl Printer {
    pub fn new(config: PrinterConfig, clock: WallClock) -> Self {
        Self { config, clock }
    }

    /// The column header (text mode); nothing for JSON lines.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        if !self.config.json {
            text::write_header(&self.config, out);
        }
    }

    /// Appends one line (with its newline) describing `event`.
    pub fn write_event(&self, event: &Event<'_>, out: &mut Vec<u8>) {
        // One growth check for the whole line instead of one per piece.
        out.reserve(512);
        if self.config.json {
            json::write_event(event, &self.clock, self.config.packet_bytes, out);
        } else {
            text::write_event(event, &self.config, &self.clock, out);
        }
    }
}

/// `pid`/`comm` tell who was on the CPU, as in pwru: in softirq that is often not the sender.
fn write_process(e: &Event<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(e.comm);
    out.push(b':');
    write_u64(out, e.pid as u64);
}

/// `name:ifindex`, or the bare ifindex when the skb has no device (pwru's IFACE).
fn write_iface(e: &Event<'_>, out: &mut Vec<u8>) {
    if !e.ifname.is_empty() {
        out.extend_from_slice(e.ifname);
        out.push(b':');
    }
    write_u64(out, e.ifindex as u64);
}

/// `func` as pwru prints it: the hook, and for drops `(SKB_DROP_REASON_...)`.
fn write_func(e: &Event<'_>, out: &mut Vec<u8>) {
    match e.hook {
        Hook::Known(name) => out.extend_from_slice(name.as_bytes()),
        Hook::Unknown(id) => {
            out.extend_from_slice(b"unknown_hook_");
            write_hex(out, id);
        }
    }
    if let Some(reason) = &e.reason {
        out.push(b'(');
        write_reason(reason, out);
        out.push(b')');
    }
    // A BPF program's exit: `cil_from_container(TC_ACT_SHOT)`, as a drop shows its reason.
    if let Some(verdict) = &e.verdict {
        out.push(b'(');
        match verdict.name {
            Some(name) => out.extend_from_slice(name.as_bytes()),
            None => out.extend_from_slice(verdict.code.to_string().as_bytes()),
        }
        out.push(b')');
    }
}

/// A duration for people: `850ns`, `1.2µs`, `3.4ms`, `2.0s`.
pub(crate) fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// Where an skb's life ends (a tracepoint's or a function's name): its path is complete there.
pub(crate) fn is_life_end(hook: &str) -> bool {
    matches!(
        hook,
        "kfree_skbmem"
            | "kfree_skb"
            | "consume_skb"
            | "kfree_skb_reason"
            | "sk_skb_reason_drop"
            | "__kfree_skb"
    )
}

/// The drop reason's enumerator name, or its number if this kernel's BTF has no name for it.
fn write_reason(reason: &Reason<'_>, out: &mut Vec<u8>) {
    match reason.name {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => write_u64(out, reason.code as u64),
    }
}

/// `saddr:sport->daddr:dport(proto)`, IPv6 addresses in brackets.
fn write_tuple(e: &Event<'_>, out: &mut Vec<u8>) {
    write_tuple_of(e.tuple.as_ref(), out)
}

/// A tuple as the TUPLE column shows it (the TUNNEL column too).
fn write_tuple_of(t: Option<&crate::events::Tuple>, out: &mut Vec<u8>) {
    let Some(t) = t else {
        // pwru prints an all-zero tuple; keeping it keeps the column count fixed for awk.
        out.extend_from_slice(b"0.0.0.0:0->0.0.0.0:0()");
        return;
    };
    for (addr, port, arrow) in [(&t.saddr, t.sport, true), (&t.daddr, t.dport, false)] {
        let v6 = addr.is_ipv6();
        if v6 {
            out.push(b'[');
        }
        write_ip(out, addr);
        if v6 {
            out.push(b']');
        }
        out.push(b':');
        write_u64(out, port as u64);
        if arrow {
            out.extend_from_slice(b"->");
        }
    }
    out.push(b'(');
    match l4_name(t.proto) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => write_u64(out, t.proto as u64),
    }
    if let Some(flags) = t.tcp_flags {
        out.push(b':');
        write_tcp_flags_short(out, flags);
    }
    out.push(b')');
}

/// tcpdump's notation: `[S]`, `[S.]`, `[F.]`, `[R.]`, `[P.]`, `[none]`.
fn write_tcp_flags_short(out: &mut Vec<u8>, flags: u8) {
    out.push(b'[');
    if flags == 0 {
        out.extend_from_slice(b"none");
    }
    // tcpdump's order: FIN SYN RST PSH ACK URG ECE CWR.
    for (bit, c) in [
        (0x01, b'F'),
        (0x02, b'S'),
        (0x04, b'R'),
        (0x08, b'P'),
        (0x10, b'.'),
        (0x20, b'U'),
        (0x40, b'E'),
        (0x80, b'W'),
    ] {
        if flags & bit != 0 {
            out.push(c);
        }
    }
    out.push(b']');
}

/// pwru's JSON notation: `SYN|ACK`, bits from FIN up; "" for none.
fn write_tcp_flags_names(out: &mut Vec<u8>, flags: u8) {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let mut first = true;
    for (i, name) in NAMES.iter().enumerate() {
        if flags & (1 << i) != 0 {
            if !first {
                out.push(b'|');
            }
            out.extend_from_slice(name.as_bytes());
            first = false;
        }
    }
}

/// `[0x00000000,…]`, five words as pwru prints `__sk_buff->cb`.
fn write_cb(out: &mut Vec<u8>, cb: &[u32; 5]) {
    out.push(b'[');
    for (i, word) in cb.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"0x");
        for shift in (0..8).rev() {
            out.push(HEX_UPPER[((word >> (shift * 4)) & 0xf) as usize]);
        }
    }
    out.push(b']');
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// A dump's text, and a line saying so when the buffer cut it.
fn write_dump_text(out: &mut Vec<u8>, dump: &crate::events::Dump<'_>) {
    out.extend_from_slice(dump.text);
    if dump.is_cut() {
        write_cut_marker(out, dump, b"\n");
    }
}

/// "... cut at N of M bytes" on a line of its own (after `newline`, as the output writes one):
/// what a dump longer than the buffer ends with.
fn write_cut_marker(out: &mut Vec<u8>, dump: &crate::events::Dump<'_>, newline: &[u8]) {
    out.extend_from_slice(newline);
    out.extend_from_slice(b"... cut at ");
    write_u64(out, dump.text.len() as u64);
    out.extend_from_slice(b" of ");
    write_u64(out, dump.full_len as u64);
    out.extend_from_slice(b" bytes (--set-percpu-buf)");
}

/// Short names pwru uses in its TUPLE column (plus SCTP); other protocols print as numbers.
fn l4_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "icmp6",
        132 => "sctp",
        _ => return None,
    })
}

#[inline]
fn write_u64(out: &mut Vec<u8>, value: u64) {
    // CPU numbers, ifindexes, zeros: most numbers of a line are one digit.
    if value < 10 {
        out.push(b'0' + value as u8);
        return;
    }
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A signed number in decimal.
fn write_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    write_u64(out, value.unsigned_abs());
}

/// Lower-case hex digits, shared by every hex writer.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `0x`-prefixed lower-case hex, no leading zeros (Go's `%#x`).
fn write_hex(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(b"0x");
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    write_hex_digits(out, value, digits);
}

/// The low `digits` hex digits of `value`, leading zeros kept.
/// A metadata value as the text line and JSON share it where they can: numbers in decimal,
/// addresses and raw bytes in `0x` hex; `None` for the kinds each format writes its own way
/// (strings, JSON values).
fn write_meta_number(out: &mut Vec<u8>, value: &crate::events::MetaValue<'_>) -> bool {
    use crate::events::MetaValue;
    match *value {
        MetaValue::Unsigned(v) => write_u64(out, v),
        MetaValue::Signed(v) => write_i64(out, v),
        MetaValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        MetaValue::Pointer(p) => write_hex(out, p),
        MetaValue::Bytes(bytes) => {
            out.extend_from_slice(b"0x");
            for b in bytes {
                write_hex_digits(out, u64::from(*b), 2);
            }
        }
        MetaValue::Str(_) | MetaValue::Json(_) => return false,
    }
    true
}

fn write_hex_digits(out: &mut Vec<u8>, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        out.push(HEX_DIGITS[((value >> (i * 4)) & 0xf) as usize]);
    }
}

/// Dotted quad for IPv4, RFC 5952 text for IPv6 (no brackets).
fn write_ip(out: &mut Vec<u8>, addr: &IpAddr) {
    let v4 = match addr {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
            return;
        }
    };
    // Four table lookups instead of four integer formattings: the hottest part of a line.
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, &octet) in v4.iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let (digits, n) = OCTETS[octet as usize];
        text[len..len + 3].copy_from_slice(&digits);
        len += n as usize;
    }
    out.extend_from_slice(&text[..len]);
}

/// Decimal text of 0..=255: digits (left-aligned) and how many.
static OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        table[i] = if i >= 100 {
            ([b'0' + h, b'0' + t, b'0' + o], 3)
        } else if i >= 10 {
            ([b'0' + t, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        i += 1;
    }
    table
};

/// Appends what `write` produces, aligned in a field of `width` bytes (wider content is kept whole).
fn aligned(out: &mut Vec<u8>, width: usize, align: Align, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    write(out);
    let len = out.len() - start;
    if len >= width {
        return;
    }
    let pad = width - len;
    out.resize(out.len() + pad, b' ');
    if let Align::Center = align {
        // pwru's centerAlignString: the odd space goes to the right.
        out[start..].rotate_right(pad / 2);
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
}
