//! One tracing session, stage by stage: kernel facts from BTF, the object patched, loaded and
//! attached, events read until stopped, then detach and report. Each stage is one call here;
//! a feature plugs into the stage it needs.

use std::{io::Write, path::Path, time::Instant};

use anyhow::{bail, Context};
use aya::maps::{MapData, PerCpuArray, RingBuf, StackTraceMap};
use pwru_rs_common::{contract, Offsets};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    backend::{self, bpfprog::ProgramKind, AttachRequest, Attached, Hookable},
    btf::{DropReasons, KernelBtf, RdonlyCast, SkbFunction, SkbTracepoint},
    config::{Config, Expressions, OutputConfig},
    events::{
        self,
        stacks::{Stacks, Symbols},
        Enricher, MetadataField, Pipeline, StopReason,
    },
    loader,
    netns_names::{self, NetnsNames},
    object,
    output::{group::Grouper, pcap::PcapWriter, OutputSink, Printer, WallClock},
    ready::{ReadyFile, ReadyInfo, RunStats},
};

/// What the kernel's BTF says, read once at start.
pub struct KernelFacts {
    pub offsets: Offsets,
    pub functions: Vec<SkbFunction>,
    pub tracepoints: Vec<SkbTracepoint>,
    pub drop_reasons: DropReasons,
    /// BTF ids of `struct sk_buff` / `struct skb_shared_info`, when their dumps are asked for.
    pub skb_btf_id: u32,
    pub shinfo_btf_id: u32,
    /// With `--filter-track-skb`: the functions clones are followed through.
    pub copy_functions: Option<Vec<backend::track::CopyFunction>>,
    /// `--filter-skb-expr`, `--output-skb-metadata`, resolved and compiled.
    pub expressions: Expressions,
    /// `--output-netfilter`: where `nft_do_chain` is.
    pub netfilter: Option<backend::netfilter::Target>,
    /// `--filter-track-bpf-helpers`: the calls of the traced programs to probe (offsets from
    /// `__bpf_call_base`; the map operations left out with `--output-bpfmap`, which has them).
    pub helper_calls: Vec<i32>,
    /// `--output-bpfmap`: the map operations the traced programs call.
    pub bpf_map_ops: Vec<backend::bpf_helpers::MapOp>,
    /// Where the programs may read kernel memory by direct loads (`Config::cast_btf_id`).
    pub rdonly_cast: Option<RdonlyCast>,
}

impl KernelFacts {
    /// The kprobe-multi function table's size (`Config::func_slot_bits`): room for every skb
    /// function twice over (a name kallsyms has at several addresses takes a slot for each),
    /// on the backends that may use it; the smallest table on the others.
    fn func_slot_bits(&self, backend: crate::cli::BackendChoice) -> u32 {
        use crate::cli::BackendChoice::*;
        match backend {
            Auto | KprobeMulti => backend::func_table::slot_bits(2 * self.functions.len()),
            Kprobe | Tracepoint => 2,
        }
    }
}

/// `PWRU_RS_NO_DIRECT_READS=1`: read kernel memory with `bpf_probe_read_kernel` even where direct
/// loads work (to compare the two: `tests/direct_reads.rs` holds them to the same events).
pub const NO_DIRECT_READS: &str = "PWRU_RS_NO_DIRECT_READS";

/// `PWRU_RS_NO_CONSTANT_FOLDING=1`: the programs load their configuration and the struct offsets
/// from the read-only globals, instead of having them as immediates (`object::fold`; to compare
/// the two: `tests/direct_reads.rs` holds them to the same events).
pub const NO_CONSTANT_FOLDING: &str = "PWRU_RS_NO_CONSTANT_FOLDING";

/// What direct reads need on the running kernel, if it allows them (for tests: the session
/// decides with the BTF it has read).
pub fn direct_reads_here() -> Option<RdonlyCast> {
    let path = Path::new(crate::config::DEFAULT_KERNEL_BTF);
    rdonly_cast(&KernelBtf::from_file(path).ok()?, path)
}

/// Whether the programs may read by direct loads here: only with the running kernel's BTF (the
/// ids go into the programs), and where a probe program with the cast loads.
fn rdonly_cast(btf: &KernelBtf, path: &Path) -> Option<RdonlyCast> {
    if path != Path::new(crate::config::DEFAULT_KERNEL_BTF)
        || std::env::var_os(NO_DIRECT_READS).is_some()
    {
        return None;
    }
    let cast = btf.rdonly_cast()?;
    let allowed = backend::support::rdonly_cast(cast);
    log::debug!(
        "direct reads (bpf_rdonly_cast): {}",
        if allowed {
            "yes"
        } else {
            "refused by the verifier"
        }
    );
    allowed.then_some(cast)
}

impl KernelFacts {
    pub fn read(path: &Path, config: &Config) -> anyhow::Result<Self> {
        let started = Instant::now();
        let modules = config
            .kmods
            .btf_files(Path::new(crate::config::KERNEL_BTF_DIR));
        let btf = KernelBtf::from_files(path, &modules)
            .with_context(|| format!("reading kernel BTF {}", path.display()))?;
        if !modules.is_empty() {
            if config.backend == crate::cli::BackendChoice::Tracepoint {
                log::info!(
                    "--kmods/--all-kmods: the tracepoint backend has no module functions to add"
                );
            }
            log::info!("module BTF read: {}", btf.modules().join(", "));
        }
        let (skb_dump, shinfo_dump) = config.dumps();
        let optional_sections = config.kernel.outputs & !pwru_rs_common::OUTPUT_TCP_FLAGS != 0;
        // Refuse before loading: the verifier's "unknown func" would be a worse message.
        if optional_sections && !btf.has_bpf_helper("ringbuf_reserve_dynptr") {
            bail!("--output-skb, --output-skb-shared-info, --output-skb-cb, --output-skb-metadata, --output-tunnel, --output-netfilter, --output-bpfmap and --output-pcap need bpf_ringbuf_reserve_dynptr (Linux 5.19+), which this kernel lacks");
        }
        if (skb_dump || shinfo_dump) && !btf.has_bpf_helper("snprintf_btf") {
            bail!("--output-skb and --output-skb-shared-info need bpf_snprintf_btf (Linux 5.10+), which this kernel lacks");
        }
        let type_id = |wanted: bool, name: &str| -> anyhow::Result<u32> {
            if !wanted {
                return Ok(0);
            }
            let id = btf.struct_id(name)?;
            anyhow::ensure!(id.obj == 0, "struct {name} is not in vmlinux BTF");
            Ok(id.id)
        };
        backend::bpfprog::check_trampolines(&btf, &config.trace_programs)?;
        let netfilter_wanted = config.kernel.outputs & pwru_rs_common::OUTPUT_NETFILTER != 0;
        if netfilter_wanted {
            backend::bpfprog::require_trampolines(
                &btf,
                backend::netfilter::FLAG,
                "fexit on nft_do_chain",
            )?;
        }
        let direct = rdonly_cast(&btf, path);
        let expressions = Expressions::resolve(config, &btf, direct)?;
        let mut offsets = btf
            .offsets()
            .context("kernel BTF lacks a field pwru-rs reads")?;
        if config.trace_programs.contains(&ProgramKind::Xdp) {
            offsets = btf
                .with_xdp_offsets(offsets)
                .context("--filter-trace-xdp: kernel BTF lacks a field pwru-rs reads")?;
        }
        // What the traced programs call, read before anything is attached: the helpers' probes
        // join the backend's, the map operations get fexit programs of their own.
        let mut helper_calls = if config.track_bpf_helpers || config.output_bpfmap {
            backend::bpf_helpers::calls(&config.trace_programs)?
        } else {
            Vec::new()
        };
        let bpf_map_ops = if config.output_bpfmap {
            offsets = btf
                .with_bpf_map_offsets(offsets)
                .context("--output-bpfmap: kernel BTF lacks a field pwru-rs reads")?;
            let kallsyms = std::fs::read_to_string("/proc/kallsyms")
                .context("--output-bpfmap: reading /proc/kallsyms")?;
            let called = backend::bpf_helpers::resolve(&helper_calls, &kallsyms);
            let ops = backend::bpf_helpers::map_ops(&called, &btf);
            // The map operations are traced by their fexit: no kprobe on them besides.
            helper_calls = backend::bpf_helpers::without_map_ops(&helper_calls, &ops, &kallsyms);
            ops
        } else {
            Vec::new()
        };
        if !config.track_bpf_helpers {
            helper_calls.clear();
        }
        let netfilter = if netfilter_wanted {
            let (target, with_nf) = backend::netfilter::resolve(
                &btf,
                path,
                Path::new(crate::config::KERNEL_BTF_DIR),
                offsets,
            )?;
            offsets = with_nf;
            Some(target)
        } else {
            None
        };
        let facts = Self {
            rdonly_cast: direct,
            netfilter,
            helper_calls,
            bpf_map_ops,
            expressions,
            skb_btf_id: type_id(skb_dump, "sk_buff")?,
            shinfo_btf_id: type_id(shinfo_dump, "skb_shared_info")?,
            offsets,
            functions: btf.skb_functions(),
            tracepoints: btf.skb_tracepoints(),
            drop_reasons: btf.drop_reasons(),
            copy_functions: if config.track_skb {
                Some(backend::track::copy_functions(&btf, path))
            } else {
                // Stack tracking alone needs the ends of skb lives, not the copies.
                config.track_by_stack.then(Vec::new)
            },
        };
        log::debug!(
            "BTF: {} skb functions, {} skb tracepoints, offsets {:?}, in {:?}",
            facts.functions.len(),
            facts.tracepoints.len(),
            facts.offsets,
            started.elapsed()
        );
        Ok(facts)
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub stop: StopReason,
    pub counts: events::Counts,
    /// Events the kernel side could not hand over (ring buffer full).
    pub lost: u64,
    /// With `--filter-track-skb(-by-stackid)`: skbs that should have been tracked but found
    /// their map full.
    pub untracked: Option<u64>,
}

pub fn run(config: &Config) -> anyhow::Result<Summary> {
    // The kprobe backends need kallsyms and ftrace's function list: read them while BTF parses.
    let symbol_files = backend::prefetch_symbols(config.backend);
    // Stacks and callers are symbolised from kallsyms: read it meanwhile too.
    let stack_symbols = config
        .wants_stacks()
        .then(|| std::thread::spawn(|| std::fs::read_to_string("/proc/kallsyms")));
    if config.track_by_stack && backend::kprobe::pmu_type().is_none() {
        bail!("--filter-track-skb-by-stackid and --filter-non-skb-funcs need kprobes, which this kernel lacks (a tracepoint has no stack pointer to go by)");
    }
    let kernel = KernelFacts::read(&config.kernel_btf, config)?;
    let mut kernel_config = config.kernel;
    kernel_config.cast_btf_id = kernel.rdonly_cast.map_or(0, |c| c.struct_id);
    kernel_config.skb_metadata_words = kernel.expressions.skb_metadata_words;
    kernel_config.xdp_metadata_words = kernel.expressions.xdp_metadata_words;
    kernel_config.skb_btf_id = kernel.skb_btf_id;
    kernel_config.shinfo_btf_id = kernel.shinfo_btf_id;
    kernel_config.func_slot_bits = kernel.func_slot_bits(config.backend);
    // The same values as the globals get at load (`loader::load`).
    let constants = if std::env::var_os(NO_CONSTANT_FOLDING).is_some() {
        Vec::new()
    } else {
        vec![
            object::Constant::of(contract::OFFSETS_GLOBAL, &kernel.offsets),
            object::Constant::of(contract::CONFIG_GLOBAL, &kernel_config),
        ]
    };
    let object = object::patch(
        loader::embedded_object()?,
        &config.patches(&kernel.expressions, kernel.rdonly_cast, constants),
    )?;
    // Open the output before touching the kernel, so a bad path attaches nothing; the same for
    // the files written later (their directory, at least, must be there).
    for (flag, path) in [
        ("--ready-file", &config.ready_file),
        ("--stats-file", &config.stats_file),
    ] {
        if let Some(path) = path {
            check_dir_of(flag, path)?;
        }
    }
    let writer = open_output(&config.output)?;
    let clock = WallClock::now();
    let pcap = match &config.output.pcap {
        Some(path) => Some(
            PcapWriter::create(path, clock, config.kernel.snaplen)
                .with_context(|| format!("--output-pcap {}", path.display()))?,
        ),
        None => None,
    };

    let mut ebpf = loader::load(
        object.as_bytes(),
        &kernel.offsets,
        &kernel_config,
        &[
            config.map_sizes(),
            vec![(contract::FUNC_TABLE_MAP, 1 << kernel_config.func_slot_bits)],
        ]
        .concat(),
    )?;
    let attach_started = Instant::now();
    let mut attached = backend::attach(
        &mut ebpf,
        object.as_bytes(),
        AttachRequest {
            choice: config.backend,
            hookable: Hookable {
                functions: &kernel.functions,
                tracepoints: &kernel.tracepoints,
            },
            func_filter: config.func_filter.as_ref(),
            symbol_files,
            kprobe_batch: config.kprobe_batch,
            track_copies: kernel.copy_functions.as_deref(),
            non_skb_funcs: &config.non_skb_funcs,
            helper_calls: &kernel.helper_calls,
            func_slot_bits: kernel_config.func_slot_bits,
        },
    )?;
    let programs_started = Instant::now();
    let programs = backend::bpfprog::attach(
        &ebpf,
        object.as_bytes(),
        &config.trace_programs,
        &mut attached,
    )?;
    if let Some(target) = kernel.netfilter {
        backend::netfilter::attach(&ebpf, object.as_bytes(), target, &mut attached)?;
    }
    if config.output_bpfmap {
        let traced = backend::bpf_helpers::attach_map_ops(
            &ebpf,
            object.as_bytes(),
            &kernel.bpf_map_ops,
            &mut attached,
        )?;
        log::info!(
            "{}: {} map operations the traced programs call: {}",
            backend::bpf_helpers::MAP_FLAG,
            traced.len(),
            traced.join(", ")
        );
    }
    if !programs.is_empty() {
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        log::info!(
            "tracing {} BPF programs (attached in {:.1} ms): {}",
            programs.len(),
            programs_started.elapsed().as_secs_f64() * 1e3,
            names.join(", ")
        );
    }
    let attach_time = attach_started.elapsed();
    log::info!(
        "attached {} {} in {:.1} ms (backend: {}{})",
        attached.len(),
        attached.backend.hook_noun(),
        attach_time.as_secs_f64() * 1e3,
        attached.backend,
        if attached.skipped > 0 {
            format!(
                "; {} skipped: not traceable or refused, --debug names them",
                attached.skipped
            )
        } else {
            String::new()
        }
    );

    let ring = RingBuf::try_from(
        ebpf.take_map(contract::EVENTS_MAP)
            .context("no EVENTS map")?,
    )
    .context("EVENTS map")?;
    let lost: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(ebpf.take_map(contract::LOST_MAP).context("no LOST map")?)
            .context("LOST map")?;
    let track_full: PerCpuArray<MapData, u64> = PerCpuArray::try_from(
        ebpf.take_map(contract::TRACK_FULL_MAP)
            .context("no TRACK_FULL map")?,
    )
    .context("TRACK_FULL map")?;

    let stacks = match stack_symbols {
        Some(kallsyms) => {
            let text = kallsyms
                .join()
                .map_err(|_| anyhow::anyhow!("reading /proc/kallsyms panicked"))?
                .context("--output-stack/--output-caller: reading /proc/kallsyms")?;
            let symbols = Symbols::parse(&text);
            if symbols.is_empty() {
                log::warn!(
                    "/proc/kallsyms shows no addresses: stacks and callers print as raw addresses"
                );
            }
            let map: StackTraceMap<MapData> = StackTraceMap::try_from(
                ebpf.take_map(contract::STACKS_MAP)
                    .context("no STACKS map")?,
            )
            .context("STACKS map")?;
            Some(Stacks::new(
                symbols,
                Box::new(move |id| {
                    map.get(&id, 0)
                        .ok()
                        .map(|t| t.frames().iter().map(|f| f.ip).collect())
                }),
            ))
        }
        None => None,
    };
    let mut sink = output_sink(&config.output, writer, clock).with_pcap(pcap);
    let enricher = Enricher::new(
        attached.hooks.clone(),
        kernel.drop_reasons,
        config.output.timestamp,
        clock,
    )
    .with_tcp_flags(config.output.tcp_flags)
    .with_skb_metadata(
        kernel
            .expressions
            .skb_metadata
            .iter()
            .map(MetadataField::from)
            .collect(),
        kernel
            .expressions
            .xdp_metadata
            .iter()
            .map(MetadataField::from)
            .collect(),
    )
    .with_stacks(stacks, config.output.stack, config.output.caller)
    .with_netns_names(
        config
            .output
            .netns_names
            .then(|| NetnsNames::new("/", netns_names::RESCAN_INTERVAL)),
    )
    // JSON's `pod` / `k8s_namespace`, on a Kubernetes node.
    .with_pods(
        config
            .output
            .json
            .then(|| crate::pod::PodNames::on_this_node(netns_names::RESCAN_INTERVAL))
            .flatten(),
    );
    let mut pipeline = Pipeline::new(enricher, &mut sink);
    let (stop, ready) = read_events(config, &attached, ring, &mut pipeline)?;
    let counts = pipeline.counts;
    drop(pipeline);
    // Detaching waits for the kernel's grace periods (most of the time to exit): everything
    // else overlaps it, and it is joined before anything is reported, so at exit nothing of
    // pwru-rs is left in the kernel, whatever happened meanwhile.
    let hooks = attached.len();
    let stats = config.stats_file.as_ref().map(|path| {
        (
            path,
            RunStats {
                backend: attached.backend.name().to_owned(),
                hooks,
                skipped: attached.skipped,
                attach_ms: attach_time.as_secs_f64() * 1e3,
                link_ms: attached.link_time.map(|t| t.as_secs_f64() * 1e3),
                detach_ms: 0.0,
                received: counts.received,
                lost: 0,
                malformed: counts.malformed,
            },
        )
    });
    let detaching = attached.detach_in_background(config.kprobe_batch, true);
    let finished = sink.finish();
    let lost = events::per_cpu_count(&lost, contract::LOST_MAP);
    let untracked = (config.track_skb || config.track_by_stack)
        .then(|| events::per_cpu_count(&track_full, contract::TRACK_FULL_MAP));
    drop(ebpf);
    let took = detaching
        .join()
        .map_err(|_| anyhow::anyhow!("detaching panicked"))?;
    log::info!(
        "detached {hooks} hooks in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    match finished {
        Ok(()) => {}
        // Its reader is gone: nothing more can be said there.
        Err(_) if stop == StopReason::OutputClosed => {}
        Err(e) => return Err(anyhow::Error::new(e).context("writing the output")),
    }
    let summary = Summary {
        stop,
        counts,
        lost: lost?,
        untracked: untracked.transpose()?,
    };
    drop(ready);
    if let Some((path, mut stats)) = stats {
        stats.detach_ms = took.as_secs_f64() * 1e3;
        stats.lost = summary.lost;
        stats.write(path)?;
    }
    report(&summary);
    Ok(summary)
}

/// Reads events until a signal or the output limit; the ready file exists meanwhile.
fn read_events<S: events::Sink>(
    config: &Config,
    attached: &Attached,
    ring: RingBuf<MapData>,
    pipeline: &mut Pipeline<'_, S>,
) -> anyhow::Result<(StopReason, ReadyFile)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the event loop")?;
    // Handlers first: a script may send SIGINT as soon as the ready file appears. SIGHUP (the
    // terminal or SSH session went away) stops it the same way.
    let (mut sigint, mut sigterm, mut sighup) = {
        let _in_runtime = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    let ready = ReadyFile::create(
        config.ready_file.as_deref(),
        &ReadyInfo {
            backend: attached.backend.name().to_owned(),
            hooks: attached.len(),
            skipped: attached.skipped,
        },
    )?;
    log::info!("listening for events... (Ctrl-C to stop)");
    let watch_stdout = config.output.file.is_none() && stdout_is_a_pipe();
    let reader_gone = std::cell::Cell::new(false);
    let stop = runtime.block_on(async {
        let stop = async {
            tokio::select! {
                _ = sigint.recv() => {},
                _ = sigterm.recv() => {},
                _ = sighup.recv() => {},
                _ = pipe_reader_gone(), if watch_stdout => reader_gone.set(true),
            }
        };
        events::run(ring, pipeline, stop).await
    })?;
    let stop = if reader_gone.get() {
        StopReason::OutputClosed
    } else {
        stop
    };
    Ok((stop, ready))
}

fn stdout_is_a_pipe() -> bool {
    // SAFETY: fstat into a zeroed stat of fd 1, which stays open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(1, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO }
}

/// Resolves when the reader of the pipe on stdout has gone (`pwru-rs … | head -n 3`): without
/// traffic no write would fail to tell, and the trace would run on with nobody reading it.
async fn pipe_reader_gone() {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        every.tick().await;
        let mut fd = libc::pollfd {
            fd: 1,
            events: 0,
            revents: 0,
        };
        // A pipe's write end reports POLLERR once its last reader closed it.
        // SAFETY: one valid pollfd, no wait.
        if unsafe { libc::poll(&mut fd, 1, 0) } == 1 && fd.revents & libc::POLLERR != 0 {
            return;
        }
    }
}

/// Where events go, formatted as the output flags say (pcapng aside).
pub(crate) fn output_sink(
    output: &OutputConfig,
    writer: Box<dyn Write>,
    clock: WallClock,
) -> OutputSink {
    let printer = Printer::new(output.printer_config(), clock);
    OutputSink::new(printer, writer, output.limit)
        .with_summary(output.summary, output.json)
        .with_grouper(
            output
                .group
                .map(|(max, timeout)| Grouper::new(output.json, max, timeout)),
        )
}

pub(crate) fn open_output(output: &OutputConfig) -> anyhow::Result<Box<dyn Write>> {
    Ok(match &output.file {
        // A device, FIFO or socket (`--output-file /dev/null`, a pipe) is written as it is:
        // rotating it would rename it away and put a regular file in its place.
        Some(path) if is_special_file(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("--output-file: cannot open {}", path.display()))?,
        ),
        Some(path) => {
            // Every rotated-to file starts with the text header, so each reads on its own.
            let mut header = Vec::new();
            Printer::new(output.printer_config(), WallClock::now()).write_header(&mut header);
            Box::new(
                crate::output::rotate::RotatingFile::create(path, output.rotation.clone(), header)
                    .context("--output-file")?,
            )
        }
        None => Box::new(std::io::stdout()),
    })
}

/// Fails unless the directory `path` is to be created in exists.
fn check_dir_of(flag: &str, path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!("{flag} {}: no directory {}", path.display(), dir.display());
    }
    Ok(())
}

/// Whether `path` exists and is not a regular file (nor a directory, which fails later).
fn is_special_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn report(summary: &Summary) {
    let why = match summary.stop {
        StopReason::Signal => "stopped",
        StopReason::Limit => "output limit reached",
        StopReason::OutputClosed => "output closed by its reader",
    };
    let events::Counts {
        received,
        malformed,
    } = summary.counts;
    log::info!(
        "{why}: {received} events received, {} lost (ring buffer full)",
        summary.lost
    );
    match summary.untracked {
        Some(0) | None => {}
        Some(n) => log::warn!(
            "--filter-track-skb: {n} skbs could not be tracked (tracking map full; see --filter-track-skb-map-size)"
        ),
    }
    if malformed > 0 {
        log::warn!("{malformed} malformed records were ignored");
    }
}
