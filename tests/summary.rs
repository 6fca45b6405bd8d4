//! `--summary` on real traffic (tracepoint backend on the host): its counts are the trace's.

use std::time::Duration;

use integration_tests::{require_root, veth_pair, Tracer};
use pwru_rs::output::{summary::JsonSummary, JsonEvent};

const BACKEND: &str = "tracepoint";

#[test]
fn json_summary_counts_what_was_printed() {
    require_root();
    let net = veth_pair();
    let tracer = Tracer::start_in_b(
        BACKEND,
        &net,
        &["--summary", "--output-limit-lines", "12", "icmp"],
    );
    // More events than the limit (the trace's own reads would choke on the summary line).
    for _ in 0..4 {
        net.ping_a_to_b().unwrap();
    }
    let finished = tracer.wait_exit(Duration::from_secs(20));
    assert!(finished.status.success(), "{}", finished.stderr);
    let lines: Vec<&str> = finished.output.lines().collect();
    let (last, events) = lines.split_last().expect("output");
    let events: Vec<JsonEvent> = events
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let line: serde_json::Value = serde_json::from_str(last).unwrap();
    let summary: JsonSummary =
        serde_json::from_value(line["summary"].clone()).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(summary.events, 12);
    assert_eq!(events.len(), 12);
    assert_eq!(summary.hooks.iter().map(|h| h.count).sum::<u64>(), 12);
    for hook in &summary.hooks {
        let printed = events
            .iter()
            .filter(|e| e.func.split('(').next() == Some(hook.name.as_str()))
            .count() as u64;
        assert_eq!(printed, hook.count, "{}", hook.name);
    }
    // Every event is on exactly one path; the first of them starts one.
    assert!(summary.distinct_paths >= 1);
    assert_eq!(summary.paths_closed_early, 0);
    assert!(
        summary
            .paths
            .iter()
            .any(|p| p.hooks.first() == Some(&events[0].func)),
        "{summary:?}"
    );
    // The hops' times need the kernel's clock, read only for outputs that use it.
    assert!(
        summary.hops.iter().any(|h| h.p99_ns > 0),
        "no hop took time: {summary:?}"
    );
}
