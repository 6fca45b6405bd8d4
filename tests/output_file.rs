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
    // contiguous stretch of the reference's. Up to a handful of events may differ even so: an
    // interrupt between the two tracers' programs on one hook reorders their events, or the
    // kernel skips one tracer's program nested in itself. A rotation that lost, doubled or
    // misordered a write would differ by a whole write's worth of events.
    let differing = differing_from_a_stretch(&kept, &reference);
    let tolerated = 2 + kept.len() / 500;
    assert!(
        differing <= tolerated,
        "the kept files are not {} consecutive events of the reference, in order, without gap or \
         duplicate: {differing} differ from the best matching stretch (at most {tolerated} may)",
        kept.len()
    );
}

/// How many of `kept` differ from the stretch of `reference` of the same length that they match
/// best (the length minus their longest common subsequence), the stretch found by anchoring
/// runs of `kept` in `reference`.
fn differing_from_a_stretch<'a, T: Eq + std::hash::Hash>(
    kept: &'a [T],
    reference: &'a [T],
) -> usize {
    const RUN: usize = 16;
    const MAX_STARTS: usize = 32;
    let n = kept.len();
    assert!(n >= RUN && reference.len() >= n);
    if reference.windows(n).any(|w| w == kept) {
        return 0;
    }
    // As numbers, for a cheap comparison in the quadratic part.
    let mut ids = std::collections::HashMap::new();
    let mut intern = |events: &'a [T]| -> Vec<u32> {
        events
            .iter()
            .map(|e| {
                let next = ids.len() as u32;
                *ids.entry(e).or_insert(next)
            })
            .collect()
    };
    let (kept, reference) = (intern(kept), intern(reference));
    let mut starts = std::collections::BTreeSet::new();
    for k in [0, n / 4, n / 2, 3 * n / 4, n - RUN] {
        let run = &kept[k..k + RUN];
        for at in (0..=reference.len() - RUN).filter(|&i| reference[i..i + RUN] == *run) {
            starts.insert(at.saturating_sub(k).min(reference.len() - n));
        }
    }
    starts
        .into_iter()
        .take(MAX_STARTS)
        .map(|start| n - common_subsequence(&kept, &reference[start..start + n]))
        .min()
        .unwrap_or(n)
}

/// The length of the longest common subsequence of `a` and `b`.
fn common_subsequence<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diagonal + 1 } else { up.max(row[j]) };
            diagonal = up;
        }
    }
    row[b.len()]
}

#[test]
fn a_stretch_is_matched_up_to_a_few_reordered_events() {
    let reference: Vec<u32> = (0..2000).collect();
    let exact = reference[700..1500].to_vec();
    assert_eq!(differing_from_a_stretch(&exact, &reference), 0);
    // Two neighbours swapped (an interrupt between two tracers' programs): one differs.
    let mut swapped = exact.clone();
    swapped.swap(400, 401);
    assert_eq!(differing_from_a_stretch(&swapped, &reference), 1);
    // A write's worth lost inside the stretch, or written twice: many differ.
    let mut gap = reference[700..1600].to_vec();
    gap.drain(300..400);
    assert_eq!(differing_from_a_stretch(&gap, &reference), 100);
    let mut doubled = exact.clone();
    doubled.splice(500..500, exact[400..500].iter().copied());
    doubled.truncate(exact.len());
    assert!(differing_from_a_stretch(&doubled, &reference) >= 100);
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
