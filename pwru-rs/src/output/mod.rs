//! Turning ring-buffer events into pwru-style text columns or JSON lines.
//!
//! Formatting writes straight into the caller's byte buffer: no allocation and no `fmt`
//! machinery per event, so one core keeps up with millions of events per second.

mod clock;
mod json;
mod text;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use pwru_rs_common::{Event, EVENT_HAS_DEV, EVENT_HAS_REASON, IP_V4, IP_V6};

pub use clock::WallClock;
pub use json::{JsonEvent, JsonTime, JsonTuple};

use crate::{backend::HookNames, btf::DropReasons, cli::TimestampChoice};

/// What the printer needs to know besides the events themselves.
pub struct PrinterConfig {
    pub json: bool,
    pub timestamp: TimestampChoice,
    /// Text only: the NETNS MARK/x IFACE PROTO MTU LEN columns. JSON always carries every field.
    pub output_meta: bool,
    /// Text only: the TUPLE column.
    pub output_tuple: bool,
    /// How `Event::hook` names the function or tracepoint.
    pub hooks: HookNames,
    pub drop_reasons: DropReasons,
}

pub struct Printer {
    config: PrinterConfig,
    clock: WallClock,
    /// `--timestamp relative`: the previous event's time per skb address.
    last_seen: HashMap<u64, u64>,
}

/// Resolved timestamp of one event, per `--timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamp {
    None,
    Nanos(u64),
    /// Wall-clock nanoseconds since the Unix epoch.
    Wall(u64),
}

/// Bounds the relative-timestamp table: skb addresses are recycled, so old entries only cost memory.
const LAST_SEEN_MAX: usize = 1 << 20;

impl Printer {
    pub fn new(config: PrinterConfig) -> Self {
        Self {
            config,
            clock: WallClock::now(),
            last_seen: HashMap::new(),
        }
    }

    /// For tests and benchmarks that need reproducible absolute times.
    pub fn with_clock(config: PrinterConfig, clock: WallClock) -> Self {
        Self {
            config,
            clock,
            last_seen: HashMap::new(),
        }
    }

    /// The column header (text mode); nothing for JSON lines.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        if !self.config.json {
            text::write_header(&self.config, out);
        }
    }

    /// Appends one line (with its newline) describing `event`.
    pub fn write_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        // One growth check for the whole line instead of one per piece.
        out.reserve(512);
        let stamp = self.stamp(event);
        let view = EventView {
            event,
            config: &self.config,
            stamp,
        };
        if self.config.json {
            json::write_event(&view, &self.clock, out);
        } else {
            text::write_event(&view, &self.clock, out);
        }
    }

    fn stamp(&mut self, event: &Event) -> Stamp {
        match self.config.timestamp {
            TimestampChoice::None => Stamp::None,
            TimestampChoice::Current => Stamp::Nanos(event.ts_ns),
            TimestampChoice::Absolute => Stamp::Wall(self.clock.wall_ns(event.ts_ns)),
            TimestampChoice::Relative => {
                if self.last_seen.len() >= LAST_SEEN_MAX {
                    self.last_seen.clear();
                }
                let previous = self.last_seen.insert(event.skb, event.ts_ns);
                Stamp::Nanos(previous.map_or(0, |p| event.ts_ns.saturating_sub(p)))
            }
        }
    }
}

/// An event plus what is needed to name its parts.
struct EventView<'a> {
    event: &'a Event,
    config: &'a PrinterConfig,
    stamp: Stamp,
}

impl EventView<'_> {
    fn hook(&self) -> HookName<'_> {
        match self.config.hooks.name(self.event.hook) {
            Some(name) => HookName::Known(name),
            None => HookName::Unknown(self.event.hook),
        }
    }

    /// The drop reason's enumerator name, or its number if this kernel's BTF has no name for it.
    fn reason(&self) -> Option<Reason<'_>> {
        if self.event.flags & EVENT_HAS_REASON == 0 {
            return None;
        }
        let code = self.event.reason;
        Some(Reason {
            code,
            name: self.config.drop_reasons.name(code),
        })
    }

    fn comm(&self) -> &[u8] {
        until_nul(&self.event.comm)
    }

    fn ifname(&self) -> &[u8] {
        if self.event.flags & EVENT_HAS_DEV == 0 {
            return b"";
        }
        until_nul(&self.event.ifname)
    }

    fn has_tuple(&self) -> bool {
        matches!(self.event.ip_version, IP_V4 | IP_V6)
    }

    /// `pid`/`comm` tell who was on the CPU, as in pwru: in softirq that is often not the sender.
    fn write_process(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.comm());
        out.push(b':');
        write_u64(out, self.event.pid as u64);
    }

    /// `name:ifindex`, or the bare ifindex when the skb has no device (pwru's IFACE).
    fn write_iface(&self, out: &mut Vec<u8>) {
        let name = self.ifname();
        if !name.is_empty() {
            out.extend_from_slice(name);
            out.push(b':');
        }
        write_u64(out, self.event.ifindex as u64);
    }

    /// `func` as pwru prints it: the hook, and for drops `(SKB_DROP_REASON_...)`.
    fn write_func(&self, out: &mut Vec<u8>) {
        self.hook().write(out);
        if let Some(reason) = self.reason() {
            out.push(b'(');
            reason.write(out);
            out.push(b')');
        }
    }

    /// `saddr:sport->daddr:dport(proto)`, IPv6 addresses in brackets.
    fn write_tuple(&self, out: &mut Vec<u8>) {
        if !self.has_tuple() {
            // pwru prints an all-zero tuple; keeping it keeps the column count fixed for awk.
            out.extend_from_slice(b"0.0.0.0:0->0.0.0.0:0()");
            return;
        }
        let e = self.event;
        let v6 = e.ip_version == IP_V6;
        for (addr, port, arrow) in [(&e.saddr, e.sport, true), (&e.daddr, e.dport, false)] {
            if v6 {
                out.push(b'[');
            }
            write_ip(out, e.ip_version, addr);
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
        match l4_name(e.l4_proto) {
            Some(name) => out.extend_from_slice(name.as_bytes()),
            None => write_u64(out, e.l4_proto as u64),
        }
        out.push(b')');
    }
}

enum HookName<'a> {
    Known(&'a str),
    Unknown(u64),
}

impl HookName<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            HookName::Known(name) => out.extend_from_slice(name.as_bytes()),
            HookName::Unknown(id) => {
                out.extend_from_slice(b"unknown_hook_");
                write_hex(out, *id);
            }
        }
    }
}

struct Reason<'a> {
    code: u32,
    name: Option<&'a str>,
}

impl Reason<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self.name {
            Some(name) => out.extend_from_slice(name.as_bytes()),
            None => write_u64(out, self.code as u64),
        }
    }
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

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `0x`-prefixed lower-case hex, no leading zeros (Go's `%#x`).
fn write_hex(out: &mut Vec<u8>, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"0x");
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(DIGITS[((value >> (i * 4)) & 0xf) as usize]);
    }
}

/// Dotted quad for IPv4, RFC 5952 text for IPv6 (no brackets).
fn write_ip(out: &mut Vec<u8>, version: u8, addr: &[u8; 16]) {
    if version == IP_V6 {
        use std::io::Write;
        let _ = write!(out, "{}", std::net::Ipv6Addr::from(*addr));
        return;
    }
    // Four table lookups instead of four integer formattings: the hottest part of a line.
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, &octet) in addr[..4].iter().enumerate() {
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
