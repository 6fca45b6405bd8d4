//! Bad input gets one clear error line and a non-zero exit, before anything is attached.

use std::{process::Command, time::Duration};

use integration_tests::{pwru_bin, require_root, run_within};

/// Runs pwru-rs expecting failure; returns its stderr.
fn fails(args: &[&str]) -> String {
    // A bad argument that slips through would trace forever: bound it.
    let out = run_within(Command::new(pwru_bin()).args(args), Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "pwru-rs {args:?} succeeded: {stderr}"
    );
    assert!(out.stdout.is_empty(), "pwru-rs {args:?} printed to stdout");
    stderr
}

/// The single error line (progress lines such as the chosen backend may precede it).
fn one_error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(errors[0]),
        "the error must come last: {stderr}"
    );
    errors[0]
}

#[test]
fn unknown_interface() {
    require_root();
    let err = fails(&["--filter-ifname", "no-such-if0"]);
    let line = one_error_line(&err);
    assert!(
        line.contains("no-such-if0") && line.contains("not found"),
        "{line}"
    );
}

#[test]
fn bad_netns_path() {
    require_root();
    let line = fails(&["--filter-netns", "/nonexistent/netns"]);
    assert!(
        one_error_line(&line).contains("/nonexistent/netns"),
        "{line}"
    );
    let line = fails(&["--filter-netns", "/proc/self/status"]);
    assert!(
        one_error_line(&line).contains("not a network namespace"),
        "{line}"
    );
}

#[test]
fn bad_output_file_rotation() {
    let err = fails(&["--output-file", "/tmp/x", "--output-file-max-size", "0"]);
    assert!(err.contains("--output-file-max-size"), "{err}");
    require_root();
    let err = fails(&[
        "--backend",
        "tracepoint",
        "--output-file",
        "/nonexistent-dir/trace",
    ]);
    assert!(
        one_error_line(&err).contains("/nonexistent-dir/trace"),
        "{err}"
    );
}

#[test]
fn bad_mark() {
    let err = fails(&["--filter-mark", "banana"]);
    assert!(err.contains("banana"), "{err}");
}

#[test]
fn bad_pcap_expressions_give_libpcaps_message() {
    require_root();
    for (expression, needle) in [
        (&["port"][..], "syntax error"),
        (&["host", "999.1.1.1"], "999.1.1.1"),
        (&["tcp[100000:4]", "=", "1"], "100000"),
    ] {
        let err = fails(expression);
        let line = one_error_line(&err);
        assert!(
            line.contains("invalid pcap filter") && line.contains(needle),
            "{expression:?}: {line}"
        );
    }
}

#[test]
fn bad_kernel_btf() {
    require_root();
    let err = fails(&["--kernel-btf", "/proc/self/status"]);
    assert!(one_error_line(&err).contains("/proc/self/status"), "{err}");
    let err = fails(&["--kernel-btf", "/nonexistent.btf"]);
    assert!(one_error_line(&err).contains("/nonexistent.btf"), "{err}");
}

#[test]
fn bad_filter_func_regex() {
    require_root();
    let err = fails(&["--filter-func", "kfree_skb("]);
    assert!(one_error_line(&err).contains("--filter-func"), "{err}");
    // Which hooks there are depends on the backend: the tracepoint backend's message.
    let err = fails(&[
        "--backend",
        "tracepoint",
        "--filter-func",
        "no_such_function_xyz",
    ]);
    assert!(
        one_error_line(&err).contains("no skb tracepoint matches"),
        "{err}"
    );
}

#[test]
fn stack_tracking_without_kprobes() {
    require_root();
    // Asked for the tracepoint backend: refused while reading the flags.
    let err = fails(&["--backend", "tracepoint", "--filter-track-skb-by-stackid"]);
    assert!(
        one_error_line(&err).contains("need a kprobe backend"),
        "{err}"
    );
    // On this host (no kprobes) auto cannot have one either: refused before loading.
    if !std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        for args in [
            &["--filter-track-skb-by-stackid"][..],
            &["--filter-non-skb-funcs", "fib_table_lookup"],
        ] {
            let err = fails(args);
            assert!(one_error_line(&err).contains("need kprobes"), "{err}");
        }
    }
}

#[test]
fn bpf_helpers_without_programs_or_kprobes() {
    require_root();
    let err = fails(&["--filter-track-bpf-helpers"]);
    assert!(
        one_error_line(&err).contains("needs --filter-trace-tc or --filter-trace-xdp"),
        "{err}"
    );
    let err = fails(&["--output-bpfmap"]);
    assert!(
        one_error_line(&err)
            .contains("--output-bpfmap needs --filter-trace-tc or --filter-trace-xdp"),
        "{err}"
    );
    let err = fails(&[
        "--backend",
        "tracepoint",
        "--filter-trace-tc",
        "--filter-track-bpf-helpers",
    ]);
    assert!(
        one_error_line(&err).contains("--filter-track-bpf-helpers needs a kprobe backend"),
        "{err}"
    );
}

#[test]
fn unwritable_pcap_file() {
    let err = fails(&["--output-pcap-snaplen", "100"]);
    assert!(
        err.contains("--output-pcap"),
        "the snap length needs the file: {err}"
    );
    let err = fails(&[
        "--output-pcap",
        "/tmp/x.pcapng",
        "--output-pcap-snaplen",
        "0",
    ]);
    assert!(err.contains("--output-pcap-snaplen"), "{err}");
    require_root();
    let err = fails(&[
        "--backend",
        "tracepoint",
        "--output-pcap",
        "/nonexistent-dir/trace.pcapng",
    ]);
    assert!(
        one_error_line(&err).contains("--output-pcap /nonexistent-dir/trace.pcapng"),
        "{err}"
    );
}

/// Hostile values for the flags: empty, huge, negative, unicode, too long. Each is one error
/// line and exit status 1, before anything is attached.
#[test]
fn hostile_values_are_one_error_line_and_exit_1() {
    require_root();
    let long_name = "x".repeat(100);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--filter-mark", ""], "--filter-mark"),
        (vec!["--filter-mark", "0x1ffffffff"], "32-bit"),
        (vec!["--filter-mark", "-1"], "'-1'"),
        (vec!["--filter-mark", "１２"], "--filter-mark"),
        (vec!["--filter-netns", ""], "--filter-netns"),
        (vec!["--filter-ifname", ""], "not found"),
        (vec!["--filter-ifname", "ëth0"], "ëth0"),
        (vec!["--filter-ifname", &long_name], "not found"),
        (vec!["--output-limit-lines", ""], "--output-limit-lines"),
        (
            vec!["--output-limit-lines", "99999999999999999999999"],
            "too large",
        ),
        (vec!["--output-limit-lines", "-5"], "'-5'"),
        (vec!["--ringbuf-size", "0"], "power of two"),
        (vec!["--ringbuf-size", "99999999999"], "32-bit"),
        (vec!["--set-percpu-buf", "huge"], "--set-percpu-buf"),
        (vec!["--kernel-btf", ""], "--kernel-btf"),
        (vec!["--filter-func", "ü+("], "--filter-func"),
        (
            vec!["--output-skb-metadata", "skb->nope"],
            "no member 'nope'",
        ),
        (vec!["--timestamp", "yesterday"], "possible values"),
        (vec!["--input-file", "/nonexistent"], "/nonexistent"),
        (
            vec!["--ready-file", "/nonexistent/ready"],
            "no directory /nonexistent",
        ),
        (
            vec!["--stats-file", "/nonexistent/stats"],
            "no directory /nonexistent",
        ),
        (vec!["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, says) in cases {
        let mut all = vec!["--backend", "tracepoint"];
        all.extend(&args);
        let out = run_within(Command::new(pwru_bin()).args(&all), Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        let line = one_error_line(&stderr);
        assert!(line.contains(says), "{args:?}: {line}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A truncated BTF file, and one of the other byte order (another architecture's).
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let dir = std::env::temp_dir();
    let truncated = dir.join(format!("pwru-rs-trunc-{}.btf", std::process::id()));
    std::fs::write(&truncated, &btf[..100]).unwrap();
    let mut swapped = btf.clone();
    swapped.swap(0, 1);
    let other = dir.join(format!("pwru-rs-swapped-{}.btf", std::process::id()));
    std::fs::write(&other, &swapped).unwrap();
    for path in [&truncated, &other] {
        let p = path.to_str().unwrap();
        let err = fails(&["--backend", "tracepoint", "--kernel-btf", p]);
        assert!(one_error_line(&err).contains(p), "{err}");
        let _ = std::fs::remove_file(path);
    }
}
