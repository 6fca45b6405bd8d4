//! Direct reads (`bpf_rdonly_cast` and a guarded load instead of a `bpf_probe_read_kernel` call,
//! where the kernel allows it) must read what the helper reads. The same ping, traced once with
//! them and once with `PWRU_RS_NO_DIRECT_READS=1`, gives the same events field by field. On this
//! host (6.18, tracepoint backend) the kernel allows them, and the test says so first.
//!
//! The same holds for the configuration and offsets folded into the programs as immediates
//! (`object::fold`) against loading them from the read-only globals
//! (`PWRU_RS_NO_CONSTANT_FOLDING=1`).
//!
//! One test in its own binary: it sets environment variables the tracers inherit.

use integration_tests::{require_root, veth_pair, Tracer, VethPair, EVENT_TIMEOUT};
use pwru_rs::output::JsonEvent;

const BACKEND: &str = "tracepoint";
/// What `ping -m` puts in `skb->mark`, and `--filter-mark` looks for.
const MARK: u32 = 0x2a;

/// What must not differ between two runs on the same path: everything but the skb address,
/// the CPU, the process and the time.
fn path_of(events: &[JsonEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} netns={} mark={:#x} iface={} proto={} mtu={} len={} tuple={:?} reason={:?} metadata={:?}",
                e.func, e.netns, e.mark, e.iface, e.proto, e.mtu, e.len, e.tuple, e.reason, e.skb_metadata
            )
        })
        .collect()
}

/// One marked ping from a to b, traced in a with the mark filter (the events of its echo
/// request until it leaves a: crossing into b's netns clears the mark), then one traced in b
/// (request and reply there) with a pcap filter, an expression and metadata read through
/// pointers (generated code, which loads directly too); the events of both, and pwru-rs's
/// stderr.
fn traced_pings(net: &VethPair) -> (Vec<JsonEvent>, String) {
    let (netns, mark) = (net.a.path(), MARK.to_string());
    let args = [
        "--debug",
        "--filter-netns",
        &netns,
        "--filter-mark",
        &mark,
        "icmp",
    ];
    let tracer = Tracer::start(BACKEND, &args);
    net.a
        .sh(&format!("ping -c 1 -W 2 -m {MARK} {}", net.addr_b))
        .unwrap();
    // Its last hook in a.
    tracer.wait_for(
        |t| t.events.iter().any(|e| e.func == "net_dev_start_xmit"),
        EVENT_TIMEOUT,
    );
    let mut trace = tracer.stop();
    let in_b = Tracer::start_in_b(
        BACKEND,
        net,
        &[
            "--filter-skb-expr",
            "skb->dev->mtu == 1500",
            "--output-skb-metadata",
            "skb->len,skb->dev->ifindex,skb->dev->nd_net.net->ns.inum",
            &format!("icmp and host {}", net.addr_a),
        ],
    );
    let mut events = std::mem::take(&mut trace.events);
    events.extend(in_b.ping_a_to_b_and_stop(net).events);
    (events, trace.stderr)
}

/// [`traced_pings`] with the environment variable `var` set to 1 for the tracers.
fn traced_pings_with(net: &VethPair, var: &str) -> (Vec<JsonEvent>, String) {
    // SAFETY: this binary's only test; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(var, "1") };
    let traced = traced_pings(net);
    unsafe { std::env::remove_var(var) };
    traced
}

#[test]
fn direct_reads_read_what_the_helper_reads() {
    require_root();
    let net = veth_pair();
    // Neighbours resolved before either trace, so both see the same path.
    net.ping_a_to_b().unwrap();

    let (direct, stderr) = traced_pings(&net);
    assert!(
        stderr.contains("direct reads (bpf_rdonly_cast): yes"),
        "this kernel has bpf_rdonly_cast, yet pwru-rs did not use it: {stderr}"
    );
    let (helper, stderr) = traced_pings_with(&net, pwru_rs::session::NO_DIRECT_READS);
    assert!(
        !stderr.contains("direct reads (bpf_rdonly_cast)"),
        "{}=1 did not turn direct reads off: {stderr}",
        pwru_rs::session::NO_DIRECT_READS
    );

    assert!(
        stderr.contains("loads became immediates"),
        "the configuration was not folded into the programs: {stderr}"
    );
    // The configuration and offsets loaded from the read-only globals instead of immediates.
    let (loaded, stderr) = traced_pings_with(&net, pwru_rs::session::NO_CONSTANT_FOLDING);
    assert!(
        !stderr.contains("loads became immediates"),
        "{}=1 did not turn the folding off: {stderr}",
        pwru_rs::session::NO_CONSTANT_FOLDING
    );

    let (direct, helper, loaded) = (path_of(&direct), path_of(&helper), path_of(&loaded));
    assert!(
        direct.len() >= 2,
        "the marked ping was not traced: {direct:#?}"
    );
    let marked = direct
        .iter()
        .filter(|e| e.contains(&format!("mark={MARK:#x}")))
        .count();
    assert!(
        marked >= 2 && direct.len() > marked && direct.iter().all(|e| e.contains("mtu=1500")),
        "{direct:#?}"
    );
    assert_eq!(direct, helper, "direct reads and the helper disagree");
    assert_eq!(
        direct, loaded,
        "the configuration as immediates and as loads disagree"
    );
}
