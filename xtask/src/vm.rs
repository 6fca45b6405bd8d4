//! `cargo xtask vm`: pwru-rs in a QEMU guest booting a stock Debian kernel (which has the kprobes,
//! kprobe-multi and trampolines this machine's own kernel lacks). See vm/README.md.
//!
//! The guest is an initramfs only: a cached base image per kernel (busybox, host tools, modules,
//! `vm/init`) and a small archive per run (pwru-rs, the payload). `vm/init` runs
//! `bash /payload/<entry>` and reports its exit status; `vm/exec.sh` is the entry for `--exec`.

mod cpio;
mod image;
mod kernel;
mod modules;
mod qemu;

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::cmd;
use cpio::Archive;
pub use image::Image;
use qemu::Echo;

const DEFAULT_KERNEL: &str = "linux-image-6.12-cloud-amd64";

#[derive(clap::Args)]
pub struct VmArgs {
    /// Debian kernel package to boot; a meta package is resolved to the version apt has today.
    #[arg(long, value_name = "PKG", default_value = DEFAULT_KERNEL)]
    kernel: String,
    /// Run pwru-rs with the arguments after `--`, wait until it is ready, run CMD with bash, then
    /// stop pwru-rs with SIGINT. Without pwru-rs arguments, just run CMD in the guest.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Run this bash script in the guest (its directory is copied to /payload; pwru-rs is
    /// /usr/bin/pwru-rs) and exit with its status.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["exec", "pwru_rs_args"])]
    script: Option<PathBuf>,
    /// Give up after this many seconds (boot included): kill QEMU and show the guest console.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Boot an image without the host's programs and shared libraries (busybox only; the script
    /// runs under its sh) with the static pwru-rs of `cargo xtask dist`.
    #[arg(long, requires = "script")]
    bare: bool,
    /// Arguments for pwru-rs (`--ready-file` is added with `--exec`).
    #[arg(last = true, value_name = "PWRU-RS ARGS")]
    pwru_rs_args: Vec<String>,
}

/// What a guest script did.
pub struct GuestRun {
    pub status: i32,
    /// Its stdout and stderr, as written to ttyS1.
    pub output: String,
    /// The last lines of the kernel console (ttyS0), for reports.
    pub console_tail: String,
    /// From starting QEMU to its exit.
    pub boot_and_run: Duration,
}

/// Where scripts find an XDP program that passes every packet, for `ip link set DEV xdp obj
/// PATH sec xdp` (veth runs its XDP path only with a program attached). The guest has no
/// compiler, so xtask writes the two-instruction object itself.
const XDP_PASS_OBJECT: &str = "/usr/lib/pwru-vm/xdp_pass.o";

/// Where scripts find the test dataplane (`pwru-rs-ebpf/fixtures/dataplane.rs`): a tc program
/// (section `classifier`) that drops TCP to port 9, an XDP program (section `xdp`) that passes
/// all, both with BTF, for `tc filter … bpf obj` and `ip link set … xdp obj`.
const TEST_DATAPLANE_OBJECT: &str = "/usr/lib/pwru-vm/test-dataplane.o";

/// A relocatable eBPF ELF object with one program, `xdp_pass` in section `xdp`: `r0 = XDP_PASS;
/// exit`.
fn xdp_pass_object() -> anyhow::Result<Vec<u8>> {
    use object::write::{Object, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };
    const XDP_PASS: u8 = 2;
    #[rustfmt::skip]
    let code = [
        0xb7, 0x00, 0x00, 0x00, XDP_PASS, 0x00, 0x00, 0x00, // r0 = XDP_PASS
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,     // exit
    ];
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = obj.add_section(Vec::new(), b"xdp".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &code, 8);
    obj.add_symbol(Symbol {
        name: b"xdp_pass".to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(license, b"GPL\0", 1);
    Ok(obj.write()?)
}

/// Boots `kernel_pkg` with pwru-rs at /usr/bin/pwru-rs and `payload_dir` copied to /payload,
/// runs `bash /payload/<script>` and returns its status and output (ttyS1).
pub fn run_script(
    kernel_pkg: &str,
    pwru_rs: &Path,
    payload_dir: &Path,
    script: &str,
    timeout: Duration,
    image: Image,
) -> anyhow::Result<GuestRun> {
    let mut payload = Archive::default();
    image::add_tree(&mut payload, payload_dir, "/payload")?;
    // The CI actions' shell steps, which the guest tests run as GitHub would.
    image::add_tree(
        &mut payload,
        &cmd::root().join("actions"),
        "/payload/actions",
    )?;
    payload.file(XDP_PASS_OBJECT, 0o644, xdp_pass_object()?);
    let dataplane = cmd::test_dataplane_object()?;
    let dataplane =
        std::fs::read(&dataplane).with_context(|| format!("reading {}", dataplane.display()))?;
    payload.file(TEST_DATAPLANE_OBJECT, 0o644, dataplane);
    let run = boot(
        kernel_pkg,
        pwru_rs,
        payload,
        script,
        timeout,
        Echo::Quiet,
        image,
    )?;
    Ok(GuestRun {
        status: run.status,
        output: String::from_utf8_lossy(&run.out).into_owned(),
        console_tail: run.console_tail,
        boot_and_run: run.elapsed,
    })
}

/// `cargo xtask vm …`: exits with the guest's status.
pub fn main(args: VmArgs) -> anyhow::Result<()> {
    if args.script.is_none() && args.exec.is_none() && args.pwru_rs_args.is_empty() {
        bail!("nothing to run: give --script FILE, --exec CMD, or pwru-rs arguments after `--`");
    }
    let timeout = Duration::from_secs(args.timeout);
    let (pwru_rs, image) = if args.bare {
        (crate::dist::run()?, Image::Bare)
    } else {
        (cmd::build_release()?, Image::Full)
    };
    let status = if let Some(script) = &args.script {
        script_main(&args.kernel, &pwru_rs, script, timeout, image)?
    } else {
        exec_main(&args, &pwru_rs, timeout, image)?
    };
    std::io::stdout().flush()?;
    std::process::exit(status);
}

fn script_main(
    kernel: &str,
    pwru_rs: &Path,
    script: &Path,
    timeout: Duration,
    image: Image,
) -> anyhow::Result<i32> {
    let script = script
        .canonicalize()
        .with_context(|| format!("cannot find {}", script.display()))?;
    let (dir, name) = (
        script.parent().unwrap_or(Path::new("/")),
        script.file_name().unwrap_or_default(),
    );
    let run = run_script(
        kernel,
        pwru_rs,
        dir,
        &name.to_string_lossy(),
        timeout,
        image,
    )?;
    print!("{}", run.output);
    if run.status != 0 {
        // Kernel warnings or a failed insmod often explain a failing script.
        eprintln!("xtask: vm: end of the guest console:\n{}", run.console_tail);
    }
    eprintln!(
        "xtask: vm: {} exited with status {} ({:.1?} from boot to power-off)",
        name.to_string_lossy(),
        run.status,
        run.boot_and_run
    );
    Ok(run.status)
}

/// `--exec CMD` and/or pwru-rs arguments, run by `vm/exec.sh` in the guest.
fn exec_main(
    args: &VmArgs,
    pwru_rs: &Path,
    timeout: Duration,
    image: Image,
) -> anyhow::Result<i32> {
    let exec_sh = std::fs::read(cmd::root().join("vm/exec.sh")).context("reading vm/exec.sh")?;
    let mut payload = Archive::default();
    payload.file("/payload/exec.sh", 0o755, exec_sh);
    if !args.pwru_rs_args.is_empty() {
        let mut nul_separated = Vec::new();
        for arg in &args.pwru_rs_args {
            nul_separated.extend_from_slice(arg.as_bytes());
            nul_separated.push(0);
        }
        payload.file("/payload/args", 0o644, nul_separated);
    }
    if let Some(exec) = &args.exec {
        payload.file("/payload/cmd", 0o644, exec.clone().into_bytes());
    }
    // pwru-rs's log filter, as on the host (`RUST_LOG=debug cargo xtask vm …`).
    if let Ok(filter) = std::env::var("RUST_LOG") {
        payload.file("/payload/rust-log", 0o644, filter.into_bytes());
    }
    // Half the deadline for attaching leaves the other half for CMD and detaching.
    let ready_timeout = (timeout / 2).as_secs().max(1);
    payload.file(
        "/payload/ready-timeout",
        0o644,
        format!("{ready_timeout}\n").into_bytes(),
    );
    let run = boot(
        &args.kernel,
        pwru_rs,
        payload,
        "exec.sh",
        timeout,
        Echo::Live,
        image,
    )?;
    eprintln!(
        "xtask: vm: guest exited with status {} ({:.1?} from boot to power-off)",
        run.status, run.elapsed
    );
    Ok(run.status)
}

/// Fetches the kernel, builds (or reuses) its base image, appends pwru-rs and `payload`, boots,
/// and runs `bash /payload/<entry>`. The run directory is removed unless the guest failed.
fn boot(
    kernel_pkg: &str,
    pwru_rs: &Path,
    mut payload: Archive,
    entry: &str,
    timeout: Duration,
    echo: Echo,
    image: Image,
) -> anyhow::Result<qemu::Outcome> {
    let kernel = kernel::fetch(kernel_pkg)?;
    let base = image::base(&kernel, image)?;
    match image {
        Image::Full => image::add_program(&mut payload, pwru_rs, "/usr/bin/pwru-rs")?,
        // Alone: nothing it could need from the host is there.
        Image::Bare => {
            crate::dist::ensure_static(pwru_rs)?;
            payload.host_file(pwru_rs, "/usr/bin/pwru-rs")?;
        }
    }
    let helpers = std::fs::read(cmd::root().join("vm/pwru.sh")).context("reading vm/pwru.sh")?;
    payload.file("/usr/lib/pwru-vm/pwru.sh", 0o644, helpers);
    payload.file("/etc/pwru-vm/entry", 0o644, entry.as_bytes().to_vec());
    let mut initrd = std::fs::read(&base).with_context(|| format!("reading {}", base.display()))?;
    initrd.extend(payload.to_bytes());
    // A kernel that panics while booting, before the payload starts, ran nothing of ours: a TCG
    // flake, booted once more (and said). A panic once the payload runs is never retried.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let dir = run_dir()?;
        let initrd_path = dir.join("initrd.img");
        std::fs::write(&initrd_path, &initrd).context("writing the run's initrd")?;
        match qemu::boot(&kernel, &initrd_path, &dir, timeout, echo) {
            Ok(outcome) => {
                // Kept on failure (the error names it); a finished run needs nothing from it.
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
                return Ok(outcome);
            }
            Err(e) => match qemu::panicked_while_booting(&e) {
                Some(oops) if attempts == 1 => eprintln!(
                    "xtask: vm: the guest kernel panicked while booting, before the payload started ({oops}; logs kept in {}): booting once more",
                    dir.display()
                ),
                _ => return Err(e),
            },
        }
    }
}

/// `vm/cache/`: kernels and base images, git-ignored.
fn cache_dir() -> PathBuf {
    cmd::root().join("vm/cache")
}

/// A fresh directory for one boot's initrd and serial logs; tests may boot several at once.
fn run_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(pwru_rs_harness::unique("pwru-rs-vm"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod xdp_fixture_tests {
    use super::*;

    /// The fixture loads as an XDP program: attached with `ip` to a veth in a namespace of its
    /// own (as root; skipped otherwise).
    #[test]
    fn xdp_pass_object_attaches_with_ip() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: skipped");
            return;
        }
        let dir = pwru_rs_harness::TempDir::new("xdp-fixture").unwrap();
        let path = dir.join("xdp_pass.o");
        std::fs::write(&path, xdp_pass_object().unwrap()).unwrap();
        let ns = pwru_rs_harness::Netns::new(&pwru_rs_harness::unique("pwxdp")).unwrap();
        ns.sh("ip link add x0 type veth peer name x1 && ip link set x0 up && ip link set x1 up")
            .unwrap();
        ns.sh(&format!(
            "ip link set dev x0 xdp obj {} sec xdp",
            path.display()
        ))
        .unwrap();
        let shown = ns.sh("ip link show dev x0").unwrap();
        assert!(shown.contains("xdp"), "{shown}");
    }
}
