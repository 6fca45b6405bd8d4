//! Command-line interface: pwru's flags, names and meanings, so its users' habits carry over.

use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Probe the kernel: kprobe-multi, else kprobe, else tracepoint.
    Auto,
    /// Raw tracepoints that carry an skb (works without kprobes or BPF trampolines).
    Tracepoint,
    Kprobe,
    #[value(name = "kprobe-multi")]
    KprobeMulti,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimestampChoice {
    None,
    /// Kernel monotonic time of the event, in ns.
    Current,
    /// Time since the previous event of the same skb, in ns.
    Relative,
    /// Wall-clock time of the event.
    Absolute,
}

/// `--filter-mark mark[/mask]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkFilter {
    pub mark: u32,
    pub mask: u32,
}

/// `--filter-netns /proc/PID/ns/net | inode:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsSpec {
    Path(PathBuf),
    Inode(u32),
}

/// packet, where are you? Trace every kernel function or tracepoint a packet passes through.
#[derive(Debug, Parser)]
#[command(name = "pwru-rs", version, about, long_about = None, disable_version_flag = true)]
// What copies packet bytes in the kernel: --output-pcap-snaplen needs one of them.
#[command(group(ArgGroup::new("packet_copy").args(["output_pcap", "output_packet_bytes"]).multiple(true)))]
pub struct Cli {
    /// pcap-filter(7) expression, as for tcpdump (e.g. `port https`, `host 10.0.0.1 and tcp`).
    #[arg(value_name = "PCAP-FILTER")]
    pub pcap_filter: Vec<String>,

    /// Tracing backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// Only skbs in this network namespace ("/proc/<pid>/ns/net" or "inode:<inode>").
    #[arg(long, value_name = "NETNS", value_parser = parse_netns)]
    pub filter_netns: Option<NetnsSpec>,

    /// Only skbs in this Kubernetes pod's network namespace, found on the node: through
    /// crictl when it is there, else the kubelet's /var/log/pods/NAMESPACE_NAME_UID and the pod's
    /// processes' cgroups (run on the node, e.g. in the DaemonSet of deploy/kubernetes).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with = "filter_netns")]
    pub filter_pod: Option<String>,

    /// Only skbs whose mark matches (mark[/mask], decimal or 0x-hex; mask defaults to all bits).
    #[arg(long, value_name = "MARK[/MASK]", value_parser = parse_mark)]
    pub filter_mark: Option<MarkFilter>,

    /// Only skbs on this interface, resolved in --filter-netns (default: pwru-rs's own netns).
    #[arg(long, value_name = "NAME")]
    pub filter_ifname: Option<String>,

    /// Only probe kernel functions / tracepoints whose whole name matches this regex.
    #[arg(long, value_name = "REGEX")]
    pub filter_func: Option<String>,

    /// Follow an skb from the moment it passes the filters until it is freed, even when it no
    /// longer matches them (after NAT, decapsulation, a header rewrite), and its clones and copies
    /// (JSON `tracked_by`, `parent_skb`).
    #[arg(long)]
    pub filter_track_skb: bool,

    /// --filter-track-skb(-by-stackid): skbs tracked at once (the maps' size, ~100 bytes each);
    /// skbs that find it full are not tracked, and counted at exit.
    #[arg(long, value_name = "N", default_value_t = pwru_rs_common::DEFAULT_TRACK_SKB_MAP_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1 << 24))]
    pub filter_track_skb_map_size: u32,

    /// Also trace what runs on the kernel stack a traced skb ran on: a packet freed and made
    /// anew along the way (a reply, a copy), as pwru does (kprobe backends).
    #[arg(long)]
    pub filter_track_skb_by_stackid: bool,

    /// Only skbs for which this C expression over `struct sk_buff *skb` holds, resolved against
    /// the kernel's BTF (pwru's syntax): `skb->dev->ifindex == 9`, `skb->len > 1000`,
    /// `skb->mark & 0xff == 0x42`, `skb->dev->name == "eth0"`,
    /// `skb->sk->__sk_common.skc_family == 10`. One comparison per expression; a NULL pointer on
    /// the way makes it false. Applied after the meta filters, before the pcap filter.
    #[arg(long, value_name = "EXPR")]
    pub filter_skb_expr: Option<String>,

    /// A tunnel packet (VXLAN, Geneve, GRE, IPIP) must match this pcap filter on its inner
    /// Ethernet frame; other packets are not affected (as in pwru). Combine with the outer
    /// filter (`udp port 4789`) to keep only tunnel packets.
    #[arg(long, value_name = "EXPR")]
    pub filter_tunnel_pcap_l2: Option<String>,

    /// The same on a tunnel packet's inner IP packet.
    #[arg(long, value_name = "EXPR")]
    pub filter_tunnel_pcap_l3: Option<String>,

    /// --filter-trace-xdp: only XDP packets for which this expression over
    /// `struct xdp_buff *xdp` holds (as --filter-skb-expr): `xdp->rxq->dev->ifindex == 2`,
    /// `xdp->rxq->queue_index == 0`.
    #[arg(long, value_name = "EXPR")]
    pub filter_xdp_expr: Option<String>,

    /// Also trace the tc BPF programs (sched_cls/sched_act: clsact, tcx, netkit; Cilium's
    /// cil_from_container, …) loaded when pwru-rs starts, at entry and exit with the verdict
    /// (TC_ACT_OK, TC_ACT_SHOT, …), as FUNC name(verdict). The filters apply as everywhere.
    /// Programs loaded later are not traced. Needs BPF trampolines (fentry/fexit) and programs
    /// with BTF.
    #[arg(long)]
    pub filter_trace_tc: bool,

    /// Also trace the XDP programs loaded when pwru-rs starts, at entry and exit with the
    /// verdict (XDP_PASS, XDP_DROP, …): the packet is an xdp_buff (SKB is its address), the pcap
    /// filter runs on its frame, --filter-mark does not apply. With --filter-track-skb, the skb
    /// built on a passed packet is followed (tracked_by "xdp"). Programs loaded later are not
    /// traced. Needs BPF trampolines and programs with BTF.
    #[arg(long)]
    pub filter_trace_xdp: bool,

    /// With --filter-trace-tc/-xdp: also probe the kernel functions those programs call (BPF
    /// helpers like bpf_skb_store_bytes and bpf_redirect, and the map operations helper calls
    /// became, like htab_map_update_elem), each traced for the packet of the traced program
    /// running it. Map lookups the verifier inlines (array maps) make no call and do not show.
    /// Needs kprobes.
    #[arg(long)]
    pub filter_track_bpf_helpers: bool,

    /// With --filter-trace-tc/-xdp: show the map operations those programs make on a traced
    /// packet (lookups, updates, deletes, at the exit of the map's operation, e.g.
    /// htab_map_update_elem): the map's id and name, the key and the value (hex, at most 64 bytes
    /// each). Lookups the verifier inlines (array maps) make no call and do not show. Needs BPF
    /// trampolines.
    #[arg(long)]
    pub output_bpfmap: bool,

    /// Also probe these functions, which have no skb argument; each is traced for the skb that
    /// ran last on the same kernel stack (implies --filter-track-skb-by-stackid).
    #[arg(long, value_name = "FUNC,...", value_delimiter = ',')]
    pub filter_non_skb_funcs: Vec<String>,

    /// Also probe the skb functions of these kernel modules (their BTF from
    /// /sys/kernel/btf/MOD): veth, vxlan, bridge, openvswitch, nf_conntrack, … FUNC names them as
    /// kallsyms does, `veth_xmit [veth]`. A module that is not loaded is warned about and
    /// skipped. kprobe backends (tracepoints are the same with or without).
    #[arg(long, value_name = "MOD,...", value_delimiter = ',')]
    pub kmods: Vec<String>,

    /// Also probe the skb functions of every loaded kernel module that has BTF.
    #[arg(long)]
    pub all_kmods: bool,

    /// Kernel BTF to read instead of /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "FILE")]
    pub kernel_btf: Option<PathBuf>,

    /// One JSON object per line instead of columns.
    #[arg(long)]
    pub output_json: bool,

    /// Print skb metadata (NETNS MARK IFACE PROTO MTU LEN).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub output_meta: bool,

    /// Print the L4 tuple.
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub output_tuple: bool,

    /// Name each event's network namespace: its ip-netns name (/run/netns), else `comm:pid` of
    /// the lowest-numbered process in it.
    #[arg(long)]
    pub output_netns_names: bool,

    /// Width of the NETNS NAME column; longer names are cut to it.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub netns_names_max_length: u16,

    /// Print the TCP flags in the tuple (`[S.]` in text, `SYN|ACK` in JSON `tuple.flags`).
    #[arg(long)]
    pub output_tcp_flags: bool,

    /// Print `skb->cb` (the five u32 words BPF programs see as `__sk_buff->cb`).
    #[arg(long)]
    pub output_skb_cb: bool,

    /// Print the whole `struct sk_buff` as the kernel formats it (bpf_snprintf_btf; Linux 5.10+).
    #[arg(long)]
    pub output_skb: bool,

    /// Print `struct skb_shared_info` as the kernel formats it (bpf_snprintf_btf).
    #[arg(long)]
    pub output_skb_shared_info: bool,

    /// Print these skb fields with each event, at most 4, as ` name=value` after FUNC and in
    /// JSON `skb_metadata` (`{"skb->mark": 66, "skb->dev->name": "eth0"}`): numbers (8 bytes at
    /// most), pointers (hex), char arrays (strings, 16 bytes at most). Same expressions as
    /// --filter-skb-expr without the comparison; a NULL pointer on the way reads as 0.
    #[arg(long, value_name = "EXPR,...", value_delimiter = ',')]
    pub output_skb_metadata: Vec<String>,

    /// --filter-trace-xdp: print these fields of each XDP packet's `struct xdp_buff` (as
    /// --output-skb-metadata), at most 4: `xdp->rxq->dev->name,xdp->frame_sz`.
    #[arg(long, value_name = "EXPR,...", value_delimiter = ',')]
    pub output_xdp_metadata: Vec<String>,

    /// Print a tunnel packet's inner tuple (text column TUNNEL after FUNC, JSON
    /// `tunnel_tuple`): VXLAN (UDP 4789), Geneve (UDP 6081), GRE, IPIP.
    #[arg(long)]
    pub output_tunnel: bool,

    /// Show each nftables base chain a traced packet goes through (iptables-nft's too): an
    /// `nft_do_chain(NF_ACCEPT)` / `(NF_DROP)` event with its table, chain, hook and priority
    /// (text after FUNC, JSON `netfilter`); a drop by a chain is named in
    /// `--output-group-by-skb` and `--summary`. Needs BPF trampolines (fexit) and the nf_tables
    /// code loaded at start; the ruleset is not touched. Rule handles are not shown.
    #[arg(long)]
    pub output_netfilter: bool,

    /// Print each event's kernel stack (symbolised from /proc/kallsyms), under the event line and
    /// as JSON `stack`.
    #[arg(long)]
    pub output_stack: bool,

    /// Print the function that called the traced one (JSON `caller_func`); for a tracepoint, the
    /// function the tracepoint is in.
    #[arg(long)]
    pub output_caller: bool,

    /// Size of each per-CPU buffer the --output-skb and --output-skb-shared-info dumps are
    /// written into; a longer dump is cut (and says so).
    #[arg(long, value_name = "BYTES", default_value_t = pwru_rs_common::DEFAULT_DUMP_BUF,
          value_parser = parse_percpu_buf)]
    pub set_percpu_buf: u32,

    /// Also write every traced skb event as a pcapng packet: the packet's bytes as the kernel
    /// held them at that hook (from its MAC header, else its network header as raw IP), the
    /// event's time, a comment with the function, skb, netns, device, mark and drop reason, and
    /// one interface per netns, device and link type. Text/JSON output goes on as usual.
    #[arg(long, value_name = "FILE")]
    pub output_pcap: Option<PathBuf>,

    /// Add each event's packet bytes to the JSON output (`packet_bytes`: link type, original
    /// length, hex), so that a saved trace can be filtered by a pcap expression at replay
    /// (`--input-file`). As many bytes as --output-pcap-snaplen.
    #[arg(long)]
    pub output_packet_bytes: bool,

    /// --output-pcap / --output-packet-bytes: bytes of each packet copied in the kernel (the rest
    /// is counted, not kept).
    #[arg(long, value_name = "BYTES", default_value_t = pwru_rs_common::DEFAULT_SNAPLEN,
          requires = "packet_copy",
          value_parser = clap::value_parser!(u32).range(1..=pwru_rs_common::MAX_SNAPLEN as i64))]
    pub output_pcap_snaplen: u32,

    /// One story per packet: events held per skb (with --filter-track-skb, per lineage: an
    /// skb and its clones and copies) and written as one block when its life ends, or after
    /// --output-group-timeout-ms without events, with the time from each hook to the next and
    /// the drop at the end. JSON: one object per packet ({"packet","end","events","hops","drop"}).
    #[arg(long)]
    pub output_group_by_skb: bool,

    /// --output-group-by-skb: packets held at once; when one more comes, the one quiet longest
    /// is written early (and counted at exit).
    #[arg(long, value_name = "N", default_value_t = 16384, requires = "output_group_by_skb",
          value_parser = clap::value_parser!(u32).range(1..=1 << 22))]
    pub output_group_max_packets: u32,

    /// --output-group-by-skb: a packet without events for this long is written (not freed yet).
    #[arg(long, value_name = "MS", default_value_t = 1000, requires = "output_group_by_skb",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub output_group_timeout_ms: u64,

    /// Read a saved --output-json trace instead of the kernel (no root, no BTF) and write it out
    /// as the output flags say (text, JSON, --output-group-by-skb, --summary, --timestamp, and
    /// --output-pcap from a trace recorded with --output-packet-bytes --timestamp absolute);
    /// --filter-func, --filter-netns, --filter-mark, --filter-ifname (by name) and, on saved
    /// packet bytes, a pcap expression apply.
    #[arg(long, value_name = "TRACE.jsonl")]
    pub input_file: Option<PathBuf>,

    /// --input-file: skip malformed lines (counted at the end) instead of stopping at the first.
    #[arg(long, requires = "input_file")]
    pub input_skip_bad: bool,

    /// At exit (also after Ctrl-C), a summary after the trace: hooks by hits, drops by reason
    /// and by function, distinct paths and the most common ones, and the time between
    /// consecutive hooks of one skb (p50/p99). Tables; with --output-json one final line
    /// {"summary":{…}}.
    #[arg(long)]
    pub summary: bool,

    /// Timestamp per event.
    #[arg(long, value_enum, default_value_t = TimestampChoice::None)]
    pub timestamp: TimestampChoice,

    /// Write traces to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,

    /// --output-file: rotate it before it would grow past this many megabytes (MiB).
    #[arg(long, value_name = "MB", default_value_t = 100, requires = "output_file",
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub output_file_max_size: u64,

    /// --output-file: rotated files to keep, newest first (0: all).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "output_file")]
    pub output_file_max_backups: usize,

    /// --output-file: remove rotated files older than this many days (0: no age limit).
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 0,
        requires = "output_file"
    )]
    pub output_file_max_age: u32,

    /// --output-file: gzip the rotated files.
    #[arg(long, requires = "output_file")]
    pub output_file_compress: bool,

    /// Exit after printing this many events.
    #[arg(long, value_name = "N")]
    pub output_limit_lines: Option<u64>,

    /// Create this file once every probe is attached (removed on exit).
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// At exit, write the run's figures to this file as one JSON line (hooks attached, attach
    /// and detach times, events received and lost).
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,

    /// Size of the kernel-to-user ring buffer in bytes (a power of two, at least one page).
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20, value_parser = parse_ringbuf_size)]
    pub ringbuf_size: u32,

    /// kprobe backend: how many probes to attach (and detach) at once.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub filter_kprobe_batch: u32,

    /// Debug logging (as RUST_LOG=debug).
    #[arg(long)]
    pub debug: bool,

    /// Print the version, git commit, aya version and the backends this kernel supports.
    #[arg(short = 'V', long)]
    pub version: bool,
}

impl Cli {
    /// The pcap expression as one string ("" when none was given).
    pub fn pcap_expression(&self) -> String {
        self.pcap_filter.join(" ")
    }
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("'{s}' is not a 32-bit number: {e}"))
}

pub fn parse_mark(s: &str) -> Result<MarkFilter, String> {
    let (mark, mask) = match s.split_once('/') {
        Some((m, k)) => (parse_u32(m)?, parse_u32(k)?),
        None => (parse_u32(s)?, u32::MAX),
    };
    if mark & !mask != 0 {
        return Err(format!(
            "mark {mark:#x} has bits outside mask {mask:#x}: it can never match"
        ));
    }
    Ok(MarkFilter { mark, mask })
}

pub fn parse_netns(s: &str) -> Result<NetnsSpec, String> {
    if let Some(inode) = s.strip_prefix("inode:") {
        return inode
            .parse()
            .map(NetnsSpec::Inode)
            .map_err(|e| format!("'{inode}' is not an inode number: {e}"));
    }
    if s.is_empty() {
        return Err("expected /proc/<pid>/ns/net or inode:<inode>".into());
    }
    Ok(NetnsSpec::Path(PathBuf::from(s)))
}

/// Per-CPU map values are at most 32 KiB (the kernel's percpu unit).
const MAX_PERCPU_BUF: u32 = 32 << 10;

fn parse_percpu_buf(s: &str) -> Result<u32, String> {
    let n = parse_u32(s)?;
    if !(64..=MAX_PERCPU_BUF).contains(&n) {
        return Err(format!("{n} is not between 64 and {MAX_PERCPU_BUF}"));
    }
    Ok(n)
}

fn parse_ringbuf_size(s: &str) -> Result<u32, String> {
    let n = parse_u32(s)?;
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("{n} is not a power of two of at least 4096"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pwru-rs").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_pwru() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.backend, BackendChoice::Auto);
        assert!(cli.output_meta && cli.output_tuple && !cli.output_json);
        assert_eq!(cli.timestamp, TimestampChoice::None);
        assert_eq!(cli.pcap_expression(), "");
        assert_eq!(cli.ringbuf_size, 8 << 20);
        // lumberjack's defaults, as pwru's.
        assert_eq!(
            (cli.output_file_max_size, cli.output_file_max_backups),
            (100, 0)
        );
        assert!(cli.output_file_max_age == 0 && !cli.output_file_compress);
        assert!(!cli.debug && !cli.version);
    }

    #[test]
    fn rotation_flags_need_an_output_file_and_a_size() {
        assert!(parse(&["--output-file-max-size", "0", "--output-file", "f"]).is_err());
        assert!(parse(&["--output-file-max-backups", "2"]).is_err());
        let cli = parse(&[
            "--output-file",
            "f",
            "--output-file-max-size",
            "1",
            "--output-file-max-backups",
            "2",
            "--output-file-max-age",
            "7",
            "--output-file-compress",
        ])
        .unwrap();
        assert_eq!(cli.output_file_max_size, 1);
        assert_eq!(cli.output_file_max_backups, 2);
        assert_eq!(cli.output_file_max_age, 7);
        assert!(cli.output_file_compress);
        assert!(parse(&["--version"]).unwrap().version);
        assert!(parse(&["-V"]).unwrap().version);
    }

    #[test]
    fn pcap_expression_is_joined_positional_words() {
        let cli = parse(&["--filter-ifname", "lo", "host", "10.0.0.1", "and", "tcp"]).unwrap();
        assert_eq!(cli.pcap_expression(), "host 10.0.0.1 and tcp");
        assert_eq!(cli.filter_ifname.as_deref(), Some("lo"));
    }

    #[test]
    fn marks() {
        assert_eq!(
            parse_mark("0xa00/0xf00"),
            Ok(MarkFilter {
                mark: 0xa00,
                mask: 0xf00
            })
        );
        assert_eq!(
            parse_mark("42"),
            Ok(MarkFilter {
                mark: 42,
                mask: u32::MAX
            })
        );
        assert!(parse_mark("0x10/0x1").is_err());
        assert!(parse_mark("banana").is_err());
        assert!(parse_mark("0x1ffffffff").is_err());
        assert!(parse(&["--filter-mark", "zz"]).is_err());
    }

    #[test]
    fn netns_specs() {
        assert_eq!(
            parse_netns("inode:4026531840"),
            Ok(NetnsSpec::Inode(4026531840))
        );
        assert_eq!(
            parse_netns("/proc/1/ns/net"),
            Ok(NetnsSpec::Path("/proc/1/ns/net".into()))
        );
        assert!(parse_netns("inode:x").is_err());
        assert!(parse_netns("").is_err());
    }

    #[test]
    fn toggles_and_enums() {
        let cli = parse(&[
            "--output-meta=false",
            "--output-tuple",
            "--timestamp",
            "relative",
        ])
        .unwrap();
        assert!(!cli.output_meta && cli.output_tuple);
        assert_eq!(cli.timestamp, TimestampChoice::Relative);
        let cli = parse(&["--backend", "kprobe-multi", "--output-json"]).unwrap();
        assert_eq!(cli.backend, BackendChoice::KprobeMulti);
        assert!(cli.output_json);
        assert!(parse(&["--backend", "fentry"]).is_err());
        assert!(parse(&["--ringbuf-size", "5000"]).is_err());
        assert_eq!(
            parse(&["--ringbuf-size", "0x10000"]).unwrap().ringbuf_size,
            0x10000
        );
        assert_eq!(parse(&[]).unwrap().set_percpu_buf, 4096);
        assert_eq!(
            parse(&["--set-percpu-buf", "8192"]).unwrap().set_percpu_buf,
            8192
        );
        assert!(parse(&["--set-percpu-buf", "8"]).is_err());
        assert!(parse(&["--set-percpu-buf", "65536"]).is_err());
    }
}

/// Property tests of the value parsers: what they accept is exactly what they document, the
/// value read is the value written, and no input makes them panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// `n` as a user may write it: decimal, `0x…` or `0X…` hex.
    fn written(n: u32, form: u8) -> String {
        match form % 3 {
            0 => n.to_string(),
            1 => format!("{n:#x}"),
            _ => format!("0X{n:X}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = parse_mark(&s);
            let _ = parse_netns(&s);
            let _ = parse_percpu_buf(&s);
            let _ = parse_ringbuf_size(&s);
            let _ = Cli::try_parse_from(["pwru-rs", "--filter-mark", &s, "--filter-netns", &s]);
        }

        #[test]
        fn mark_reads_back(mark in any::<u32>(), mask in any::<u32>(), f1 in any::<u8>(), f2 in any::<u8>()) {
            let alone = parse_mark(&written(mark, f1));
            prop_assert_eq!(alone, Ok(MarkFilter { mark, mask: u32::MAX }));
            let with_mask = parse_mark(&format!("{}/{}", written(mark, f1), written(mask, f2)));
            if mark & !mask == 0 {
                prop_assert_eq!(with_mask, Ok(MarkFilter { mark, mask }));
            } else {
                // Bits outside the mask could never match: refused, not silently masked.
                prop_assert!(with_mask.is_err());
            }
        }

        #[test]
        fn mark_beyond_32_bits_is_refused(n in (1u64 << 32)..) {
            prop_assert!(parse_mark(&n.to_string()).is_err());
            let hex = format!("{n:#x}");
            prop_assert!(parse_mark(&hex).is_err());
        }

        #[test]
        fn netns_reads_back(inode in any::<u32>(), path in "/[^\\x00]{0,64}") {
            prop_assert_eq!(parse_netns(&format!("inode:{inode}")), Ok(NetnsSpec::Inode(inode)));
            prop_assert_eq!(parse_netns(&path), Ok(NetnsSpec::Path(PathBuf::from(&path))));
        }

        #[test]
        fn netns_inode_must_be_a_32_bit_number(s in "[^0-9+].*|[1-9][0-9]{10,19}") {
            let arg = format!("inode:{s}");
            prop_assert!(parse_netns(&arg).is_err());
        }

        #[test]
        fn sizes_accept_exactly_their_range(n in any::<u32>(), shift in 0u32..32, form in any::<u8>()) {
            let ring = parse_ringbuf_size(&written(n, form));
            prop_assert_eq!(ring.is_ok(), n >= 4096 && n.is_power_of_two());
            let power = 1u32 << shift;
            prop_assert_eq!(parse_ringbuf_size(&written(power, form)).ok(), (power >= 4096).then_some(power));
            let buf = parse_percpu_buf(&written(n, form));
            prop_assert_eq!(buf.ok(), (64..=MAX_PERCPU_BUF).contains(&n).then_some(n));
        }

        #[test]
        fn sizes_through_the_command_line(n in any::<u32>()) {
            let cli = Cli::try_parse_from(["pwru-rs", "--ringbuf-size", &n.to_string()]);
            prop_assert_eq!(cli.map(|c| c.ringbuf_size).ok(), (n >= 4096 && n.is_power_of_two()).then_some(n));
        }
    }
}
