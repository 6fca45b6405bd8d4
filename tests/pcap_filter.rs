//! pcap filters: the cBPF→eBPF translation, run in the kernel (BPF_PROG_TEST_RUN on the same
//! injected code the probes call), must agree with libpcap's own matcher on every packet of the
//! corpus, in both forms (from the MAC header, and from the network header).

use integration_tests::{
    pcap_corpus::{self, Packet, Rng},
    require_root,
};
use pwru_rs::filter::{self, compile_cbpf, testing::FilterTester, View};

/// Compares kernel and libpcap on every packet; returns the disagreements, one line each.
fn disagreements(expression: &str, packets: &[Packet]) -> Vec<String> {
    let filter = match filter::compile(expression) {
        Ok(Some(f)) => f,
        Ok(None) => return vec![format!("'{expression}': compiled to no filter")],
        Err(e) => return vec![format!("'{expression}': {e}")],
    };
    let reference_l2 = compile_cbpf(expression, View::Ethernet).expect("compiled above");
    let reference_l3 = compile_cbpf(expression, View::Raw).ok();
    let mut out = Vec::new();
    // Both translations: with helper reads, and with direct loads where the kernel has them.
    for (mode, direct) in modes() {
        let mut tester = match FilterTester::with_direct_loads(&filter, direct) {
            Ok(t) => t,
            Err(e) => {
                out.push(format!(
                    "'{expression}' ({mode}): the kernel refused the translation: {e}"
                ));
                continue;
            }
        };
        let mut check = |form: &str, bytes: &[u8], want: bool, view: View, desc: &str| match tester
            .matches(bytes, view)
        {
            Ok(got) if got == want => {}
            Ok(got) => out.push(format!(
                "'{expression}' ({mode}) [{form}] {desc}: libpcap {want}, kernel {got}; packet {}",
                hex(bytes)
            )),
            Err(e) => out.push(format!("'{expression}' ({mode}) [{form}] {desc}: {e}")),
        };
        for p in packets {
            check(
                "L2",
                &p.frame,
                reference_l2.matches(&p.frame),
                View::Ethernet,
                &p.desc,
            );
            if let Some(l3) = p.l3() {
                // No raw-IP form (arp, ether …): pwru-rs's L3 program rejects everything.
                let want = reference_l3.as_ref().is_some_and(|r| r.matches(l3));
                check("L3", l3, want, View::Raw, &p.desc);
            }
        }
    }
    out
}

/// The translations to hold to libpcap: helper reads, and direct loads where this kernel allows
/// them (it must, from 6.2 on: a kernel that has them and refuses is a failure to see).
fn modes() -> Vec<(&'static str, Option<pwru_rs::btf::RdonlyCast>)> {
    static DIRECT: std::sync::OnceLock<Option<pwru_rs::btf::RdonlyCast>> =
        std::sync::OnceLock::new();
    let direct = *DIRECT.get_or_init(pwru_rs::session::direct_reads_here);
    let mut modes = vec![("helper reads", None)];
    modes.extend(direct.map(|d| ("direct loads", Some(d))));
    modes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn report(failures: &[String], runs: usize) {
    assert!(
        failures.is_empty(),
        "{} disagreement(s) in {runs} comparisons; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn corpus_agrees_with_libpcap_in_the_kernel() {
    require_root();
    let packets = pcap_corpus::packets(42);
    assert!(packets.len() >= 200 && pcap_corpus::EXPRESSIONS.len() >= 60);
    let mut failures = Vec::new();
    for expression in pcap_corpus::EXPRESSIONS {
        failures.extend(disagreements(expression, &packets));
    }
    let runs = pcap_corpus::EXPRESSIONS.len() * packets.len() * 2;
    eprintln!(
        "{} expressions × {} packets, L2 and L3",
        pcap_corpus::EXPRESSIONS.len(),
        packets.len()
    );
    report(&failures, runs);
}

/// Random expressions (bounded, seeded: set PWRU_RS_FILTER_SEED to replay or explore).
#[test]
fn random_expressions_agree_with_libpcap_in_the_kernel() {
    require_root();
    let seed = std::env::var("PWRU_RS_FILTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let count: usize = std::env::var("PWRU_RS_FILTER_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("random expressions: seed {seed}, {count} expressions");
    let mut rng = Rng::new(seed);
    let packets = pcap_corpus::packets(seed);
    let (mut failures, mut tried) = (Vec::new(), 0);
    while tried < count {
        let expression = pcap_corpus::random_expression(&mut rng);
        if compile_cbpf(&expression, View::Ethernet).is_err() {
            continue; // libpcap refuses some combinations (e.g. a constant division by zero)
        }
        tried += 1;
        failures.extend(
            disagreements(&expression, &packets)
                .into_iter()
                .map(|f| format!("seed {seed}: {f}")),
        );
    }
    report(&failures, count * packets.len() * 2);
}

#[test]
fn protochain_works_or_is_refused_clearly() {
    require_root();
    match filter::compile("ip protochain 6") {
        Ok(_) => report(
            &disagreements("ip protochain 6", &pcap_corpus::packets(3)),
            1,
        ),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("protochain") && message.contains("not supported"),
                "{message}"
            );
        }
    }
}
