//! `--input-file TRACE.jsonl`: a saved `--output-json` trace read back instead of the kernel
//! (no root, no BTF) and written out again through the same output path: text or JSON,
//! `--output-group-by-skb`, `--summary`, `--timestamp`, `--output-limit-lines`. The filters
//! that make sense offline apply: `--filter-func`, `--filter-netns`, `--filter-mark`,
//! `--filter-ifname` (by name). Lines that are not events (a `--summary` line) are skipped; a
//! malformed line is an error with its number, or with `--input-skip-bad` skipped and counted.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::IpAddr,
};

use anyhow::Context;
use regex::Regex;

use crate::{
    cli::{Cli, TimestampChoice},
    config::OutputConfig,
    events::{
        BpfMapAccess, Dump, Event, Frame, Hook, NetfilterChain, PacketBytes, Reason, Sink,
        SkbMetadata, Stack, Stamp, TrackedBy, Tuple, Verdict, XdpPacket,
    },
    netns::Netns,
    output::{pcap::PcapWriter, JsonEvent, JsonTime, WallClock},
    session,
};

/// The offline filters.
struct Filters {
    func: Option<Regex>,
    netns: Option<u32>,
    mark: Option<(u32, u32)>,
    ifname: Option<String>,
}

impl Filters {
    fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        Ok(Self {
            func: cli
                .filter_func
                .as_deref()
                .map(crate::config::func_regex)
                .transpose()?,
            netns: cli
                .filter_netns
                .as_ref()
                .map(|spec| Netns::resolve(spec).map(|ns| ns.inode))
                .transpose()
                .context("--filter-netns")?,
            mark: cli.filter_mark.map(|m| (m.mark, m.mask)),
            ifname: cli.filter_ifname.clone(),
        })
    }

    fn pass(&self, e: &Event<'_>) -> bool {
        let name = match e.hook {
            Hook::Known(name) => name,
            Hook::Unknown(_) => "",
        };
        self.func.as_ref().is_none_or(|re| re.is_match(name))
            && self.netns.is_none_or(|n| n == e.netns)
            && self.mark.is_none_or(|(mark, mask)| e.mark & mask == mark)
            && self
                .ifname
                .as_ref()
                .is_none_or(|n| n.as_bytes() == e.ifname)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--input-file: a pcap expression needs the packets' bytes, which line {0} does not carry: record the trace with --output-packet-bytes, or filter with --filter-func, --filter-netns, --filter-mark or --filter-ifname")]
    NoPacketBytes(usize),
    #[error("--input-file: {0} needs the kernel")]
    NeedsKernel(&'static str),
    #[error("--input-file: --timestamp absolute needs a trace written with --timestamp absolute or current (line {0} has no time)")]
    NoTime(usize),
    #[error("--input-file: --output-pcap needs the packets' bytes, which line {0} does not carry: record the trace with --output-packet-bytes")]
    PcapNoBytes(usize),
    #[error("--input-file: --output-pcap needs wall-clock times, which line {0} does not carry: record the trace with --timestamp absolute")]
    PcapNoTime(usize),
    #[error("{path}:{line}: {why}")]
    BadLine {
        path: String,
        line: usize,
        why: String,
    },
}

/// Reads the trace and writes it out as the flags say. Returns the events written.
pub fn run(cli: &Cli) -> anyhow::Result<u64> {
    let path = cli.input_file.as_ref().expect("--input-file given");
    let pcap = OfflinePcap::compile(&cli.pcap_expression())?;
    for (on, flag) in [
        (cli.filter_trace_tc, "--filter-trace-tc"),
        (cli.filter_trace_xdp, "--filter-trace-xdp"),
        (cli.filter_track_skb, "--filter-track-skb"),
        (cli.output_skb, "--output-skb"),
        (cli.output_stack, "--output-stack"),
        (cli.filter_skb_expr.is_some(), "--filter-skb-expr"),
        (!cli.output_skb_metadata.is_empty(), "--output-skb-metadata"),
        (cli.filter_xdp_expr.is_some(), "--filter-xdp-expr"),
        (!cli.output_xdp_metadata.is_empty(), "--output-xdp-metadata"),
        (
            cli.filter_tunnel_pcap_l2.is_some() || cli.filter_tunnel_pcap_l3.is_some(),
            "--filter-tunnel-pcap-l2/-l3",
        ),
        (
            !cli.kmods.is_empty() || cli.all_kmods,
            "--kmods/--all-kmods",
        ),
    ] {
        if on {
            return Err(ReplayError::NeedsKernel(flag).into());
        }
    }
    let filters = Filters::from_cli(cli)?;
    let input = std::fs::File::open(path)
        .with_context(|| format!("--input-file: cannot open {}", path.display()))?;
    let output = OutputConfig::from_cli(cli);
    let writer = session::open_output(&output)?;
    let clock = WallClock::now();
    let mut sink = session::output_sink(&output, writer, clock);
    let mut pcap_out = match &cli.output_pcap {
        Some(out) => Some(
            PcapWriter::create(out, clock, cli.output_pcap_snaplen)
                .with_context(|| format!("--output-pcap {}", out.display()))?,
        ),
        None => None,
    };
    let mut last_seen: HashMap<u64, u64> = HashMap::new();
    let (mut written, mut skipped) = (0u64, 0u64);
    let shown = path.display().to_string();
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line_no = n + 1;
        let line = line.with_context(|| format!("--input-file: reading {shown}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| ReplayError::BadLine {
            path: shown.clone(),
            line: line_no,
            why,
        };
        let json: JsonEvent = match serde_json::from_str(&line) {
            Ok(j) => j,
            // `--summary`'s last line and `--output-group-by-skb`'s packets are not events.
            Err(_) if is_not_an_event(&line) => continue,
            Err(e) if cli.input_skip_bad => {
                log::debug!("{}", bad(e.to_string()));
                skipped += 1;
                continue;
            }
            Err(e) => return Err(bad(format!("not a pwru-rs JSON event: {e}")).into()),
        };
        let parsed = match Parsed::of(&json) {
            Ok(p) => p,
            Err(why) if cli.input_skip_bad => {
                log::debug!("{}", bad(why));
                skipped += 1;
                continue;
            }
            Err(why) => return Err(bad(why).into()),
        };
        let frames: Vec<Frame> = json
            .stack
            .iter()
            .flatten()
            .map(|f| Frame::new(f.clone(), f.find('+').unwrap_or(f.len())))
            .collect();
        let mut event = parsed.event(&json, &frames);
        if !filters.pass(&event) {
            continue;
        }
        if let Some(pcap) = &pcap {
            match &event.packet {
                Some(p) if pcap.matches(p) => {}
                Some(_) => continue,
                None => return Err(ReplayError::NoPacketBytes(line_no).into()),
            }
        }
        if let Some(out) = &mut pcap_out {
            // As live: an event without a header has no bytes, and no packet.
            if event.packet.is_none() && event.tuple.is_some() {
                return Err(ReplayError::PcapNoBytes(line_no).into());
            }
            let wall = parsed.wall_ns.ok_or(ReplayError::PcapNoTime(line_no))?;
            out.write_at(&event, wall)
                .with_context(|| format!("--output-pcap: writing line {line_no}'s packet"))?;
        }
        event.time = match cli.timestamp {
            TimestampChoice::None => Stamp::None,
            TimestampChoice::Current => Stamp::Nanos(parsed.ts_ns.unwrap_or(0)),
            TimestampChoice::Relative => {
                let ts = parsed.ts_ns.unwrap_or(0);
                let previous = last_seen.insert(event.skb, ts);
                Stamp::Nanos(previous.map_or(0, |p| ts.saturating_sub(p)))
            }
            TimestampChoice::Absolute => match parsed.wall_ns {
                Some(ns) => Stamp::Wall(ns),
                None => return Err(ReplayError::NoTime(line_no).into()),
            },
        };
        written += 1;
        if !sink.consume(&event).context("writing the output")? {
            break;
        }
    }
    sink.finish().context("writing the output")?;
    if let Some(out) = &mut pcap_out {
        out.flush().context("--output-pcap: writing")?;
    }
    if skipped > 0 {
        log::warn!("--input-skip-bad: {skipped} malformed lines skipped");
    }
    log::info!("replayed {written} events from {shown}");
    Ok(written)
}

/// A line that is valid JSON but another kind of object pwru-rs writes.
fn is_not_an_event(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v.get("summary").is_some() || v.get("packet").is_some())
}

/// A JSON tuple back into the event's form.
fn parse_tuple(t: &crate::output::JsonTuple) -> Result<Tuple, String> {
    let ip = |s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| format!("tuple address {s:?} is not an IP address"))
    };
    Ok(Tuple {
        saddr: ip(&t.saddr)?,
        daddr: ip(&t.daddr)?,
        sport: t.sport,
        dport: t.dport,
        proto: t.proto,
        tcp_flags: t.flags.as_deref().map(tcp_flags_byte).transpose()?,
    })
}

/// A pcap expression applied at replay, by libpcap's own matcher, to the packet bytes a trace
/// carries (`--output-packet-bytes`): the Ethernet form for a frame, the raw-IP form for a packet
/// seen from its network header, as the kernel side chooses them live.
struct OfflinePcap {
    ethernet: crate::filter::Compiled,
    raw: Option<crate::filter::Compiled>,
}

impl OfflinePcap {
    fn compile(expression: &str) -> anyhow::Result<Option<Self>> {
        use crate::filter::{compile_cbpf, View};
        // The same checks as live (libpcap's message for a bad expression).
        if crate::filter::compile(expression)?.is_none() {
            return Ok(None);
        }
        let expression = expression.trim();
        let ethernet = compile_cbpf(expression, View::Ethernet)
            .map_err(|message| anyhow::anyhow!("invalid pcap filter '{expression}': {message}"))?;
        Ok(Some(Self {
            ethernet,
            raw: compile_cbpf(expression, View::Raw).ok(),
        }))
    }

    fn matches(&self, p: &PacketBytes<'_>) -> bool {
        match p.link {
            pwru_rs_common::record::LINK_ETHERNET => self.ethernet.matches(p.bytes),
            _ => self.raw.as_ref().is_some_and(|r| r.matches(p.bytes)),
        }
    }
}

/// What a line's strings say, parsed.
struct Parsed {
    skb: u64,
    parent_skb: Option<u64>,
    tuple: Option<Tuple>,
    tunnel_tuple: Option<Tuple>,
    /// `packet_bytes`: link type, original length, the bytes.
    packet: Option<(u32, u32, Vec<u8>)>,
    tracked_by: Option<TrackedBy>,
    /// Kernel ns, when the trace has them (`--timestamp current`).
    ts_ns: Option<u64>,
    /// Wall-clock ns, when it has them (`--timestamp absolute`).
    wall_ns: Option<u64>,
    /// `bpf_map`'s key and value, as bytes.
    bpf_map: Option<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Lowercase (or any case) hex to bytes; `what` names it in the error.
fn from_hex(hex: &str, what: &str) -> Result<Vec<u8>, String> {
    let data = hex.as_bytes();
    if !data.len().is_multiple_of(2) {
        return Err(format!("{what} has an odd number of hex digits"));
    }
    data.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{what} {hex:?} is not hex"))
        })
        .collect()
}

impl Parsed {
    fn of(j: &JsonEvent) -> Result<Self, String> {
        let hex = |s: &str, key: &str| {
            s.strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{key} {s:?} is not 0x-prefixed hex"))
        };
        let tuple = j.tuple.as_ref().map(parse_tuple).transpose()?;
        let tunnel_tuple = j.tunnel_tuple.as_ref().map(parse_tuple).transpose()?;
        let packet = match &j.packet_bytes {
            Some(p) => Some((p.link, p.orig_len, from_hex(&p.data, "packet_bytes.data")?)),
            None => None,
        };
        let bpf_map = match &j.bpf_map {
            Some(m) => Some((
                from_hex(&m.key, "bpf_map.key")?,
                m.value
                    .as_deref()
                    .map(|v| from_hex(v, "bpf_map.value"))
                    .transpose()?,
            )),
            None => None,
        };
        let tracked_by = match j.tracked_by.as_deref() {
            None => None,
            Some("filter") => Some(TrackedBy::Filter),
            Some("skb") => Some(TrackedBy::Skb),
            Some("stackid") => Some(TrackedBy::Stackid),
            Some("xdp") => Some(TrackedBy::Xdp),
            Some(other) => return Err(format!("tracked_by {other:?} is unknown")),
        };
        let (ts_ns, wall_ns) = match &j.time {
            None => (None, None),
            Some(JsonTime::Nanos(ns)) => (Some(*ns), None),
            Some(JsonTime::Wall(s)) => (
                None,
                Some(parse_rfc3339(s).ok_or_else(|| format!("time {s:?} is not RFC 3339"))?),
            ),
        };
        Ok(Self {
            skb: hex(&j.skb, "skb")?,
            parent_skb: j
                .parent_skb
                .as_deref()
                .map(|p| hex(p, "parent_skb"))
                .transpose()?,
            tuple,
            tunnel_tuple,
            packet,
            tracked_by,
            ts_ns,
            wall_ns,
            bpf_map,
        })
    }

    fn event<'a>(&'a self, j: &'a JsonEvent, frames: &'a [Frame]) -> Event<'a> {
        // `func` carries `(reason)` or `(verdict)` after the hook's name.
        let name = j
            .func
            .split_once('(')
            .map_or(j.func.as_str(), |(name, _)| name);
        Event {
            skb: self.skb,
            cpu: j.cpu,
            pid: j.pid,
            comm: j.comm.as_bytes(),
            hook: Hook::Known(name),
            reason: j.reason_code.map(|code| Reason {
                code,
                name: j.reason.as_deref(),
            }),
            verdict: j.verdict_code.map(|code| {
                if j.netfilter.is_some() {
                    Verdict::netfilter(code)
                } else if j.xdp.is_some() {
                    Verdict::xdp(code)
                } else {
                    Verdict::tc(code)
                }
            }),
            xdp: j.xdp.as_ref().map(|x| XdpPacket {
                rx_queue: x.rx_queue,
            }),
            ts_ns: self.ts_ns.unwrap_or(0),
            time: Stamp::None,
            netns: j.netns,
            netns_name: j.netns_name.as_deref(),
            mark: j.mark,
            ifindex: j.ifindex,
            ifname: j.ifname.as_bytes(),
            mtu: j.mtu,
            len: j.len,
            protocol: j.proto,
            tuple: self.tuple,
            cb: j.cb,
            skb_dump: j.skb_dump.as_deref().map(|d| Dump {
                text: d.as_bytes(),
                full_len: d.len() as u32,
            }),
            shinfo_dump: j.skb_shared_info.as_deref().map(|d| Dump {
                text: d.as_bytes(),
                full_len: d.len() as u32,
            }),
            tracked_by: self.tracked_by,
            parent_skb: self.parent_skb,
            stack: match (&j.stack, &j.stack_error) {
                (Some(_), _) => Some(Stack::Frames(frames)),
                (None, Some(_)) => Some(Stack::Failed("not captured (replayed trace)")),
                (None, None) => None,
            },
            caller: j.caller_func.as_deref(),
            packet: self
                .packet
                .as_ref()
                .map(|(link, orig_len, bytes)| PacketBytes {
                    link: *link,
                    orig_len: *orig_len,
                    bytes,
                }),
            skb_metadata: j.skb_metadata.as_ref().map(SkbMetadata::Json),
            tunnel_tuple: self.tunnel_tuple,
            pod: j
                .pod
                .as_deref()
                .zip(j.k8s_namespace.as_deref())
                .map(|(name, ns)| (ns, name)),
            bpf_map: j
                .bpf_map
                .as_ref()
                .zip(self.bpf_map.as_ref())
                .map(|(m, (key, value))| BpfMapAccess {
                    op: &m.op,
                    id: m.id,
                    name: m.name.as_bytes(),
                    key_size: m.key_size,
                    value_size: m.value_size,
                    key,
                    value: value.as_deref(),
                    ret: m.ret,
                }),
            netfilter: j.netfilter.as_ref().map(|nf| NetfilterChain {
                family: &nf.family,
                table: nf.table.as_bytes(),
                chain: nf.chain.as_bytes(),
                hook: &nf.hook,
                priority: nf.priority,
            }),
        }
    }
}

/// pwru's `SYN|ACK` form back to the flags byte.
fn tcp_flags_byte(names: &str) -> Result<u8, String> {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    if names.is_empty() {
        return Ok(0);
    }
    names.split('|').try_fold(0u8, |flags, name| {
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|bit| flags | (1 << bit))
            .ok_or_else(|| format!("TCP flag {name:?} is unknown"))
    })
}

/// `2026-11-23T18:20:01.123456789+01:00` (as `--timestamp absolute` writes it) → Unix-epoch ns.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(b.get(range)?).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut at = 19;
    let mut nanos = 0i64;
    if b.get(at) == Some(&b'.') {
        let end = at
            + 1
            + b[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        let digits = std::str::from_utf8(&b[at + 1..end]).ok()?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
        at = end;
    }
    let offset_s = match b.get(at)? {
        b'Z' => 0,
        sign @ (b'+' | b'-') => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            let s = (h * 60 + m) * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    u64::try_from(secs * 1_000_000_000 + nanos).ok()
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm, the inverse of the
/// one the writer uses).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Printer, PrinterConfig};

    /// JSON with every optional key a replay reads back on.
    pub(super) fn json_printer() -> Printer {
        Printer::new(
            PrinterConfig {
                json: true,
                timestamp: TimestampChoice::Current,
                output_meta: true,
                output_tuple: true,
                output_skb_cb: true,
                netns_names_width: None,
                output_caller: true,
                output_tunnel: true,
                packet_bytes: true,
            },
            WallClock::fixed(0, 0),
        )
    }

    #[test]
    fn rfc3339_reads_back_what_the_writer_wrote() {
        for (ns, offset) in [
            (1_796_249_400_123_456_789u64, 0i64),
            (1_796_249_400_000_000_001, 3600),
            (951_782_400_500_000_000, -5 * 3600 - 1800), // 2000-02-29
        ] {
            let clock = WallClock::fixed(0, offset);
            let mut text = Vec::new();
            clock.write_rfc3339(&mut text, ns);
            let text = String::from_utf8(text).unwrap();
            assert_eq!(parse_rfc3339(&text), Some(ns), "{text}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn tcp_flags_read_back() {
        assert_eq!(tcp_flags_byte("SYN|ACK"), Ok(0x12));
        assert_eq!(tcp_flags_byte(""), Ok(0));
        assert!(tcp_flags_byte("SYN|NOPE").is_err());
    }

    /// An event written as JSON, read back and written again: the same bytes.
    #[test]
    fn json_round_trips_through_the_event() {
        let printer = json_printer();
        let mut e = Event::sample(0xffff_8880_1234_5600, "kfree_skb_reason", 123_456_789);
        e.time = Stamp::Nanos(123_456_789);
        e.reason = Some(Reason {
            code: 3,
            name: Some("SKB_DROP_REASON_NO_SOCKET"),
        });
        e.tuple = Some(Tuple {
            saddr: "fd00::1".parse().unwrap(),
            daddr: "fd00::2".parse().unwrap(),
            sport: 443,
            dport: 5353,
            proto: 6,
            tcp_flags: Some(0x12),
        });
        e.cb = Some([1, 2, 3, 4, 5]);
        e.packet = Some(PacketBytes {
            link: pwru_rs_common::record::LINK_RAW,
            orig_len: 84,
            bytes: &[0x45, 0, 0, 84, 0xab],
        });
        e.tunnel_tuple = Some(Tuple {
            saddr: "192.168.77.1".parse().unwrap(),
            daddr: "192.168.77.2".parse().unwrap(),
            sport: 0,
            dport: 0,
            proto: 1,
            tcp_flags: None,
        });
        e.tracked_by = Some(TrackedBy::Skb);
        e.parent_skb = Some(0xffff_8880_1234_5000);
        e.caller = Some("ip_local_deliver_finish");
        e.netns_name = Some("b");
        let mut first = Vec::new();
        printer.write_event(&e, &mut first);
        let line = std::str::from_utf8(&first).unwrap().trim_end();
        let json: JsonEvent = serde_json::from_str(line).unwrap();
        let parsed = Parsed::of(&json).unwrap();
        let mut back = parsed.event(&json, &[]);
        back.time = Stamp::Nanos(parsed.ts_ns.unwrap());
        let mut second = Vec::new();
        printer.write_event(&back, &mut second);
        assert_eq!(
            String::from_utf8(second).unwrap(),
            String::from_utf8(first).unwrap()
        );
    }
}

/// Property tests: any event the kernel side could describe is written as one line of valid JSON
/// that the schema type reads back with the same values, and that replays to the same bytes.
#[cfg(test)]
mod properties {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::{collection::vec, option, prelude::*};

    use super::*;

    /// What an [`Event`] borrows, owned, so that proptest can make and shrink it.
    #[derive(Debug, Clone)]
    struct Owned {
        skb: u64,
        cpu: u32,
        pid: u32,
        comm: Vec<u8>,
        hook: String,
        reason: Option<(u32, Option<String>)>,
        /// (code, XDP's rx queue when the program is an XDP one, else tc's).
        verdict: Option<(i32, Option<u32>)>,
        ts_ns: u64,
        netns: u32,
        netns_name: Option<String>,
        mark: u32,
        ifindex: u32,
        ifname: Vec<u8>,
        mtu: u32,
        len: u32,
        protocol: u16,
        tuple: Option<Tuple>,
        cb: Option<[u32; 5]>,
        skb_dump: Option<(Vec<u8>, u32)>,
        tracked_by: Option<TrackedBy>,
        parent_skb: Option<u64>,
        caller: Option<String>,
        packet: Option<(u32, u32, Vec<u8>)>,
        tunnel_tuple: Option<Tuple>,
        bpf_map: Option<OwnedMap>,
        pod: Option<(String, String)>,
    }

    #[derive(Debug, Clone)]
    struct OwnedMap {
        op: &'static str,
        id: u32,
        name: Vec<u8>,
        key_size: u32,
        value_size: u32,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        ret: i32,
    }

    fn owned_map() -> impl Strategy<Value = OwnedMap> {
        (
            prop_oneof![Just("lookup"), Just("update"), Just("delete")],
            any::<u32>(),
            name_bytes(16),
            any::<u32>(),
            any::<u32>(),
            vec(any::<u8>(), 0..64),
            option::of(vec(any::<u8>(), 0..64)),
            any::<i32>(),
        )
            .prop_map(
                |(op, id, name, key_size, value_size, key, value, ret)| OwnedMap {
                    op,
                    id,
                    name,
                    key_size,
                    value_size,
                    key,
                    value,
                    ret,
                },
            )
    }

    impl Owned {
        fn event(&self) -> Event<'_> {
            let mut e = Event::sample(self.skb, "placeholder", self.ts_ns);
            e.cpu = self.cpu;
            e.pid = self.pid;
            e.comm = &self.comm;
            e.hook = Hook::Known(&self.hook);
            e.reason = self.reason.as_ref().map(|(code, name)| Reason {
                code: *code,
                name: name.as_deref(),
            });
            e.verdict = self.verdict.map(|(code, xdp)| match xdp {
                Some(_) => Verdict::xdp(code),
                None => Verdict::tc(code),
            });
            e.xdp = self
                .verdict
                .and_then(|(_, xdp)| xdp)
                .map(|rx_queue| XdpPacket { rx_queue });
            e.time = Stamp::Nanos(self.ts_ns);
            e.netns = self.netns;
            e.netns_name = self.netns_name.as_deref();
            e.mark = self.mark;
            e.ifindex = self.ifindex;
            e.ifname = &self.ifname;
            e.mtu = self.mtu;
            e.len = self.len;
            e.protocol = self.protocol;
            e.tuple = self.tuple;
            e.cb = self.cb;
            e.skb_dump = self.skb_dump.as_ref().map(|(text, extra)| Dump {
                text,
                full_len: text.len() as u32 + extra,
            });
            e.tracked_by = self.tracked_by;
            e.parent_skb = self.parent_skb;
            e.caller = self.caller.as_deref();
            e.packet = self
                .packet
                .as_ref()
                .map(|(link, orig_len, bytes)| PacketBytes {
                    link: *link,
                    orig_len: *orig_len,
                    bytes,
                });
            e.tunnel_tuple = self.tunnel_tuple;
            e.pod = self
                .pod
                .as_ref()
                .map(|(ns, name)| (ns.as_str(), name.as_str()));
            e.bpf_map = self.bpf_map.as_ref().map(|m| BpfMapAccess {
                op: m.op,
                id: m.id,
                name: &m.name,
                key_size: m.key_size,
                value_size: m.value_size,
                key: &m.key,
                value: m.value.as_deref(),
                ret: m.ret,
            });
            e
        }
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
    }

    fn tuple() -> impl Strategy<Value = Tuple> {
        (
            ip(),
            ip(),
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
        )
            .prop_map(|(saddr, daddr, sport, dport, proto, flags)| Tuple {
                saddr,
                daddr,
                sport,
                dport,
                proto,
                // The kernel side reads flags of TCP packets only.
                tcp_flags: (proto == 6).then_some(flags),
            })
    }

    /// Kernel-supplied names: any bytes but NUL (they end at the first one).
    fn name_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(1u8..=255, 0..max)
    }

    fn owned() -> impl Strategy<Value = Owned> {
        let identity = (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            name_bytes(16),
            // A kernel symbol or a BPF program's name.
            "[A-Za-z_][A-Za-z0-9_.]{0,40}",
            option::of((any::<u32>(), option::of("[A-Z_]{1,40}"))),
            option::of((any::<i32>(), option::of(any::<u32>()))),
            any::<u64>(),
        );
        let meta = (
            any::<u32>(),
            option::of(any::<String>()),
            any::<u32>(),
            any::<u32>(),
            name_bytes(16),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            option::of(tuple()),
            option::of(any::<[u32; 5]>()),
        );
        let extras = (
            option::of((vec(any::<u8>(), 0..200), 0u32..64)),
            option::of(prop_oneof![
                Just(TrackedBy::Filter),
                Just(TrackedBy::Skb),
                Just(TrackedBy::Stackid),
                Just(TrackedBy::Xdp),
            ]),
            option::of(any::<u64>()),
            option::of("[a-z_][a-z0-9_.]{0,40}"),
            option::of((
                prop_oneof![
                    Just(pwru_rs_common::record::LINK_RAW),
                    Just(pwru_rs_common::record::LINK_ETHERNET),
                ],
                any::<u32>(),
                vec(any::<u8>(), 0..96),
            )),
            option::of(tuple()),
            option::of(owned_map()),
            option::of(("[a-z0-9-]{1,63}", "[a-z0-9.-]{1,63}")),
        );
        (identity, meta, extras).prop_map(
            |(
                (skb, cpu, pid, comm, hook, reason, verdict, ts_ns),
                (netns, netns_name, mark, ifindex, ifname, mtu, len, protocol, tuple, cb),
                (skb_dump, tracked_by, parent_skb, caller, packet, tunnel_tuple, bpf_map, pod),
            )| Owned {
                skb,
                cpu,
                pid,
                comm,
                hook,
                reason,
                verdict,
                ts_ns,
                netns,
                netns_name,
                mark,
                ifindex,
                ifname,
                mtu,
                len,
                protocol,
                tuple,
                cb,
                skb_dump,
                tracked_by,
                parent_skb,
                caller,
                packet,
                tunnel_tuple,
                bpf_map,
                pod,
            },
        )
    }

    fn lossy(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_event_is_one_json_line_that_reads_back(o in owned()) {
            let printer = super::tests::json_printer();
            let e = o.event();
            let mut first = Vec::new();
            printer.write_event(&e, &mut first);
            prop_assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(first.last(), Some(&b'\n'));
            let line = std::str::from_utf8(&first).expect("JSON is UTF-8");
            let json: JsonEvent = serde_json::from_str(line)
                .map_err(|err| TestCaseError::fail(format!("{err}: {line}")))?;

            prop_assert_eq!(&json.skb, &format!("{:#x}", o.skb));
            prop_assert_eq!(json.cpu, o.cpu);
            prop_assert_eq!(json.pid, o.pid);
            prop_assert_eq!(&json.comm, &lossy(&o.comm));
            prop_assert_eq!(&json.process, &format!("{}:{}", lossy(&o.comm), o.pid));
            prop_assert!(json.func.starts_with(&o.hook));
            prop_assert_eq!(&json.time, &Some(JsonTime::Nanos(o.ts_ns)));
            prop_assert_eq!(json.netns, o.netns);
            prop_assert_eq!(&json.netns_name, &o.netns_name);
            prop_assert_eq!(json.mark, o.mark);
            prop_assert_eq!(json.ifindex, o.ifindex);
            prop_assert_eq!(&json.ifname, &lossy(&o.ifname));
            prop_assert_eq!((json.mtu, json.len, json.proto), (o.mtu, o.len, o.protocol));
            prop_assert_eq!(json.cb, o.cb);
            prop_assert_eq!(json.reason_code, o.reason.as_ref().map(|r| r.0));
            prop_assert_eq!(json.verdict_code, o.verdict.map(|v| v.0));
            prop_assert_eq!(json.xdp.as_ref().map(|x| x.rx_queue), o.verdict.and_then(|v| v.1));
            prop_assert_eq!(
                json.parent_skb.as_deref().map(|p| u64::from_str_radix(&p[2..], 16).unwrap()),
                o.parent_skb
            );
            prop_assert_eq!(&json.caller_func, &o.caller);
            prop_assert_eq!(
                json.k8s_namespace.clone().zip(json.pod.clone()),
                o.pod.clone()
            );
            if let Some(m) = &o.bpf_map {
                let j = json.bpf_map.as_ref().expect("bpf_map written");
                prop_assert_eq!((j.op.as_str(), j.id, j.key_size, j.value_size, j.ret), (m.op, m.id, m.key_size, m.value_size, m.ret));
                prop_assert_eq!(&j.name, &lossy(&m.name));
            } else {
                prop_assert!(json.bpf_map.is_none());
            }
            let parsed = Parsed::of(&json).map_err(TestCaseError::fail)?;
            prop_assert_eq!(parsed.skb, o.skb);
            prop_assert_eq!(parsed.tuple, o.tuple);
            prop_assert_eq!(parsed.tunnel_tuple, o.tunnel_tuple);
            prop_assert_eq!(parsed.tracked_by, o.tracked_by);
            if let Some(m) = &o.bpf_map {
                prop_assert_eq!(parsed.bpf_map.as_ref(), Some(&(m.key.clone(), m.value.clone())));
            }
            if let Some((link, orig_len, bytes)) = &o.packet {
                prop_assert_eq!(parsed.packet.as_ref(), Some(&(*link, *orig_len, bytes.clone())));
            }

            // Replayed (`--input-file`), it is written again byte for byte.
            let mut back = parsed.event(&json, &[]);
            back.time = Stamp::Nanos(parsed.ts_ns.expect("time kept"));
            let mut second = Vec::new();
            printer.write_event(&back, &mut second);
            prop_assert_eq!(lossy(&second), lossy(&first));
        }
    }
}
