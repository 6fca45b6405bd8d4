//! `cargo xtask setup`: install what a fresh machine lacks, say what, and do nothing otherwise.
//!
//! The eBPF crate is built with Debian's Rust 1.96 (`rustc-web`), which ships a precompiled `core`
//! for `bpfel-unknown-none`, and linked by bpf-linker built against Debian's LLVM 22. See
//! ../shared/toolchain.md for why not rustup nightly.

use std::process::Command;

use anyhow::Context;

use crate::cmd;

/// Debian packages: the BPF toolchain, libpcap (pcap filters), and what the tests drive.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("rustc-web", "Rust 1.96 compiler for the eBPF crate"),
    ("cargo-web", "its cargo"),
    (
        "libstd-rust-web-dev-bpf",
        "core library for bpfel-unknown-none",
    ),
    ("llvm-22-dev", "LLVM 22 for bpf-linker"),
    (
        "libpcap-dev",
        "libpcap, which compiles pcap filter expressions",
    ),
    ("iproute2", "ip netns / veth for the tests"),
    ("nftables", "nft drop and mark rules for the tests"),
    ("iputils-ping", "ping for the tests"),
    ("qemu-system-x86", "guests with stock kernels (xtask vm)"),
    ("busybox-static", "the guests' userland"),
    ("cpio", "to inspect the guests' initramfs images"),
    ("xz-utils", "to decompress the kernel's .ko.xz modules"),
    ("bpftool", "BPF program statistics for benchmarks"),
    ("tshark", "reads --output-pcap files back in the tests"),
    ("tcpdump", "the same, with libpcap's reader"),
    ("podman", "builds the container image of deploy/kubernetes"),
];

/// Installed without their recommended packages (QEMU's would pull in a GUI and firmware).
const WITHOUT_RECOMMENDS: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "bpftool",
    "tshark",
    "tcpdump",
    "podman",
];

/// From PyPI: the Kubernetes manifest's schema check, schemas included (no network at run time).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn ensure() -> anyhow::Result<()> {
    let missing: Vec<_> = APT_PACKAGES
        .iter()
        .filter(|(pkg, _)| !dpkg_installed(pkg))
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: installing Debian packages:");
        for (pkg, why) in &missing {
            eprintln!("xtask:   {pkg:<24} {why}");
        }
        cmd::run(cmd::privileged("apt-get").args(["update", "-q"]))?;
        let (lean, full): (Vec<&str>, Vec<&str>) = missing
            .iter()
            .map(|(pkg, _)| *pkg)
            .partition(|pkg| WITHOUT_RECOMMENDS.contains(pkg));
        for (packages, extra) in [(full, None), (lean, Some("--no-install-recommends"))] {
            if packages.is_empty() {
                continue;
            }
            cmd::run(
                cmd::privileged("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q"])
                    .args(extra)
                    .args(packages),
            )?;
        }
    }
    if !bpf_linker_ok() {
        eprintln!(
            "xtask: installing bpf-linker {BPF_LINKER_VERSION} (built against LLVM 22, ~1 min)"
        );
        cmd::run(
            cmd::cargo()
                .env("LLVM_PREFIX", "/usr/lib/llvm-22")
                .args([
                    "install",
                    &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                    "--locked",
                ])
                .args(["--no-default-features", "--features", "llvm-22"]),
        )
        .context("installing bpf-linker")?;
    }
    if cmd::output(Command::new("kubernetes-validate").arg("--version")).is_err() {
        eprintln!(
            "xtask: installing {KUBERNETES_VALIDATE} (PyPI) for the Kubernetes manifest's check"
        );
        cmd::run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--root-user-action=ignore",
            KUBERNETES_VALIDATE,
        ]))
        .context("installing kubernetes-validate")?;
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|status| status.ends_with(" installed"))
}

fn bpf_linker_ok() -> bool {
    cmd::output(Command::new("bpf-linker").arg("--version"))
        .is_ok_and(|v| v.split_whitespace().any(|w| w == BPF_LINKER_VERSION))
}
