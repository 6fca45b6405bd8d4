//! Shared helpers of the integration tests: network namespaces with veth pairs that each test
//! creates and removes itself, and a running pwru-rs whose output the test reads.
//!
//! The tests run the real binary (`PWRU_RS_BIN`, set by `cargo xtask test`) as root on the host
//! kernel and assert on what the kernel really reported.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod pcap_corpus;

/// The pwru-rs binary under test.
pub fn pwru_bin() -> PathBuf {
    let path = std::env::var_os("PWRU_RS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/pwru-rs"));
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask test`",
        path.display()
    );
    path
}

pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the integration tests create network namespaces and load eBPF: run them as root (cargo xtask test)"
    );
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn bash");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command whose failure is expected or irrelevant (e.g. traffic to a closed port).
pub fn sh_any(cmd: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn bash")
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces joined by a veth pair, with IPv4 and IPv6 addresses:
/// `a` (`addr_a`, `veth_a`) <-> `b` (`addr_b`, `veth_b`). Removed on drop.
pub struct VethPair {
    pub a: String,
    pub b: String,
    pub veth_a: String,
    pub veth_b: String,
    pub addr_a: String,
    pub addr_b: String,
    pub addr6_a: String,
    pub addr6_b: String,
}

impl VethPair {
    pub fn new() -> Self {
        // Unique per process and per test, so tests can run in parallel and after a crash.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 10000, id);
        let subnet = 1 + (std::process::id() % 50) * 5 + id % 5;
        let pair = Self {
            a: format!("pwrt-a{tag}"),
            b: format!("pwrt-b{tag}"),
            veth_a: format!("pva{tag}"),
            veth_b: format!("pvb{tag}"),
            addr_a: format!("10.231.{subnet}.1"),
            addr_b: format!("10.231.{subnet}.2"),
            addr6_a: format!("fd00:231:{subnet}::1"),
            addr6_b: format!("fd00:231:{subnet}::2"),
        };
        let p = &pair;
        sh(&format!(
            "set -e
             ip netns add {a}; ip netns add {b}
             ip link add {va} netns {a} type veth peer name {vb} netns {b}
             ip -n {a} link set lo up; ip -n {b} link set lo up
             ip -n {a} addr add {aa}/24 dev {va}; ip -n {b} addr add {ab}/24 dev {vb}
             ip -n {a} addr add {a6}/64 dev {va} nodad; ip -n {b} addr add {b6}/64 dev {vb} nodad
             ip -n {a} link set {va} up; ip -n {b} link set {vb} up",
            a = p.a,
            b = p.b,
            va = p.veth_a,
            vb = p.veth_b,
            aa = p.addr_a,
            ab = p.addr_b,
            a6 = p.addr6_a,
            b6 = p.addr6_b,
        ));
        pair
    }

    /// `/run/netns/<name>`, usable as `--filter-netns`.
    pub fn netns_path(name: &str) -> String {
        format!("/run/netns/{name}")
    }

    pub fn netns_inode(name: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(Self::netns_path(name))
            .expect("netns exists")
            .ino()
    }

    /// Runs `cmd` inside namespace `ns`.
    pub fn exec(ns: &str, cmd: &str) -> String {
        sh(&format!("ip netns exec {ns} {cmd}"))
    }

    pub fn exec_any(ns: &str, cmd: &str) -> Output {
        sh_any(&format!("ip netns exec {ns} {cmd}"))
    }

    /// One ping from a to b.
    pub fn ping_a_to_b(&self) {
        Self::exec(&self.a, &format!("ping -c 1 -W 2 {}", self.addr_b));
    }
}

impl Default for VethPair {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth, and so the pair.
        sh_any(&format!("ip netns del {}; ip netns del {}", self.a, self.b));
    }
}

/// A running pwru-rs writing JSON to a file.
pub struct Tracer {
    child: Option<Child>,
    dir: PathBuf,
    output: PathBuf,
}

/// What a stopped tracer left behind.
pub struct Trace {
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Tracer {
    /// Starts pwru-rs with `args` plus `--output-json --output-file --ready-file` and waits until
    /// every probe is attached.
    pub fn start(args: &[&str]) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pwru-rs-test-{}-{id}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let output = dir.join("out.jsonl");
        let ready = dir.join("ready");
        let child = Command::new(pwru_bin())
            .args(args)
            .arg("--output-json")
            .arg("--output-file")
            .arg(&output)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn pwru-rs");
        let mut tracer = Self {
            child: Some(child),
            dir,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(status) = tracer.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "pwru-rs exited before ready ({status}): {}",
                    tracer.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "pwru-rs not ready after 30 s: {}",
                tracer.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tracer
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// SIGINT, wait for a clean exit, and parse every line of output.
    pub fn stop(mut self) -> Trace {
        let mut child = self.child.take().unwrap();
        // Let the last events reach the ring buffer reader.
        std::thread::sleep(Duration::from_millis(200));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().unwrap();
        let stderr = self.stderr();
        assert!(status.success(), "pwru-rs exited with {status}: {stderr}");
        let text = fs::read_to_string(&self.output).unwrap();
        let events = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        Trace { events, stderr }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Trace {
    /// Events whose tuple goes from `saddr` to `daddr` (either may be None = any).
    pub fn with_tuple(&self, saddr: Option<&str>, daddr: Option<&str>) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| saddr.is_none_or(|s| e["tuple"]["saddr"] == s))
            .filter(|e| daddr.is_none_or(|d| e["tuple"]["daddr"] == d))
            .collect()
    }

    pub fn funcs<'a>(events: &[&'a Value]) -> Vec<&'a str> {
        events
            .iter()
            .map(|e| e["func"].as_str().unwrap_or(""))
            .collect()
    }

    pub fn dump(&self) -> String {
        let mut s: String = self
            .events
            .iter()
            .take(200)
            .map(|e| format!("{e}\n"))
            .collect();
        s.push_str(&self.stderr);
        s
    }
}
