//! A stalled reader, on this host's tracepoint backend: stdout goes into a pipe that nobody
//! reads for 10 s while pings flood the traced namespace (then the same with `--output-file`
//! on a FIFO). The kernel side must not block (the
//! flood goes on; the ring buffer fills and the rest is counted as lost), pwru-rs's memory must
//! stay within its bound while it waits, and once the pipe is read every event is accounted for:
//! events produced (pings × the events one ping makes, calibrated by a slow run) ≤ received +
//! counted lost (a slack of the calibration's rare extras above), and every received event is a
//! complete line on the pipe.
//!
//! How fast the flood runs meanwhile, against the same flood with a filter that misses, is a
//! figure of `cargo xtask bench` ("Stalled reader"), not a timed assertion here.

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::OpenOptionsExt, io::AsRawFd},
    process::Stdio,
    time::{Duration, Instant},
};

use integration_tests::{pwru_bin, require_root};
use pwru_rs::ready::RunStats;
use pwru_rs_harness::{Netns, Pwru, TempDir};

const BACKEND: &str = "tracepoint";
const START: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(30);
/// How long nobody reads.
const STALL: Duration = Duration::from_secs(10);
/// Slow pings counted to learn how many events one echo makes.
const CALIBRATION_PINGS: u64 = 100;
/// Events in a calibration run that no echo's path explains, at most (and, as a rate per ping,
/// what the stall's count may exceed the pings' events by).
const MAX_EXTRA: u64 = 10;
/// pwru-rs's default `--ringbuf-size`.
const RING: u64 = 8 << 20;
/// What the reader may add to its memory on top of the ring buffer's pages it maps while
/// reading (formatting and write buffers).
const SLACK: u64 = 4 << 20;

/// pwru-rs tracing `ns`, stats to a file in its directory.
fn start(ns: &Netns, stdout: Stdio, extra: &[&str]) -> Pwru {
    let dir = TempDir::new("pwru-rs-stall").unwrap();
    let stats = dir.join("stats.json");
    let mut args = vec![
        "--backend".to_owned(),
        BACKEND.to_owned(),
        "--filter-netns".to_owned(),
        ns.path(),
        "--stats-file".to_owned(),
        stats.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Pwru::start_with_stdout(&pwru_bin(), dir, args, START, stdout).expect("pwru-rs gets ready")
}

/// SIGINT, a clean exit, and what its stats file says.
fn stop(pwru: Pwru) -> RunStats {
    let stopped = pwru.stop(EXIT).expect("pwru-rs exits");
    assert!(
        stopped.status.success(),
        "pwru-rs failed ({}): {}",
        stopped.status,
        stopped.stderr
    );
    let text = std::fs::read_to_string(stopped.dir.join("stats.json")).expect("stats file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats file: {e}: {text}"))
}

/// Pings to 127.0.0.1 in `ns`: `count` of them, `interval` apart ("-f" floods); all answered.
fn ping(ns: &Netns, interval: &str, count: u64) {
    let out = ns
        .sh(&format!("ping -q {interval} -c {count} -W 1 127.0.0.1"))
        .expect("ping");
    assert!(
        out.contains(&format!("{count} packets transmitted, {count} received")),
        "not every ping was answered: {out}"
    );
}

/// How many events each function made in a text trace, most first.
fn functions(trace: &str) -> String {
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for line in trace.lines().filter(|l| l.starts_with("0x")) {
        *counts
            .entry(line.split_whitespace().last().unwrap_or(""))
            .or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_kb(pid: u32, field: &str) -> u64 {
    pwru_rs_harness::status_kb(pid, field).unwrap()
}

/// Where the stalled output goes.
enum Output {
    /// stdout, a pipe.
    Stdout,
    /// `--output-file` on a FIFO (writes to a special file are not rotated, just written).
    Fifo,
}

#[test]
fn a_stalled_reader_blocks_nothing_and_loses_nothing_silently() {
    require_root();
    let ns = Netns::new(&pwru_rs_harness::unique("pwrustall")).unwrap();
    // ICMP datagram sockets: the pinger gets its own replies only, so each echo takes one path.
    ns.sh("sysctl -qw net.ipv4.ping_group_range='0 0'").unwrap();

    // Every echo on loopback passes the same hooks: count them where nothing can be lost. Seen
    // once in CI: two events more than 100 echoes make (never here), so the count keeps its
    // remainder, the test says which functions made it, and the stall's accounting allows that
    // rate of extras on top of the exact lower bound.
    let calibration_dir = TempDir::new("pwru-rs-calibration").unwrap();
    let calibration_out = calibration_dir.join("trace.txt");
    let calibration = start(
        &ns,
        Stdio::null(),
        &["--output-file", calibration_out.to_str().unwrap()],
    );
    ping(&ns, "-i 0.002", CALIBRATION_PINGS);
    let calibration = stop(calibration);
    assert!(
        calibration.lost == 0 && calibration.received >= CALIBRATION_PINGS,
        "calibration: {} received, {} lost for {CALIBRATION_PINGS} pings",
        calibration.received,
        calibration.lost
    );
    let extra = calibration.received % CALIBRATION_PINGS;
    if extra != 0 {
        eprintln!(
            "calibration: {} events for {CALIBRATION_PINGS} pings, {extra} more than a multiple; by function: {}",
            calibration.received,
            functions(&std::fs::read_to_string(&calibration_out).unwrap())
        );
    }
    assert!(
        extra <= MAX_EXTRA,
        "calibration: {} events for {CALIBRATION_PINGS} pings, {extra} not of one ping's path",
        calibration.received
    );
    let per_ping = calibration.received / CALIBRATION_PINGS;
    stall(&ns, per_ping, Output::Stdout);
    stall(&ns, per_ping, Output::Fifo);
}

fn stall(ns: &Netns, per_ping: u64, output: Output) {
    let fifo_dir = TempDir::new("pwru-rs-fifo").unwrap();
    let (mut pwru, stdout): (Pwru, Box<dyn std::io::Read + Send>) = match output {
        Output::Stdout => {
            let mut pwru = start(ns, Stdio::piped(), &[]);
            let stdout = pwru.take_stdout().expect("a pipe on stdout");
            (pwru, Box::new(stdout))
        }
        Output::Fifo => {
            let path = fifo_dir.join("out");
            let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: a NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
            // Its read end, open before pwru-rs opens the write end (which waits for one);
            // nonblocking only for this open.
            let reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .unwrap();
            // SAFETY: clearing O_NONBLOCK on our own open fd.
            unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, 0) };
            let pwru = start(
                ns,
                Stdio::null(),
                &["--output-file", path.to_str().unwrap()],
            );
            (pwru, Box::new(reader))
        }
    };
    let pid = pwru.pid();
    let rss_ready = status_kb(pid, "VmRSS");
    // Flood while nobody reads: whole ping runs, so every echo completes its path.
    let stall_started = Instant::now();
    let mut pings = 0;
    let mut rss_stalled = 0;
    while stall_started.elapsed() < STALL {
        ping(ns, "-f", 5000);
        pings += 5000;
        rss_stalled = rss_stalled.max(status_kb(pid, "VmRSS"));
    }
    // A kernel side that blocked on the full ring would have stopped the flood.
    assert!(pings >= 10_000, "only {pings} pings in {STALL:?}");
    assert!(
        !pwru.has_exited().unwrap(),
        "pwru-rs gave up: {}",
        pwru.stderr()
    );

    // Now read: every line complete, events counted.
    let reader = std::thread::spawn(move || {
        let (mut events, mut lines) = (0u64, 0u64);
        for line in BufReader::new(stdout).split(b'\n') {
            let line = line.expect("reading pwru-rs's output");
            lines += 1;
            if line.starts_with(b"0x") {
                events += 1;
            } else {
                assert!(
                    line.starts_with(b"SKB ") && lines == 1,
                    "line {lines} is neither the header nor an event: {:?}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        events
    });
    // The ring holds at most RING bytes: reading it takes moments, then stop.
    std::thread::sleep(Duration::from_secs(2));
    let hwm = status_kb(pid, "VmHWM");
    let stats = stop(pwru);
    let read = reader.join().expect("reader thread");
    let produced = pings * per_ping;
    let what = match output {
        Output::Stdout => "stdout",
        Output::Fifo => "--output-file FIFO",
    };
    eprintln!(
        "{what} stalled {STALL:?}: {pings} pings × {per_ping} = {produced} events produced, {} received, {} lost; RSS at ready {rss_ready} kB, stalled ≤ {rss_stalled} kB, peak {hwm} kB",
        stats.received, stats.lost
    );
    // Nothing lost silently: everything the pings made is received or counted lost; and nothing
    // counted twice: at most the calibration's rate of extras on top.
    let accounted = stats.received + stats.lost;
    assert!(
        accounted >= produced && accounted <= produced + pings * MAX_EXTRA / CALIBRATION_PINGS,
        "{what}: produced {produced}, received {} + counted lost {} = {accounted}",
        stats.received,
        stats.lost
    );
    assert_eq!(
        read, stats.received,
        "{what}: every received event reached the reader"
    );
    assert!(
        stats.lost > 0,
        "{what}: the ring never filled: the stall tested nothing"
    );
    // Blocked in a write, pwru-rs reads nothing, so it holds no more than at ready (give a
    // little for the pages of the write in progress); reading adds the ring's pages at most.
    assert!(
        rss_stalled <= rss_ready + SLACK / 1024,
        "{what}: RSS grew from {rss_ready} kB to {rss_stalled} kB while stalled"
    );
    assert!(
        hwm <= rss_ready + (RING + SLACK) / 1024,
        "{what}: peak RSS {hwm} kB exceeds {rss_ready} kB + ring ({} kB) + {} kB",
        RING / 1024,
        SLACK / 1024
    );
}
