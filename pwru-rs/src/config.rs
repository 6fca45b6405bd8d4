//! Command line → what a session needs, checked and resolved: the pcap filter compiled, the
//! regex built, netns and interface looked up, the kernel programs' configuration assembled.
//! Everything that can be wrong with the input fails here, before the kernel is touched.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use pwru_rs_common::{
    contract, FILTER_IFINDEX, FILTER_MARK, FILTER_NETNS, FILTER_PCAP, FILTER_SKB_EXPR,
    FILTER_TRACK_SKB, FILTER_TRACK_SKB_BY_STACKID, FILTER_TRACK_XDP, FILTER_TUNNEL_L2,
    FILTER_TUNNEL_L3, FILTER_XDP_EXPR, OUTPUT_CALLER, OUTPUT_NETFILTER, OUTPUT_PACKET,
    OUTPUT_SHINFO, OUTPUT_SKB, OUTPUT_SKB_CB, OUTPUT_SKB_METADATA, OUTPUT_STACK, OUTPUT_TCP_FLAGS,
    OUTPUT_TIMESTAMP, OUTPUT_TUNNEL, OUTPUT_XDP_METADATA, STACK_DEPTH, STACK_MAP_SIZE,
};
use regex::Regex;

use crate::{
    backend::bpfprog::ProgramKind,
    btf::{KernelBtf, RdonlyCast},
    cli::{BackendChoice, Cli, TimestampChoice},
    expr,
    filter::{self, PcapFilter},
    netns::Netns,
    object::{Constant, Injection, MapValueSize, Patches},
    output::{
        rotate::{Rotation, MEGABYTE},
        PrinterConfig,
    },
};

/// Where the running kernel exposes its BTF.
pub const DEFAULT_KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How events are shown.
pub struct OutputConfig {
    pub json: bool,
    pub timestamp: TimestampChoice,
    pub meta: bool,
    pub tuple: bool,
    pub tcp_flags: bool,
    pub skb_cb: bool,
    /// `--output-tunnel`.
    pub tunnel: bool,
    /// `--output-packet-bytes`.
    pub packet_bytes: bool,
    /// `--output-stack`, `--output-caller`.
    pub stack: bool,
    pub caller: bool,
    /// `--output-netns-names`, and the text column's width.
    pub netns_names: bool,
    pub netns_names_max_length: usize,
    /// `None`: stdout.
    pub file: Option<PathBuf>,
    /// `--output-pcap`.
    pub pcap: Option<PathBuf>,
    /// `--summary`.
    pub summary: bool,
    /// `--output-group-by-skb`: (max packets held, quiet timeout in ns).
    pub group: Option<(usize, u64)>,
    /// When `file` rotates.
    pub rotation: Rotation,
    /// Stop after this many events (0: no limit, as pwru).
    pub limit: Option<u64>,
}

impl OutputConfig {
    /// The output flags as they are (the same whether events come from the kernel or a file).
    pub fn from_cli(cli: &Cli) -> Self {
        OutputConfig {
            json: cli.output_json,
            timestamp: cli.timestamp,
            meta: cli.output_meta,
            tuple: cli.output_tuple,
            tcp_flags: cli.output_tcp_flags,
            skb_cb: cli.output_skb_cb,
            tunnel: cli.output_tunnel,
            packet_bytes: cli.output_packet_bytes,
            stack: cli.output_stack,
            caller: cli.output_caller,
            netns_names: cli.output_netns_names,
            netns_names_max_length: cli.netns_names_max_length.into(),
            file: cli.output_file.clone(),
            pcap: cli.output_pcap.clone(),
            summary: cli.summary,
            group: cli.output_group_by_skb.then_some((
                cli.output_group_max_packets as usize,
                cli.output_group_timeout_ms * 1_000_000,
            )),
            rotation: Rotation {
                max_size: cli.output_file_max_size * MEGABYTE,
                max_backups: cli.output_file_max_backups,
                max_age: (cli.output_file_max_age > 0)
                    .then(|| Duration::from_secs(u64::from(cli.output_file_max_age) * 86_400)),
                compress: cli.output_file_compress,
            },
            limit: cli.output_limit_lines,
        }
    }

    pub fn printer_config(&self) -> PrinterConfig {
        PrinterConfig {
            json: self.json,
            timestamp: self.timestamp,
            output_meta: self.meta,
            output_tuple: self.tuple,
            output_skb_cb: self.skb_cb,
            output_caller: self.caller,
            output_tunnel: self.tunnel,
            packet_bytes: self.packet_bytes,
            netns_names_width: self.netns_names.then_some(self.netns_names_max_length),
        }
    }
}

pub struct Config {
    pub backend: BackendChoice,
    /// `--filter-track-skb`.
    pub track_skb: bool,
    /// `--filter-track-skb-by-stackid` (also implied by `--filter-non-skb-funcs`).
    pub track_by_stack: bool,
    /// `--filter-non-skb-funcs`.
    pub non_skb_funcs: Vec<String>,
    /// `--filter-trace-tc`, `--filter-trace-xdp`.
    pub trace_programs: Vec<ProgramKind>,
    /// `--filter-track-bpf-helpers`.
    pub track_bpf_helpers: bool,
    /// `--output-bpfmap`.
    pub output_bpfmap: bool,
    pub kprobe_batch: usize,
    pub kernel_btf: PathBuf,
    /// `--kmods`, `--all-kmods`: which modules' functions are probed too.
    pub kmods: Kmods,
    pub pcap: Option<PcapFilter>,
    /// `--filter-skb-expr` and `--output-skb-metadata`, as written: resolved against the
    /// kernel's BTF when it is read ([`Expressions::resolve`]).
    pub skb_expr: Option<String>,
    pub skb_metadata: Vec<String>,
    /// `--filter-xdp-expr` and `--output-xdp-metadata`, the same over `struct xdp_buff`.
    pub xdp_expr: Option<String>,
    pub xdp_metadata: Vec<String>,
    /// `--filter-tunnel-pcap-l2` / `-l3`, translated (the stubs' code).
    pub tunnel_filters: Vec<(contract::Stub, Vec<u8>)>,
    /// `--filter-func`, anchored: the whole name must match.
    pub func_filter: Option<Regex>,
    /// The kernel programs' read-only configuration (filters, wake-up threshold).
    pub kernel: pwru_rs_common::Config,
    pub ringbuf_size: u32,
    /// Entries of the map of tracked skbs (1, unused, without `--filter-track-skb`).
    pub track_skb_map_size: u32,
    pub output: OutputConfig,
    pub ready_file: Option<PathBuf>,
    pub stats_file: Option<PathBuf>,
}

impl Config {
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        // libpcap's verdict on the expression comes first: a typo must not cost a BTF parse.
        let pcap = filter::compile(&cli.pcap_expression())?;
        // So are the expressions' syntax and count (their fields need the kernel's BTF).
        let skb_expr = filter_expression(cli.filter_skb_expr.as_deref())?;
        let skb_metadata = metadata_expressions(&cli.output_skb_metadata, expr::SKB)?;
        let xdp_expr = filter_expression(cli.filter_xdp_expr.as_deref())?;
        let xdp_metadata = metadata_expressions(&cli.output_xdp_metadata, expr::XDP)?;
        if (xdp_expr.is_some() || !xdp_metadata.is_empty()) && !cli.filter_trace_xdp {
            bail!("--filter-xdp-expr and --output-xdp-metadata apply to the packets of traced XDP programs: add --filter-trace-xdp");
        }
        let mut tunnel_filters = Vec::new();
        for (expr, view, stub, bit) in [
            (
                &cli.filter_tunnel_pcap_l2,
                filter::View::Ethernet,
                contract::TUNNEL_L2_STUB,
                FILTER_TUNNEL_L2,
            ),
            (
                &cli.filter_tunnel_pcap_l3,
                filter::View::Raw,
                contract::TUNNEL_L3_STUB,
                FILTER_TUNNEL_L3,
            ),
        ] {
            if let Some(code) = filter::compile_view(expr.as_deref().unwrap_or(""), view)? {
                tunnel_filters.push((stub, filter::to_bytes(&code), bit));
            }
        }
        check_privileges()?;
        let func_filter = cli.filter_func.as_deref().map(func_regex).transpose()?;
        let mut kernel = meta_filters(cli)?;
        kernel.wakeup_bytes = wakeup_bytes(cli.ringbuf_size);
        for (on, bit) in [
            (cli.output_tcp_flags, OUTPUT_TCP_FLAGS),
            (cli.output_skb_cb, OUTPUT_SKB_CB),
            (cli.output_skb, OUTPUT_SKB),
            (cli.output_skb_shared_info, OUTPUT_SHINFO),
            (cli.output_stack, OUTPUT_STACK),
            (cli.output_caller, OUTPUT_CALLER),
            (
                cli.output_pcap.is_some() || cli.output_packet_bytes,
                OUTPUT_PACKET,
            ),
            (!skb_metadata.is_empty(), OUTPUT_SKB_METADATA),
            (!xdp_metadata.is_empty(), OUTPUT_XDP_METADATA),
            (cli.output_tunnel, OUTPUT_TUNNEL),
            (cli.output_netfilter, OUTPUT_NETFILTER),
            (
                cli.timestamp != TimestampChoice::None
                    || cli.output_pcap.is_some()
                    || cli.output_group_by_skb
                    || cli.summary,
                OUTPUT_TIMESTAMP,
            ),
        ] {
            if on {
                kernel.outputs |= bit;
            }
        }
        // Without the option the packet buffers shrink to nothing too.
        kernel.snaplen = if cli.output_pcap.is_some() || cli.output_packet_bytes {
            cli.output_pcap_snaplen
        } else {
            8
        };
        // Without dumps the buffers shrink to nothing (the programs never touch them).
        kernel.dump_buf = if kernel.outputs & (OUTPUT_SKB | OUTPUT_SHINFO) != 0 {
            cli.set_percpu_buf
        } else {
            8
        };
        if cli.filter_track_skb {
            kernel.filters |= FILTER_TRACK_SKB;
            if cli.filter_trace_xdp {
                kernel.filters |= FILTER_TRACK_XDP;
            }
        }
        let trace_programs = [
            (cli.filter_trace_tc, ProgramKind::Tc),
            (cli.filter_trace_xdp, ProgramKind::Xdp),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect::<Vec<_>>();
        {
            use crate::backend::bpf_helpers::{HelperError, FLAG, MAP_FLAG};
            for (on, flag) in [
                (cli.filter_track_bpf_helpers, FLAG),
                (cli.output_bpfmap, MAP_FLAG),
            ] {
                if on && trace_programs.is_empty() {
                    bail!("{}", HelperError::NoPrograms(flag));
                }
            }
            if cli.filter_track_bpf_helpers && cli.backend == BackendChoice::Tracepoint {
                bail!("{FLAG} needs a kprobe backend");
            }
            // The traced programs note their packet per CPU for either.
            if cli.filter_track_bpf_helpers || cli.output_bpfmap {
                kernel.filters |= pwru_rs_common::FILTER_TRACK_BPF_HELPERS;
            }
            if cli.output_bpfmap {
                kernel.outputs |= pwru_rs_common::OUTPUT_BPF_MAP;
            }
        }
        let non_skb_funcs: Vec<String> = cli
            .filter_non_skb_funcs
            .iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        let track_by_stack = cli.filter_track_skb_by_stackid || !non_skb_funcs.is_empty();
        if track_by_stack {
            kernel.filters |= FILTER_TRACK_SKB_BY_STACKID;
            if cli.backend == BackendChoice::Tracepoint {
                bail!("--filter-track-skb-by-stackid and --filter-non-skb-funcs need a kprobe backend (a tracepoint has no stack pointer to go by)");
            }
        }
        if skb_expr.is_some() {
            kernel.filters |= FILTER_SKB_EXPR;
        }
        if xdp_expr.is_some() {
            kernel.filters |= FILTER_XDP_EXPR;
        }
        for (_, _, bit) in &tunnel_filters {
            kernel.filters |= bit;
        }
        if let Some(f) = &pcap {
            kernel.filters |= FILTER_PCAP;
            log::debug!(
                "pcap filter '{}': {} + {} eBPF instructions",
                f.expression,
                f.l2.len(),
                f.l3.len()
            );
        }
        Ok(Self {
            backend: cli.backend,
            track_skb: cli.filter_track_skb,
            trace_programs,
            track_bpf_helpers: cli.filter_track_bpf_helpers,
            output_bpfmap: cli.output_bpfmap,
            kprobe_batch: cli.filter_kprobe_batch as usize,
            kmods: if cli.all_kmods {
                Kmods::All
            } else {
                Kmods::Named(
                    cli.kmods
                        .iter()
                        .map(|m| m.trim().replace('-', "_"))
                        .filter(|m| !m.is_empty())
                        .collect(),
                )
            },
            kernel_btf: cli
                .kernel_btf
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KERNEL_BTF)),
            pcap,
            skb_expr,
            skb_metadata,
            xdp_expr,
            xdp_metadata,
            tunnel_filters: tunnel_filters
                .into_iter()
                .map(|(stub, code, _)| (stub, code))
                .collect(),
            func_filter,
            kernel,
            ringbuf_size: cli.ringbuf_size,
            track_by_stack,
            non_skb_funcs,
            track_skb_map_size: if cli.filter_track_skb || track_by_stack {
                cli.filter_track_skb_map_size
            } else {
                1
            },
            output: OutputConfig::from_cli(cli),
            ready_file: cli.ready_file.clone(),
            stats_file: cli.stats_file.clone(),
        })
    }

    /// Everything to change in the kernel object before load: injected code (the pcap filter,
    /// the resolved expressions), buffer sizes, with `direct` the kfunc calls of direct reads,
    /// and the read-only globals' values as `constants`.
    pub fn patches(
        &self,
        expressions: &Expressions,
        direct: Option<RdonlyCast>,
        constants: Vec<Constant>,
    ) -> Patches {
        let mut injections = self
            .pcap
            .as_ref()
            .map(|pcap| pcap.injections_with(direct))
            .unwrap_or_default();
        injections.extend(
            expressions
                .injections
                .iter()
                .chain(&self.tunnel_filters)
                .map(|(stub, code)| Injection {
                    stub: *stub,
                    code: code.clone(),
                }),
        );
        if crate::fault::verifier_reject() {
            for injection in &mut injections {
                injection.code = crate::fault::REJECTED_PROGRAM.to_vec();
            }
        }
        Patches {
            injections,
            map_value_sizes: vec![
                MapValueSize {
                    map: contract::DUMPS_MAP,
                    bytes: self.kernel.dump_buf,
                },
                MapValueSize {
                    map: contract::PACKETS_MAP,
                    bytes: self.kernel.snaplen,
                },
                MapValueSize {
                    map: contract::STACKS_MAP,
                    bytes: STACK_DEPTH * 8,
                },
            ],
            rdonly_cast: direct.map(|c| c.func_id),
            constants,
        }
    }

    /// Entries of the maps whose size is set at load; maps an option leaves unused get one.
    pub fn map_sizes(&self) -> Vec<(&'static str, u32)> {
        let stacks = self.wants_stacks();
        let stack_track = if self.track_by_stack {
            self.track_skb_map_size
        } else {
            1
        };
        vec![
            (contract::EVENTS_MAP, self.ringbuf_size),
            (contract::TRACKED_MAP, self.track_skb_map_size),
            (contract::STACK_SKB_MAP, stack_track),
            (contract::SKB_STACK_MAP, stack_track),
            (
                contract::STACKS_MAP,
                if stacks { STACK_MAP_SIZE } else { 1 },
            ),
        ]
    }

    /// Whether events carry stack ids (for `--output-stack`, or a tracepoint's caller).
    pub fn wants_stacks(&self) -> bool {
        self.kernel.outputs & (OUTPUT_STACK | OUTPUT_CALLER) != 0
    }

    /// Which dumps the kernel programs print.
    pub fn dumps(&self) -> (bool, bool) {
        (
            self.kernel.outputs & OUTPUT_SKB != 0,
            self.kernel.outputs & OUTPUT_SHINFO != 0,
        )
    }
}

/// Where the kernel publishes vmlinux's and each loaded module's BTF.
pub const KERNEL_BTF_DIR: &str = "/sys/kernel/btf";

/// Kernel modules whose functions are probed besides vmlinux's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kmods {
    /// `--kmods`: these (none without the option).
    Named(Vec<String>),
    /// `--all-kmods`.
    All,
}

impl Kmods {
    /// The split BTF files of the modules, in `dir`; a named module without one (not loaded,
    /// or built without BTF) is warned about.
    pub fn btf_files(&self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Kmods::Named(names) => names
                .iter()
                .filter_map(|m| {
                    let path = dir.join(m);
                    if path.is_file() {
                        Some(path)
                    } else {
                        log::warn!(
                            "--kmods: module {m} is not loaded (no {}): its functions are not traced",
                            path.display()
                        );
                        None
                    }
                })
                .collect(),
            Kmods::All => {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|entries| {
                        entries
                            .filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "vmlinux"))
                            .collect()
                    })
                    .unwrap_or_else(|e| {
                        log::warn!("--all-kmods: cannot list {}: {e}", dir.display());
                        Vec::new()
                    });
                files.sort();
                files
            }
        }
    }
}

/// `--filter-skb-expr` and `--output-skb-metadata` resolved against the kernel's BTF and
/// compiled: what to inject, and how to read the values back.
#[derive(Debug, Default)]
pub struct Expressions {
    pub injections: Vec<(contract::Stub, Vec<u8>)>,
    /// `--output-skb-metadata`, `--output-xdp-metadata`: the values, in order.
    pub skb_metadata: Vec<expr::Metadata>,
    pub xdp_metadata: Vec<expr::Metadata>,
    /// `Config::skb_metadata_words`, `Config::xdp_metadata_words` for the kernel side.
    pub skb_metadata_words: u32,
    pub xdp_metadata_words: u32,
}

impl Expressions {
    /// Resolves and compiles the configured expressions (nothing when there are none), with
    /// direct loads where the kernel allows them (`direct`).
    pub fn resolve(
        config: &Config,
        btf: &KernelBtf,
        direct: Option<RdonlyCast>,
    ) -> anyhow::Result<Self> {
        let mut out = Expressions::default();
        for (e, root, stub, flag) in [
            (
                &config.skb_expr,
                expr::SKB,
                contract::SKB_EXPR_STUB,
                "--filter-skb-expr",
            ),
            (
                &config.xdp_expr,
                expr::XDP,
                contract::XDP_EXPR_STUB,
                "--filter-xdp-expr",
            ),
        ] {
            if let Some(e) = e {
                let f = expr::filter(btf, root, e)?;
                let code = expr::codegen::filter(&f, direct).context(flag)?;
                log::debug!("{flag} '{e}': {f:?}, {} eBPF instructions", code.len());
                out.injections.push((stub, filter::to_bytes(&code)));
            }
        }
        for (exprs, root, stub, flag) in [
            (
                &config.skb_metadata,
                expr::SKB,
                contract::SKB_METADATA_STUB,
                "--output-skb-metadata",
            ),
            (
                &config.xdp_metadata,
                expr::XDP,
                contract::XDP_METADATA_STUB,
                "--output-xdp-metadata",
            ),
        ] {
            if exprs.is_empty() {
                continue;
            }
            let metadata = expr::metadata(btf, root, exprs)?;
            let code = expr::codegen::metadata(&metadata, direct).context(flag)?;
            log::debug!("{flag}: {metadata:?}, {} eBPF instructions", code.len());
            let words = metadata.iter().map(|m| m.words).sum();
            out.injections.push((stub, filter::to_bytes(&code)));
            if root.name == expr::XDP.name {
                (out.xdp_metadata, out.xdp_metadata_words) = (metadata, words);
            } else {
                (out.skb_metadata, out.skb_metadata_words) = (metadata, words);
            }
        }
        Ok(out)
    }
}

/// `--filter-skb-expr`/`--filter-xdp-expr` trimmed (`None` when empty), its syntax checked.
fn filter_expression(e: Option<&str>) -> anyhow::Result<Option<String>> {
    let e = e.map(str::trim).filter(|e| !e.is_empty());
    if let Some(e) = e {
        expr::parse_filter(e)?;
    }
    Ok(e.map(str::to_owned))
}

/// `--output-skb-metadata`/`--output-xdp-metadata`: the non-empty expressions, their count and
/// syntax checked.
fn metadata_expressions(exprs: &[String], root: expr::Root) -> anyhow::Result<Vec<String>> {
    let exprs: Vec<String> = exprs
        .iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if exprs.len() > expr::MAX_METADATA {
        return Err(expr::ExprError::TooMany {
            kind: root.name,
            count: exprs.len(),
        }
        .into());
    }
    for e in &exprs {
        expr::parse_access(e)?;
    }
    Ok(exprs)
}

/// `--filter-func`: the whole name must match.
pub(crate) fn func_regex(re: &str) -> anyhow::Result<Regex> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        // regex's message draws a caret diagram over several lines; keep its last line.
        let message = e.to_string();
        let reason = message
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        anyhow::anyhow!("invalid --filter-func regex '{re}': {reason}")
    })
}

/// The kernel programs need CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN); say so up front rather than
/// fail on the first bpf() call with a bare EPERM.
fn check_privileges() -> anyhow::Result<()> {
    let missing = missing_bpf_capabilities();
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "pwru-rs lacks {} to load and attach its kernel programs (it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN: run it as root)",
        missing.join(" and ")
    )
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// This process's effective capabilities (`CapEff` of /proc/self/status).
fn effective_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// The capabilities this process lacks to load and attach the kernel programs (none with
/// CAP_SYS_ADMIN, or with both CAP_BPF and CAP_PERFMON).
fn missing_bpf_capabilities() -> Vec<&'static str> {
    missing_of(effective_capabilities())
}

fn missing_of(cap_eff: u64) -> Vec<&'static str> {
    let has = |cap: u32| cap_eff & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    [("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON)]
        .into_iter()
        .filter(|&(_, cap)| !has(cap))
        .map(|(name, _)| name)
        .collect()
}

/// Whether this process may load and attach the kernel programs.
pub fn has_bpf_privileges() -> bool {
    missing_bpf_capabilities().is_empty()
}

/// Bytes waiting in the ring buffer before the kernel wakes the reader: a quarter of the ring,
/// at most 256 KiB (a flood still wakes it every few milliseconds).
fn wakeup_bytes(ringbuf_size: u32) -> u32 {
    (ringbuf_size / 4).min(256 << 10)
}

/// The kernel-side meta filters from the command line.
fn meta_filters(cli: &Cli) -> anyhow::Result<pwru_rs_common::Config> {
    let mut config = pwru_rs_common::Config::default();
    let pod = match &cli.filter_pod {
        Some(spec) => Some(crate::cli::NetnsSpec::Path(crate::pod::netns_path(spec)?)),
        None => None,
    };
    let netns = match pod.as_ref().or(cli.filter_netns.as_ref()) {
        Some(spec) => {
            let flag = if pod.is_some() {
                "--filter-pod"
            } else {
                "--filter-netns"
            };
            let ns = Netns::resolve(spec).context(flag)?;
            config.filters |= FILTER_NETNS;
            config.netns = ns.inode;
            Some(ns)
        }
        None => None,
    };
    if let Some(mark) = cli.filter_mark {
        config.filters |= FILTER_MARK;
        config.mark = mark.mark;
        config.mark_mask = mark.mask;
    }
    if let Some(name) = &cli.filter_ifname {
        // An ifindex is only unique within its netns: filter on both.
        let ns = match netns {
            Some(ns) => ns,
            None => Netns::current().context("--filter-ifname")?,
        };
        config.ifindex = ns.ifindex(name).context("--filter-ifname")?;
        config.filters |= FILTER_IFINDEX | FILTER_NETNS;
        config.netns = ns.inode;
    }
    Ok(config)
}

#[cfg(test)]
mod kmods_tests {
    use super::*;

    #[test]
    fn missing_capabilities_are_named() {
        let bit = |c: u32| 1u64 << c;
        assert!(missing_of(bit(CAP_SYS_ADMIN)).is_empty());
        assert!(missing_of(bit(CAP_BPF) | bit(CAP_PERFMON)).is_empty());
        assert_eq!(missing_of(bit(CAP_BPF)), ["CAP_PERFMON"]);
        assert_eq!(missing_of(0), ["CAP_BPF", "CAP_PERFMON"]);
    }

    #[test]
    fn module_btf_files_are_found_or_warned_about() {
        let dir = std::env::temp_dir().join(format!("pwru-kmods-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vmlinux", "veth", "nf_conntrack"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let named = Kmods::Named(vec!["veth".into(), "absent".into()]).btf_files(&dir);
        assert_eq!(named, vec![dir.join("veth")]);
        let all = Kmods::All.btf_files(&dir);
        assert_eq!(all, vec![dir.join("nf_conntrack"), dir.join("veth")]);
        assert!(Kmods::Named(vec![]).btf_files(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
