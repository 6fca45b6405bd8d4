//! The least privilege pwru-rs runs with (tracepoint backend on the host): CAP_BPF and
//! CAP_PERFMON, no root's other capabilities; a missing one is named in the one error line, and
//! nothing is attached.

use std::{path::Path, process::Command, time::Duration};

use integration_tests::{pwru_bin, require_root, run_within, veth_pair};
use pwru_rs_harness::{Pwru, TempDir};

const TIMEOUT: Duration = Duration::from_secs(30);

/// `setpriv` keeping only `caps` (as root: the bounding set is what an exec keeps).
fn with_caps(caps: &str) -> Vec<String> {
    vec![format!("--bounding-set=-all{caps}"), "--".into()]
}

#[test]
fn cap_bpf_and_cap_perfmon_are_enough_for_the_tracepoint_backend() {
    require_root();
    let net = veth_pair();
    let dir = TempDir::new("pwru-rs-caps").unwrap();
    let out = dir.join("trace.jsonl");
    let mut args = with_caps(",+bpf,+perfmon");
    args.push(pwru_bin().display().to_string());
    let netns = net.b.path();
    for a in [
        "--backend",
        "tracepoint",
        "--output-json",
        "--filter-netns",
        &netns,
        "--output-file",
    ] {
        args.push(a.into());
    }
    args.push(out.display().to_string());
    args.push("icmp".into());
    let pwru = Pwru::start(Path::new("/usr/bin/setpriv"), dir, args, TIMEOUT).unwrap();
    // Its effective capabilities are just those two (CapEff: bits 38 and 39).
    let status = std::fs::read_to_string(format!("/proc/{}/status", pwru.pid())).unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(cap_eff, (1 << 38) | (1 << 39), "{status}");
    net.ping_a_to_b().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stopped = pwru.stop(TIMEOUT).unwrap();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let trace = std::fs::read_to_string(stopped.dir.join("trace.jsonl")).unwrap();
    assert!(
        trace.contains(&format!("\"saddr\":\"{}\"", net.addr_a)),
        "no event of the ping: {trace}\n{}",
        stopped.stderr
    );
}

#[test]
fn a_missing_capability_is_named() {
    require_root();
    for (caps, needle) in [
        (",+bpf", "lacks CAP_PERFMON "),
        (",+perfmon,+net_admin", "lacks CAP_BPF "),
        ("", "lacks CAP_BPF and CAP_PERFMON "),
    ] {
        let mut cmd = Command::new("setpriv");
        cmd.args(with_caps(caps))
            .arg(pwru_bin())
            .args(["--backend", "tracepoint", "icmp"]);
        let out = run_within(&mut cmd, TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{caps}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{caps}: {stderr}");
        assert!(errors[0].contains(needle), "{caps}: {stderr}");
        assert!(!stderr.contains("attached"), "{caps}: {stderr}");
    }
}
