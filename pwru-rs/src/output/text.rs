//! pwru's column layout: `SKB CPU PROCESS [TIMESTAMP] NETNS MARK/x IFACE PROTO MTU LEN TUPLE FUNC`,
//! with the same widths, so eyes and `awk` scripts trained on pwru read it unchanged.

use super::{
    aligned, write_cb, write_dump_text, write_func, write_hex, write_hex_digits, write_iface,
    write_meta_number, write_process, write_tuple, write_tuple_of, write_u64, Align, PrinterConfig,
    WallClock,
};
use crate::{
    cli::TimestampChoice,
    events::{Event, MetaValue, Stack, Stamp},
};

/// Widths of pwru's `%-18s %-3s %-16s`, `%-16s`, `%-10s %-8s %16s %-6s %-5s %-5s`.
const W_TIME: usize = 15;
const W_SKB: usize = 18;
const W_CPU: usize = 3;
const W_PROCESS: usize = 16;
const W_TIMESTAMP: usize = 16;
const W_NETNS: usize = 10;
const W_MARK: usize = 8;
const W_IFACE: usize = 16;
const W_PROTO: usize = 6;
const W_MTU: usize = 5;
const W_LEN: usize = 5;
const W_TUPLE: usize = 8;
/// pwru's `%-56s` for `__sk_buff->cb[]`: five `0x%08X` words.
const W_CB: usize = 56;

pub(super) fn write_header(config: &PrinterConfig, out: &mut Vec<u8>) {
    let text = |out: &mut Vec<u8>, width: usize, align: Align, s: &str| {
        aligned(out, width, align, |o| o.extend_from_slice(s.as_bytes()))
    };
    if config.timestamp == TimestampChoice::Absolute {
        text(out, W_TIME, Align::Left, "TIME");
        out.push(b' ');
    }
    text(out, W_SKB, Align::Left, "SKB");
    out.push(b' ');
    text(out, W_CPU, Align::Left, "CPU");
    out.push(b' ');
    text(out, W_PROCESS, Align::Left, "PROCESS");
    if matches!(
        config.timestamp,
        TimestampChoice::Current | TimestampChoice::Relative
    ) {
        out.push(b' ');
        text(out, W_TIMESTAMP, Align::Left, "TIMESTAMP");
    }
    if config.output_meta {
        for (width, align, name) in [
            (W_NETNS, Align::Left, "NETNS"),
            (W_MARK, Align::Left, "MARK/x"),
            (W_IFACE, Align::Center, "IFACE"),
            (W_PROTO, Align::Left, "PROTO"),
            (W_MTU, Align::Left, "MTU"),
            (W_LEN, Align::Left, "LEN"),
        ] {
            out.push(b' ');
            text(out, width, align, name);
        }
        if config.output_skb_cb {
            out.push(b' ');
            text(out, W_CB, Align::Left, "__sk_buff->cb[]");
        }
    }
    if let Some(width) = config.netns_names_width {
        out.push(b' ');
        text(out, width, Align::Center, "NETNS NAME");
    }
    if config.output_tuple {
        out.push(b' ');
        text(out, W_TUPLE, Align::Left, "TUPLE");
    }
    out.extend_from_slice(b" FUNC");
    if config.output_caller {
        out.extend_from_slice(b" CALLER");
    }
    if config.output_tunnel {
        out.extend_from_slice(b" TUNNEL");
    }
    out.push(b'\n');
}

pub(super) fn write_event(
    e: &Event<'_>,
    config: &PrinterConfig,
    clock: &WallClock,
    out: &mut Vec<u8>,
) {
    if let Stamp::Wall(ns) = e.time {
        aligned(out, W_TIME, Align::Left, |o| clock.write_time_of_day(o, ns));
        out.push(b' ');
    }
    aligned(out, W_SKB, Align::Left, |o| write_hex(o, e.skb));
    out.push(b' ');
    aligned(out, W_CPU, Align::Left, |o| write_u64(o, e.cpu as u64));
    out.push(b' ');
    aligned(out, W_PROCESS, Align::Left, |o| write_process(e, o));
    if let Stamp::Nanos(ns) = e.time {
        out.push(b' ');
        aligned(out, W_TIMESTAMP, Align::Left, |o| write_u64(o, ns));
    }
    if config.output_meta {
        out.push(b' ');
        aligned(out, W_NETNS, Align::Left, |o| write_u64(o, e.netns as u64));
        out.push(b' ');
        aligned(out, W_MARK, Align::Left, |o| write_hex(o, e.mark as u64));
        out.push(b' ');
        aligned(out, W_IFACE, Align::Center, |o| write_iface(e, o));
        out.push(b' ');
        aligned(out, W_PROTO, Align::Left, |o| {
            write_ethertype(o, e.protocol)
        });
        out.push(b' ');
        aligned(out, W_MTU, Align::Left, |o| write_u64(o, e.mtu as u64));
        out.push(b' ');
        aligned(out, W_LEN, Align::Left, |o| write_u64(o, e.len as u64));
        if config.output_skb_cb {
            out.push(b' ');
            aligned(out, W_CB, Align::Left, |o| match &e.cb {
                Some(cb) => write_cb(o, cb),
                None => o.push(b'-'),
            });
        }
    }
    if let Some(width) = config.netns_names_width {
        // pwru's column: centred, cut to the width, blank when unknown.
        out.push(b' ');
        let name = e.netns_name.unwrap_or("").as_bytes();
        aligned(out, width, Align::Center, |o| {
            o.extend_from_slice(&name[..name.len().min(width)])
        });
    }
    if config.output_tuple {
        out.push(b' ');
        write_tuple(e, out);
    }
    out.push(b' ');
    write_func(e, out);
    if config.output_caller {
        out.push(b' ');
        out.extend_from_slice(e.caller.unwrap_or("-").as_bytes());
    }
    if config.output_tunnel {
        out.push(b' ');
        write_tuple_of(e.tunnel_tuple.as_ref(), out);
    }
    // pwru's ` name=value` after the function, one per --output-skb-metadata expression.
    if let Some(metadata) = &e.skb_metadata {
        metadata.for_each(|_, label, value| {
            out.push(b' ');
            out.extend_from_slice(label.as_bytes());
            out.push(b'=');
            if !write_meta_number(out, &value) {
                match value {
                    MetaValue::Str(s) => out.extend(s.escape_ascii()),
                    MetaValue::Json(v) => out.extend_from_slice(v.to_string().as_bytes()),
                    _ => {}
                }
            }
        });
    }
    // `--output-netfilter`: the base chain that gave the verdict shown in FUNC.
    if let Some(nf) = &e.netfilter {
        out.extend_from_slice(b" table=");
        out.extend_from_slice(nf.family.as_bytes());
        out.push(b'/');
        out.extend(nf.table.escape_ascii());
        out.extend_from_slice(b" chain=");
        out.extend(nf.chain.escape_ascii());
        out.extend_from_slice(b" hook=");
        out.extend_from_slice(nf.hook.as_bytes());
        out.extend_from_slice(b" priority=");
        out.extend_from_slice(nf.priority.to_string().as_bytes());
    }
    // `--output-bpfmap`: the map operation, under the line (as pwru shows it).
    if let Some(m) = &e.bpf_map {
        out.extend_from_slice(b"\n    bpf_map: ");
        out.extend_from_slice(m.op.as_bytes());
        out.extend_from_slice(b" id=");
        out.extend_from_slice(m.id.to_string().as_bytes());
        out.extend_from_slice(b" name=");
        out.extend(m.name.escape_ascii());
        out.extend_from_slice(format!(" key[{}]=", m.key_size).as_bytes());
        out.extend(m.key.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
        match m.value {
            Some(v) => {
                out.extend_from_slice(format!(" value[{}]=", m.value_size).as_bytes());
                out.extend(v.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
            }
            None => out.extend_from_slice(b" value=none"),
        }
        if m.ret != 0 {
            out.extend_from_slice(format!(" ret={}", m.ret).as_bytes());
        }
    }
    // The stack under the line, a frame a line, innermost first.
    match e.stack {
        Some(Stack::Frames(frames)) => {
            for frame in frames {
                out.extend_from_slice(b"\n    ");
                out.extend_from_slice(frame.text.as_bytes());
            }
        }
        Some(Stack::Failed(why)) => {
            out.extend_from_slice(b"\n    (stack not captured: ");
            out.extend_from_slice(why.as_bytes());
            out.push(b')');
        }
        None => {}
    }
    // The dumps under the line, as pwru prints them.
    for dump in [&e.skb_dump, &e.shinfo_dump].into_iter().flatten() {
        out.push(b'\n');
        write_dump_text(out, dump);
    }
    out.push(b'\n');
}

/// `0x0800`: four hex digits, as pwru prints skb->protocol.
fn write_ethertype(out: &mut Vec<u8>, protocol: u16) {
    out.extend_from_slice(b"0x");
    write_hex_digits(out, protocol as u64, 4);
}
