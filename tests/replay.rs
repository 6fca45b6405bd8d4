//! `--input-file`: a saved JSON trace read back (no root, no BTF) and written again through the
//! same output path, with the offline filters.

use std::{process::Command, time::Duration};

use integration_tests::{pwru_bin, require_root, run_within, veth_pair, Tracer};

const BACKEND: &str = "tracepoint";

/// A live trace of a ping into b, as the JSON lines pwru-rs wrote.
fn live_trace() -> String {
    let net = veth_pair();
    let tracer = Tracer::start_in_b(BACKEND, &net, &["--timestamp", "current", "icmp"]);
    net.ping_a_to_b().unwrap();
    tracer.wait_for(
        |t| {
            !t.with_tuple(Some(&net.addr_b), Some(&net.addr_a))
                .is_empty()
        },
        integration_tests::EVENT_TIMEOUT,
    );
    let trace = tracer.stop();
    assert!(!trace.events.is_empty());
    trace
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

/// pwru-rs replaying `input` with `args`, as an unprivileged user: (status, stdout, stderr).
fn replay(input: &str, args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("pwru-rs-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("trace-{n}.jsonl"));
    std::fs::write(&path, input).unwrap();
    // Readable by nobody: the replay needs no privileges.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_within(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(pwru_bin())
            .arg("--input-file")
            .arg(&path)
            .args(args),
        Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_trace_replays_as_it_was_written() {
    require_root();
    let live = live_trace();
    // JSON again: the same lines, byte for byte.
    let (ok, json, err) = replay(&live, &["--output-json", "--timestamp", "current"]);
    assert!(ok, "{err}");
    assert_eq!(json, live);
    // Text: the header, then one line per event with its skb and function.
    let (ok, text, err) = replay(&live, &["--timestamp", "current"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    let events: Vec<serde_json::Value> = live
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len() + 1, "{text}");
    assert!(lines[0].starts_with("SKB"), "{text}");
    for (line, e) in lines[1..].iter().zip(&events) {
        let skb = e["skb"].as_str().unwrap();
        let func = e["func"].as_str().unwrap();
        assert!(
            line.starts_with(skb) && line.ends_with(func),
            "{line} for {e}"
        );
        assert!(line.contains(&e["time"].to_string()), "{line} for {e}");
    }
}

#[test]
fn a_replayed_trace_prints_the_text_the_live_run_printed() {
    require_root();
    let net = veth_pair();
    let netns = net.b.path();
    let args = ["--filter-netns", netns.as_str(), "--output-caller", "icmp"];
    // Two tracers on the same traffic: one prints text, one saves JSON.
    let text_tracer = Tracer::start_text(BACKEND, &args);
    let json_tracer = Tracer::start(BACKEND, &args);
    net.ping_a_to_b().unwrap();
    // The reply, the last of the ping's events, seen: both have every event by then.
    json_tracer.wait_for(
        |t| {
            !t.with_tuple(Some(&net.addr_b), Some(&net.addr_a))
                .is_empty()
        },
        integration_tests::EVENT_TIMEOUT,
    );
    std::thread::sleep(Duration::from_millis(200));
    let (saved, live) = (json_tracer.stop(), text_tracer.stop_text());
    let json: String = saved
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let (ok, replayed, err) = replay(&json, &["--output-caller"]);
    assert!(ok, "{err}");
    // Same header and the same lines (the two tracers' ring buffers may interleave CPUs
    // differently: compared as sets of lines).
    let sorted = |t: &str| {
        let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(replayed.lines().next(), live.lines().next(), "headers");
    assert!(live.lines().count() > 2, "{live}");
    assert_eq!(
        sorted(&replayed),
        sorted(&live),
        "live:\n{live}\nreplayed:\n{replayed}"
    );
}

#[test]
fn offline_filters_select_what_they_would_live() {
    require_root();
    let live = live_trace();
    let (ok, json, err) = replay(
        &live,
        &["--output-json", "--filter-func", "netif_receive_skb"],
    );
    assert!(ok, "{err}");
    let expected = live
        .lines()
        .filter(|l| l.contains("\"func\":\"netif_receive_skb\""))
        .count();
    assert!(expected > 0);
    assert_eq!(json.lines().count(), expected, "{json}");
    // --filter-mark 0x1: nothing here is marked.
    let (ok, json, _) = replay(&live, &["--output-json", "--filter-mark", "0x1"]);
    assert!(ok && json.is_empty(), "{json}");
    // A pcap expression needs bytes the trace does not have: one error line.
    let (ok, _, err) = replay(&live, &["icmp"]);
    assert!(
        !ok && err.lines().count() == 1 && err.contains("pcap expression"),
        "{err}"
    );
}

#[test]
fn a_malformed_line_is_named_or_skipped_and_counted() {
    require_root();
    let live = live_trace();
    let mut broken = live.clone();
    broken.insert_str(live.find('\n').unwrap() + 1, "{\"skb\": not json\n");
    let (ok, _, err) = replay(&broken, &["--output-json"]);
    assert!(!ok, "{err}");
    assert!(
        err.lines().count() == 1 && err.contains(":2: not a pwru-rs JSON event"),
        "{err}"
    );
    let (ok, json, err) = replay(
        &broken,
        &[
            "--output-json",
            "--timestamp",
            "current",
            "--input-skip-bad",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(json, live);
    assert!(err.contains("1 malformed lines skipped"), "{err}");
}

/// A pcap expression at replay, on the bytes `--output-packet-bytes` saved, selects what the
/// same expression selected live: two tracers on the same traffic, one filtering in the kernel,
/// one saving every packet's bytes.
#[test]
fn a_pcap_filter_at_replay_selects_what_it_selects_live() {
    require_root();
    let net = veth_pair();
    let expression = "udp dst port 7301 or (icmp and src host ".to_owned() + &net.addr_a + ")";
    let saved = Tracer::start_in_b(
        BACKEND,
        &net,
        &["--output-packet-bytes", "--output-pcap-snaplen", "128"],
    );
    let live = Tracer::start_in_b(BACKEND, &net, &[expression.as_str()]);
    net.a
        .sh(&format!(
            "echo x > /dev/udp/{b}/7300; echo x > /dev/udp/{b}/7301; ping -c 1 -W 2 {b}",
            b = net.addr_b
        ))
        .unwrap();
    let udp_7301 = |t: &integration_tests::Trace| {
        t.events
            .iter()
            .any(|e| integration_tests::dport(e) == Some(7301))
    };
    live.wait_for(udp_7301, integration_tests::EVENT_TIMEOUT);
    saved.wait_for(udp_7301, integration_tests::EVENT_TIMEOUT);
    std::thread::sleep(Duration::from_millis(300));
    let (live, saved) = (live.stop(), saved.stop());
    let key = |e: &pwru_rs::output::JsonEvent| (e.skb.clone(), e.func.clone(), e.len);
    let mut want: Vec<_> = live.events.iter().map(key).collect();
    assert!(
        want.iter().any(|(_, f, _)| !f.is_empty()) && !want.is_empty(),
        "{}",
        live.dump()
    );
    // Every saved event carries its bytes.
    assert!(saved
        .events
        .iter()
        .all(|e| e.packet_bytes.is_some() || e.tuple.is_none()));
    let text: String = saved
        .events
        .iter()
        .filter(|e| e.packet_bytes.is_some())
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let (ok, json, err) = replay(
        &text,
        &["--output-json", "--output-packet-bytes", &expression],
    );
    assert!(ok, "{err}");
    let mut got: Vec<_> = json
        .lines()
        .map(|l| serde_json::from_str::<pwru_rs::output::JsonEvent>(l).unwrap())
        .map(|e| key(&e))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // The bytes come back as they were written.
    let first = json.lines().next().unwrap();
    assert!(
        text.contains(&first[first.find("\"packet_bytes\"").unwrap()..]),
        "{first}"
    );
}

#[test]
fn a_replayed_trace_with_bytes_writes_the_pcapng_the_live_run_wrote() {
    require_root();
    let net = veth_pair();
    let dir = std::env::temp_dir().join(format!("pwru-rs-replay-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (live_pcap, replayed_pcap) = (dir.join("live.pcapng"), dir.join("replayed.pcapng"));
    let live_arg = live_pcap.to_string_lossy().into_owned();
    let tracer = Tracer::start_in_b(
        BACKEND,
        &net,
        &[
            "--output-pcap",
            &live_arg,
            "--output-packet-bytes",
            "--timestamp",
            "absolute",
            "icmp",
        ],
    );
    let trace = tracer.ping_a_to_b_and_stop(&net);
    assert!(!trace.events.is_empty());
    let saved: String = trace
        .events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    // The replay runs as nobody: its file goes where it may write.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (ok, _, err) = replay(&saved, &["--output-pcap", replayed_pcap.to_str().unwrap()]);
    assert!(ok, "{err}");
    let live = std::fs::read(&live_pcap).unwrap();
    let replayed = std::fs::read(&replayed_pcap).unwrap();
    // Same packets, bytes, times, interfaces and comments: the same file.
    assert_eq!(
        replayed.len(),
        live.len(),
        "sizes differ; events: {}",
        trace.events.len()
    );
    assert!(
        replayed == live,
        "the replayed pcapng differs from the live one"
    );
    // Without wall-clock times, or without bytes, one line says what to record.
    let (ok, _, err) = replay(
        &strip_key(&saved, "time"),
        &["--output-pcap", replayed_pcap.to_str().unwrap()],
    );
    assert!(!ok && err.contains("--timestamp absolute"), "{err}");
    let (ok, _, err) = replay(
        &strip_key(&saved, "packet_bytes"),
        &["--output-pcap", replayed_pcap.to_str().unwrap()],
    );
    assert!(!ok && err.contains("--output-packet-bytes"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The JSON lines with `key` set to null.
fn strip_key(lines: &str, key: &str) -> String {
    lines
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v[key] = serde_json::Value::Null;
            v.to_string() + "\n"
        })
        .collect()
}
