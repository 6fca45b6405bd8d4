//! `--output-file` rotation under a real flood, and `--version`.

use std::{fs, path::Path, process::Command, time::Duration};

use integration_tests::{pwru_bin, require_root, run_within, veth_pair};
use pwru_rs::output::{JsonEvent, JsonTime};
use pwru_rs_harness::{Pwru, TempDir};

const TIMEOUT: Duration = Duration::from_secs(60);

fn time(e: &JsonEvent) -> u64 {
    match e.time {
        Some(JsonTime::Nanos(ns)) => ns,
        ref other => panic!("--timestamp current gives ns: {other:?}"),
    }
}

/// What identifies an event in two tracers of the same traffic (their times differ).
fn key(e: &JsonEvent) -> (String, String, u32, u32) {
    (e.skb.clone(), e.func.clone(), e.len, e.cpu)
}

fn events(path: &Path) -> Vec<JsonEvent> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{} ends mid-line", path.display());
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not a whole event: {e}: {l}", path.display()))
        })
        .collect()
}

#[test]
fn rotation_keeps_two_backups_of_whole_contiguous_events() {
    require_root();
    let net = veth_pair();
    let netns = net.a.path();
    let common = [
        "--backend",
        "tracepoint",
        "--output-json",
        "--timestamp",
        "current",
        "--filter-netns",
        &netns,
        "--ringbuf-size",
        "67108864",
    ];
    let start = |dir: TempDir, extra: &[&str]| {
        let out = dir.join("trace.jsonl");
        let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--output-file".into(), out.display().to_string()]);
        Pwru::start(&pwru_bin(), dir, args, TIMEOUT).unwrap()
    };
    let rotated = start(
        TempDir::new("pwru-rs-rotate").unwrap(),
        &[
            "--output-file-max-size",
            "1",
            "--output-file-max-backups",
            "2",
        ],
    );
    // The same events unrotated (a flood's events are more than the default 100 MB): what the
    // kept files must be the end of, exactly.
    let reference = start(
        TempDir::new("pwru-rs-reference").unwrap(),
        &["--output-file-max-size", "4096"],
    );
    // One CPU, so both tracers' ring buffers hold the events in the same order.
    net.a
        .sh(&format!("taskset -c 0 ping -f -q -c 20000 {}", net.addr_b))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rotated = rotated.stop(TIMEOUT).unwrap();
    let reference = reference.stop(TIMEOUT).unwrap();
    for s in [&rotated, &reference] {
        assert!(s.status.success(), "{}", s.stderr);
        assert!(s.stderr.contains(" 0 lost"), "events lost: {}", s.stderr);
    }

    let mut backups: Vec<String> = fs::read_dir(rotated.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("trace-") && n.ends_with(".jsonl"))
        .collect();
    backups.sort();
    let all_reference = events(&reference.dir.join("trace.jsonl"));
    assert!(
        all_reference.len() * 300 > 4 << 20,
        "too little traffic to rotate more than twice: {} events",
        all_reference.len()
    );
    assert_eq!(backups.len(), 2, "{backups:?}");

    let mut kept = Vec::new();
    for name in backups.iter().map(String::as_str).chain(["trace.jsonl"]) {
        let path = rotated.dir.join(name);
        assert!(
            fs::metadata(&path).unwrap().len() <= 1 << 20,
            "{name} over 1 MiB"
        );
        let file = events(&path);
        assert!(!file.is_empty(), "{name} is empty");
        for pair in file.windows(2) {
            assert!(time(&pair[0]) <= time(&pair[1]), "{name}: out of order");
        }
        if let (Some(last), Some(first)) = (kept.last(), file.first()) {
            assert!(
                time(last) <= time(first),
                "{name} starts before the file before it ends"
            );
        }
        kept.extend(file);
    }
    let kept: Vec<_> = kept.iter().map(key).collect();
    let reference: Vec<_> = all_reference.iter().map(key).collect();
    assert!(kept.len() < reference.len());
    // The two tracers start and stop at different moments: the kept events must be one
    // contiguous stretch of the reference's, which ends after the flood like theirs.
    let at = (0..=reference.len() - kept.len()).find(|&i| reference[i..i + kept.len()] == kept[..]);
    assert!(
        at.is_some(),
        "the kept files are not {} consecutive events of the reference, in order, without gap or duplicate",
        kept.len()
    );
}

#[test]
fn version_says_version_commit_and_as_root_the_backends() {
    let out = run_within(Command::new(pwru_bin()).arg("--version"), TIMEOUT);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("pwru-rs {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let commit = lines.next().unwrap().strip_prefix("commit: ").unwrap();
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
    assert!(lines.next().unwrap().starts_with("aya: 0.14"), "{text}");
    let backends = lines.next().unwrap().strip_prefix("backends: ").unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(backends.contains("tracepoint: supported"), "{text}");
    } else {
        assert!(backends.contains("needs root"), "{text}");
    }
}

/// `--output-file /dev/null` (as scripts and the benchmark use it) is written, never rotated:
/// rotating it would rename the device away and leave a regular file in its place.
#[test]
fn a_device_is_written_not_rotated() {
    integration_tests::require_root();
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    let net = integration_tests::veth_pair();
    // Far more than 1 MiB of events, written to /dev/null with a 1 MiB rotation size.
    let run =
        format!(
        "timeout -s INT 20 {bin} --backend tracepoint --filter-netns {ns} --output-file /dev/null \
           --output-file-max-size 1 --ready-file {ready} 2>/dev/null & pid=$!
         for _ in $(seq 200); do [ -e {ready} ] && break; sleep 0.05; done
         ip netns exec {a} ping -q -f -c 20000 127.0.0.1 >/dev/null
         kill -INT $pid; wait $pid",
        bin = integration_tests::pwru_bin().display(),
        ns = net.a.path(),
        ready = std::env::temp_dir().join(format!("pwru-devnull-{}", std::process::id())).display(),
        a = net.a.name,
    );
    let out = pwru_rs_harness::sh_any(&run).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::fs::metadata("/dev/null").unwrap().is_file(),
        "/dev/null was replaced by a regular file"
    );
}
