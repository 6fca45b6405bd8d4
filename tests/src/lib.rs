//! Shared helpers of the integration tests: network namespaces with veth pairs that each test
//! creates and removes itself, and a running pwru-rs whose output the test reads as
//! [`JsonEvent`]s (both built on `pwru-rs-harness`, which `cargo xtask bench` uses too).
//!
//! The tests run the real binary (`PWRU_RS_BIN`, set by `cargo xtask test`) as root on the host
//! kernel and assert on what the kernel really reported.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output},
    time::Duration,
};

use pwru_rs::output::{JsonEvent, JsonTuple};
pub use pwru_rs_harness::{Netns, Ready, VethPair};
use pwru_rs_harness::{Pwru, TempDir};

pub mod pcap_corpus;

/// How long pwru-rs may take to attach, and to detach and exit.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for the events it expects ([`Tracer::wait_for`]).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pwru-rs binary under test: `PWRU_RS_BIN` (set by `cargo xtask test`), else the release
/// binary in the target directory this test was built in (which honours `CARGO_TARGET_DIR`).
pub fn pwru_bin() -> PathBuf {
    let path = std::env::var_os("PWRU_RS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // This test is <target>/<profile>/deps/<name>-<hash>.
            let exe = std::env::current_exe().expect("the test's own path");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("a test binary under <target>");
            target.join("release/pwru-rs")
        });
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask test`, or `cargo xtask build` and set PWRU_RS_BIN",
        path.display()
    );
    path
}

/// The names of pwru-rs's programs loaded now (they are all tracing, kprobe or raw tracepoint
/// programs): what a failed start must not leave behind.
pub fn pwru_programs() -> Vec<String> {
    use aya_obj::generated::bpf_prog_type;
    pwru_rs::loader::sys::loaded_programs(&[
        bpf_prog_type::BPF_PROG_TYPE_TRACING,
        bpf_prog_type::BPF_PROG_TYPE_KPROBE,
        bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT,
    ])
    .expect("listing BPF programs")
    .into_iter()
    .map(|p| p.name)
    .filter(|name| name.starts_with("pwru_"))
    .collect()
}

/// Whether this kernel runs BPF trampolines (fentry/fexit): this project's host does not.
pub fn trampolines_here() -> bool {
    let btf = pwru_rs::btf::KernelBtf::from_file(Path::new("/sys/kernel/btf/vmlinux"))
        .expect("vmlinux BTF");
    pwru_rs::backend::bpfprog::require_trampolines(&btf, "test", "the test").is_ok()
}

pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the integration tests create network namespaces and load eBPF: run them as root (cargo xtask test)"
    );
}

/// Two namespaces joined by a veth pair (see [`VethPair`]).
pub fn veth_pair() -> VethPair {
    VethPair::new().unwrap()
}

/// Runs `cmd` to its end, at most `timeout` (then it is killed and the test fails with its
/// stderr); whatever its exit status.
pub fn run_within(cmd: &mut Command, timeout: Duration) -> Output {
    pwru_rs_harness::output_within(cmd, timeout).unwrap()
}

/// A running pwru-rs writing its trace to a file.
pub struct Tracer {
    pwru: Pwru,
    output: PathBuf,
    json: bool,
}

/// What a stopped tracer left behind.
pub struct Trace {
    pub events: Vec<JsonEvent>,
    pub stderr: String,
}

/// A tracer that stopped by itself (`--output-limit-lines`).
pub struct Finished {
    pub status: ExitStatus,
    /// The output file, as written.
    pub output: String,
    pub stderr: String,
    /// Whether the ready file was still there after the exit.
    pub ready_file_left: bool,
}

impl Tracer {
    /// Starts pwru-rs with `--backend backend`, `args`, `--output-json --output-file` and
    /// `--ready-file`, and waits until every probe is attached.
    pub fn start(backend: &str, args: &[&str]) -> Self {
        Self::spawn(backend, args, true)
    }

    /// [`Tracer::start`] tracing only `net`'s namespace b (`--filter-netns`), where its pings
    /// and datagrams arrive.
    pub fn start_in_b(backend: &str, net: &VethPair, args: &[&str]) -> Self {
        let netns = net.b.path();
        let mut all = vec!["--filter-netns", netns.as_str()];
        all.extend_from_slice(args);
        Self::start(backend, &all)
    }

    /// The same with text output (no `--output-json`); read it with [`Tracer::wait_exit`].
    pub fn start_text(backend: &str, args: &[&str]) -> Self {
        Self::spawn(backend, args, false)
    }

    fn spawn(backend: &str, args: &[&str], json: bool) -> Self {
        let dir = TempDir::new("pwru-rs-test").unwrap();
        let output = dir.join(if json { "out.jsonl" } else { "out.txt" });
        let mut all = vec!["--backend", backend];
        all.extend(args);
        all.extend(json.then_some("--output-json"));
        all.push("--output-file");
        let pwru = Pwru::start(
            &pwru_bin(),
            dir,
            all.iter()
                .map(std::ffi::OsStr::new)
                .chain([output.as_os_str()]),
            START_TIMEOUT,
        )
        .unwrap();
        Self { pwru, output, json }
    }

    /// What the ready file says was attached.
    pub fn ready(&self) -> &Ready {
        &self.pwru.ready
    }

    /// pwru-rs's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.pwru.pid()
    }

    /// Whether pwru-rs has exited by itself.
    pub fn has_exited(&mut self) -> bool {
        self.pwru.has_exited().unwrap()
    }

    /// The events written so far (whole lines only), each of which must fit the schema.
    fn read(&self) -> Trace {
        assert!(self.json, "a text tracer has no events to parse");
        let text = fs::read_to_string(&self.output).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        Trace {
            events: complete.lines().map(parse_event).collect(),
            stderr: self.pwru.stderr(),
        }
    }

    /// Polls the output until `until` holds for the events so far, at most `timeout`; says
    /// whether it did. pwru-rs drains its ring buffer every 25 ms and writes each batch at once.
    pub fn wait_for(&self, until: impl Fn(&Trace) -> bool, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if until(&self.read()) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pings from `net`'s a to b, waits until the echo request (a → b) shows, and stops.
    pub fn ping_a_to_b_and_stop(self, net: &VethPair) -> Trace {
        net.ping_a_to_b().unwrap();
        self.wait_for(
            |t| {
                !t.with_tuple(Some(&net.addr_a), Some(&net.addr_b))
                    .is_empty()
            },
            EVENT_TIMEOUT,
        );
        self.stop()
    }

    /// SIGINT (pwru-rs then drains what is left), wait for a clean exit, and parse every line.
    pub fn stop(self) -> Trace {
        let (text, stderr) = self.stop_raw();
        Trace {
            events: text.lines().map(parse_event).collect(),
            stderr,
        }
    }

    /// [`Tracer::stop`] for a text tracer ([`Tracer::start_text`]): what it wrote.
    pub fn stop_text(self) -> String {
        assert!(!self.json, "a JSON tracer's events are read with stop");
        self.stop_raw().0
    }

    /// SIGINT, a clean exit: (the output file, stderr).
    fn stop_raw(self) -> (String, String) {
        let Self { pwru, output, .. } = self;
        let stopped = pwru.stop(STOP_TIMEOUT).unwrap();
        assert!(
            stopped.status.success(),
            "pwru-rs exited with {}: {}",
            stopped.status,
            stopped.stderr
        );
        (fs::read_to_string(&output).unwrap(), stopped.stderr)
    }

    /// Waits at most `timeout` for pwru-rs to exit by itself.
    pub fn wait_exit(self, timeout: Duration) -> Finished {
        let Self { pwru, output, .. } = self;
        let stopped = pwru.wait(timeout).unwrap();
        Finished {
            status: stopped.status,
            output: fs::read_to_string(&output).unwrap_or_default(),
            stderr: stopped.stderr,
            ready_file_left: stopped.dir.join(pwru_rs_harness::READY_FILE).exists(),
        }
    }
}

/// One `--output-json` line as the schema type: a line that does not fit fails the test.
fn parse_event(line: &str) -> JsonEvent {
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("line does not fit JsonEvent: {e}: {line}"))
}

/// The event's tuple (the test fails if it has none).
pub fn tuple(e: &JsonEvent) -> &JsonTuple {
    e.tuple
        .as_ref()
        .unwrap_or_else(|| panic!("no tuple: {}", show(e)))
}

/// The destination port, if the event has a tuple.
pub fn dport(e: &JsonEvent) -> Option<u16> {
    e.tuple.as_ref().map(|t| t.dport)
}

/// The event as pwru-rs wrote it, for messages.
pub fn show(e: &JsonEvent) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| format!("{e:?}"))
}

impl Trace {
    /// Events whose tuple goes from `saddr` to `daddr` (either may be None = any).
    pub fn with_tuple(&self, saddr: Option<&str>, daddr: Option<&str>) -> Vec<&JsonEvent> {
        self.events
            .iter()
            .filter(|e| {
                e.tuple.as_ref().is_some_and(|t| {
                    saddr.is_none_or(|s| t.saddr == s) && daddr.is_none_or(|d| t.daddr == d)
                })
            })
            .collect()
    }

    pub fn funcs<'a>(events: &[&'a JsonEvent]) -> Vec<&'a str> {
        events.iter().map(|e| e.func.as_str()).collect()
    }

    pub fn dump(&self) -> String {
        let mut s: String = self
            .events
            .iter()
            .take(200)
            .map(|e| show(e) + "\n")
            .collect();
        s.push_str(&self.stderr);
        s
    }
}
