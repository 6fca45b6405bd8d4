//! `--output-netfilter`: on this host, whose kernel refuses BPF trampolines, one error line,
//! exit 1 and nothing left loaded; a trace the 6.12 guest saved (an nftables drop rule: the
//! chain's entry, the drop inside it, the chain's verdict) replayed through every output. The
//! tracing itself is tested in the QEMU guests (tests/vm/guest.sh).

use std::{process::Command, time::Duration};

use integration_tests::{pwru_bin, pwru_programs, require_root, run_within, trampolines_here};

/// Saved by `pwru-rs --output-json --output-netfilter` in the 6.12 guest: a TCP SYN to a port
/// `table inet pwrt { chain in { type filter hook input priority 0; tcp dport 7100 drop; } }`
/// drops. (Keys added since, `bpf_map`, `pod`, `k8s_namespace`, appended as this version writes them: a trace without
/// them replays too, gaining them.)
const SAVED: &str = include_str!("data/netfilter-drop.jsonl");

fn replay(args: &[&str]) -> (bool, String, String) {
    let path = std::env::temp_dir().join(format!("pwru-rs-nf-{}.jsonl", std::process::id()));
    std::fs::write(&path, SAVED).unwrap();
    let out = run_within(
        Command::new(pwru_bin())
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
fn refused_with_one_line_when_the_kernel_has_no_trampolines() {
    require_root();
    if trampolines_here() {
        eprintln!("this kernel runs BPF trampolines: the refusal cannot be tested here (the guests test the tracing)");
        return;
    }
    let before = pwru_programs();
    let out = run_within(
        Command::new(pwru_bin()).args(["--backend", "tracepoint", "--output-netfilter", "icmp"]),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("--output-netfilter")
            && errors[0].contains("refuses BPF trampolines")
            && errors[0].contains("nft_do_chain"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(pwru_programs(), before, "programs left loaded");
}

#[test]
fn a_saved_netfilter_trace_replays_through_every_output() {
    // JSON again, byte for byte: the chain, its verdict and the drop inside it survive.
    let (ok, json, err) = replay(&["--output-json"]);
    assert!(ok, "{err}");
    assert_eq!(json, SAVED);
    // Text: the chain after FUNC, at the entry, the drop and the verdict.
    let (ok, text, err) = replay(&[]);
    assert!(ok, "{err}");
    let chain = "table=inet/pwrt chain=in hook=input priority=0";
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].ends_with(&format!("nft_do_chain {chain}")),
        "{text}"
    );
    assert!(
        lines[1].ends_with(&format!(
            "sk_skb_reason_drop(SKB_DROP_REASON_NETFILTER_DROP) {chain}"
        )),
        "{text}"
    );
    assert!(
        lines[2].ends_with(&format!("nft_do_chain(NF_DROP) {chain}")),
        "{text}"
    );
    // The packet's story names the chain that dropped it; the late verdict opens no story.
    let (ok, story, err) = replay(&["--output-group-by-skb"]);
    assert!(ok, "{err}");
    assert_eq!(
        story.matches("\nskb 0x").count() + usize::from(story.starts_with("skb 0x")),
        1,
        "{story}"
    );
    assert!(
        story.contains("dropped at sk_skb_reason_drop: SKB_DROP_REASON_NETFILTER_DROP, by nftables chain inet pwrt in (hook input)"),
        "{story}"
    );
    // --summary counts the verdict by chain.
    let (ok, summary, err) = replay(&["--output-json", "--summary"]);
    assert!(ok, "{err}");
    let last: serde_json::Value = serde_json::from_str(summary.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["summary"]["netfilter"],
        serde_json::json!([{ "chain": "inet pwrt in", "hook": "input", "verdict": "NF_DROP", "count": 1 }])
    );
    assert_eq!(last["summary"]["events"], 3);
}
