//! One tracing session: read BTF, pick the backend, load and attach, print events until stopped,
//! detach and report.

use std::{fs::File, io::Write, path::PathBuf, time::Instant};

use anyhow::{bail, Context};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use pwru_rs_common::{Config, Event, FILTER_IFINDEX, FILTER_MARK, FILTER_NETNS, FILTER_PCAP};
use regex::Regex;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    backend,
    btf::{KernelBtf, SkbFunction, SkbTracepoint},
    cli::{BackendChoice, Cli},
    events::{self, Sink, StopReason},
    filter,
    ksym::SymbolFiles,
    loader::{self, EVENTS_MAP, LOST_MAP},
    netns::Netns,
    output,
    ready::{ReadyFile, ReadyInfo},
};

const DEFAULT_KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn run(cli: &Cli) -> anyhow::Result<()> {
    // libpcap's verdict on the expression comes first: a typo must not cost a BTF parse.
    let pcap_filter = filter::compile(&cli.pcap_expression())?;
    check_privileges()?;

    let btf_path = cli
        .kernel_btf
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KERNEL_BTF));
    // The kprobe backends need kallsyms and ftrace's function list: read them while BTF parses.
    let symbol_files = match cli.backend {
        BackendChoice::Tracepoint => None,
        BackendChoice::Kprobe | BackendChoice::KprobeMulti => {
            Some(SymbolFiles::read_in_background())
        }
        BackendChoice::Auto => {
            backend::kprobe::pmu_type().map(|_| SymbolFiles::read_in_background())
        }
    };
    let started = Instant::now();
    let btf = KernelBtf::from_file(&btf_path)
        .with_context(|| format!("reading kernel BTF {}", btf_path.display()))?;
    let offsets = btf
        .offsets()
        .context("kernel BTF lacks a field pwru-rs reads")?;
    let tracepoints = btf.skb_tracepoints();
    let functions = btf.skb_functions();
    let drop_reasons = btf.drop_reasons();
    log::debug!(
        "BTF: {} skb functions, {} skb tracepoints, offsets {offsets:?}, in {:?}",
        functions.len(),
        tracepoints.len(),
        started.elapsed()
    );
    drop(btf);

    let mut config = filter_config(cli)?;
    config.wakeup_bytes = wakeup_bytes(cli.ringbuf_size);
    if let Some(f) = &pcap_filter {
        config.filters |= FILTER_PCAP;
        log::debug!(
            "pcap filter '{}': {} + {} eBPF instructions",
            f.expression,
            f.l2.len(),
            f.l3.len()
        );
    }
    let object = filter::patch_object(loader::EBPF_OBJECT, pcap_filter.as_ref())?;
    let func_filter = cli
        .filter_func
        .as_deref()
        .map(|re| {
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
        })
        .transpose()?;

    // Open the output before touching the kernel, so a bad path attaches nothing.
    let writer: Box<dyn Write> = match &cli.output_file {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };

    let mut ebpf = loader::load(object.as_bytes(), &offsets, &config, cli.ringbuf_size)?;
    let attach_started = Instant::now();
    let (attached, backend, skipped) = attach(
        cli,
        &mut ebpf,
        object.as_bytes(),
        &functions,
        &tracepoints,
        func_filter.as_ref(),
        symbol_files,
    )?;
    log::info!(
        "attached {} {} in {:.1} ms (backend: {backend})",
        attached.len(),
        if backend == Backend::Tracepoint {
            "tracepoints"
        } else {
            "functions"
        },
        attach_started.elapsed().as_secs_f64() * 1e3
    );

    let ring = RingBuf::try_from(ebpf.take_map(EVENTS_MAP).context("no EVENTS map")?)
        .context("EVENTS map")?;
    let lost: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(ebpf.take_map(LOST_MAP).context("no LOST map")?)
            .context("LOST map")?;

    let printer = output::Printer::new(output::PrinterConfig {
        json: cli.output_json,
        timestamp: cli.timestamp,
        output_meta: cli.output_meta,
        output_tuple: cli.output_tuple,
        hooks: attached.hooks.clone(),
        drop_reasons,
    });
    let mut sink = OutputSink::new(printer, writer, cli.output_limit_lines);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the event loop")?;
    // Handlers first: a script may send SIGINT as soon as the ready file appears.
    let (mut sigint, mut sigterm) = {
        let _in_runtime = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let ready = ReadyFile::create(
        cli.ready_file.as_deref(),
        &ReadyInfo {
            backend: backend.to_string(),
            hooks: attached.len(),
            skipped,
        },
    )?;
    log::info!("listening for events... (Ctrl-C to stop)");
    let (received, why) = runtime.block_on(async {
        let stop = async {
            tokio::select! {
                _ = sigint.recv() => {},
                _ = sigterm.recv() => {},
            }
        };
        events::run(ring, &mut sink, stop)
            .await
            .map_err(anyhow::Error::from)
    })?;

    let hooks = attached.len();
    let took = attached.detach(cli.filter_kprobe_batch as usize, true);
    log::info!(
        "detached {hooks} hooks in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    let lost = events::lost_events(&lost)?;
    drop(ready);
    let why = match why {
        StopReason::Signal => "stopped",
        StopReason::Limit => "output limit reached",
    };
    log::info!("{why}: {received} events received, {lost} lost (ring buffer full)");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Tracepoint,
    Kprobe,
    KprobeMulti,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Tracepoint => "tracepoint",
            Backend::Kprobe => "kprobe",
            Backend::KprobeMulti => "kprobe-multi",
        })
    }
}

/// Attaches with the backend asked for; `auto` probes the kernel: kprobe-multi, else kprobe,
/// else tracepoint, and says why.
fn attach(
    cli: &Cli,
    ebpf: &mut aya::Ebpf,
    object: &[u8],
    functions: &[SkbFunction],
    tracepoints: &[SkbTracepoint],
    func_filter: Option<&Regex>,
    symbol_files: Option<SymbolFiles>,
) -> anyhow::Result<(backend::Attached, Backend, usize)> {
    let select = || {
        let files = symbol_files.unwrap_or_else(SymbolFiles::read_in_background);
        backend::select_functions(functions, func_filter, files)
    };
    let batch = cli.filter_kprobe_batch as usize;
    let tracepoint = |ebpf: &mut aya::Ebpf| -> anyhow::Result<_> {
        Ok((
            backend::tracepoint::attach(ebpf, tracepoints, func_filter)?,
            Backend::Tracepoint,
            0,
        ))
    };
    let kprobe = |ebpf: &mut aya::Ebpf, selection: backend::Selection| -> anyhow::Result<_> {
        let (attached, skipped) = backend::kprobe::attach(ebpf, selection, batch, true)?;
        log::info!("kprobe: {skipped} functions could not be probed (not traceable, blacklisted or refused)");
        Ok((attached, Backend::Kprobe, skipped))
    };
    let kprobe_multi = |ebpf: &mut aya::Ebpf, selection: &backend::Selection| {
        log::info!(
            "kprobe-multi: {} functions, {} not probeable here",
            selection.targets.len(),
            selection.skipped
        );
        backend::kprobe_multi::attach(ebpf, object, selection)
            .map(|a| (a, Backend::KprobeMulti, selection.skipped))
    };
    match cli.backend {
        BackendChoice::Tracepoint => tracepoint(ebpf),
        BackendChoice::Kprobe => kprobe(ebpf, select()?),
        BackendChoice::KprobeMulti => {
            let selection = select()?;
            Ok(kprobe_multi(ebpf, &selection)?)
        }
        BackendChoice::Auto => {
            if backend::kprobe::pmu_type().is_none() {
                log::info!("backend: tracepoint (this kernel has no kprobes)");
                return tracepoint(ebpf);
            }
            let selection = select()?;
            match kprobe_multi(ebpf, &selection) {
                Ok(done) => {
                    log::info!("backend: kprobe-multi (supported by this kernel)");
                    Ok(done)
                }
                Err(e) if e.unsupported() => {
                    log::info!("backend: kprobe (kprobe-multi unavailable: {e})");
                    kprobe(ebpf, selection)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// The kernel programs need CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN); say so up front rather than
/// fail on the first bpf() call with a bare EPERM.
fn check_privileges() -> anyhow::Result<()> {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| cap_eff & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!("pwru-rs needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load its kernel programs")
}

/// Bytes waiting in the ring buffer before the kernel wakes the reader: a quarter of the ring,
/// at most 256 KiB (a flood still wakes it every few milliseconds).
fn wakeup_bytes(ringbuf_size: u32) -> u32 {
    (ringbuf_size / 4).min(256 << 10)
}

/// Builds the kernel-side meta filters from the command line.
fn filter_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::default();
    let netns = match &cli.filter_netns {
        Some(spec) => {
            let ns = Netns::resolve(spec).context("--filter-netns")?;
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

/// Formats events into a buffer and writes it out once per drained batch.
struct OutputSink {
    printer: output::Printer,
    writer: Box<dyn Write>,
    buf: Vec<u8>,
    remaining: Option<u64>,
}

impl OutputSink {
    fn new(printer: output::Printer, writer: Box<dyn Write>, limit: Option<u64>) -> Self {
        let mut buf = Vec::with_capacity(1 << 16);
        printer.write_header(&mut buf);
        // pwru's convention: 0 means no limit.
        Self {
            printer,
            writer,
            buf,
            remaining: limit.filter(|&n| n > 0),
        }
    }
}

impl Sink for OutputSink {
    fn consume(&mut self, event: &Event) -> std::io::Result<bool> {
        self.printer.write_event(event, &mut self.buf);
        if self.buf.len() >= 1 << 16 {
            self.writer.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(match &mut self.remaining {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n > 0
            }
            None => true,
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.write_all(&self.buf)?;
        self.buf.clear();
        self.writer.flush()
    }
}
