//! `--filter-trace-tc` / `--filter-trace-xdp` on this host, whose kernel refuses BPF
//! trampolines: one error line, exit 1, nothing left loaded — with a dataplane attached by
//! iproute2 as a CNI would, so that there is a program to trace. (The tracing itself is tested
//! in the QEMU guests, tests/vm/guest.sh.)

use std::time::Duration;

use aya_obj::generated::bpf_prog_type;
use integration_tests::{
    pwru_bin, pwru_programs, require_root, run_within, trampolines_here, Netns,
};
use pwru_rs::loader::sys::loaded_programs;

#[test]
fn refused_with_one_line_when_the_kernel_has_no_trampolines() {
    require_root();
    let object = pwru_rs::TEST_DATAPLANE_OBJECT;
    assert!(
        std::fs::metadata(object).is_ok_and(|m| m.len() > 0),
        "no test dataplane at {object}"
    );
    let ns = Netns::new("pwrubpfprog").unwrap();
    ns.sh(&format!(
        "ip link add d0 type veth peer name d1 && ip link set d0 up && tc qdisc add dev d0 clsact && \
         tc filter add dev d0 ingress bpf da obj {object} sec classifier && \
         ip link set dev d0 xdpgeneric obj {object} sec xdp"
    ))
    .expect("attaching the test dataplane with iproute2");
    let names: Vec<String> = loaded_programs(&[
        bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS,
        bpf_prog_type::BPF_PROG_TYPE_XDP,
    ])
    .unwrap()
    .into_iter()
    .map(|p| p.name)
    .collect();
    assert!(
        names.iter().any(|n| n == "pwru_test_tc") && names.iter().any(|n| n == "pwru_test_xdp"),
        "the dataplane is not loaded: {names:?}"
    );
    if trampolines_here() {
        eprintln!("this kernel runs BPF trampolines: the refusal cannot be tested here (the guests test the tracing)");
        return;
    }
    let before = pwru_programs();
    // The helpers' probes come with the programs' trampolines: refused the same way (the
    // backend left to choose, as kprobes are what it would need for them).
    let cases: [(&str, &[&str]); 4] = [
        ("--filter-trace-tc", &["--backend", "tracepoint"]),
        ("--filter-trace-xdp", &["--backend", "tracepoint"]),
        ("--filter-trace-tc", &["--filter-track-bpf-helpers"]),
        (
            "--filter-trace-xdp",
            &["--backend", "tracepoint", "--output-bpfmap"],
        ),
    ];
    for (flag, more) in cases {
        let out = run_within(
            std::process::Command::new(pwru_bin())
                .arg(flag)
                .args(more)
                .arg("icmp"),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{flag}: {stderr}");
        assert!(
            errors[0].contains(flag) && errors[0].contains("refuses BPF trampolines"),
            "{flag}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{flag} printed to stdout");
        assert_eq!(pwru_programs(), before, "{flag}: programs left loaded");
    }
}
