//! Builds the kernel programs (`pwru-rs-ebpf`) with Debian's rustc, which ships `core` for
//! `bpfel-unknown-none`, and bpf-linker; the binary embeds the object (see `loader.rs`).
//! `cargo xtask setup` installs both. Spawning cargo directly needs no rustup toolchain.
//!
//! `PWRU_RS_SKIP_EBPF_BUILD=1` skips that build and embeds an empty object, so the userspace
//! crates can be `cargo check`ed (or their unit tests run) on a machine without the BPF
//! toolchain; such a binary refuses to trace, with a message saying why.

use std::{
    env,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

#[path = "src/elf_write.rs"]
mod elf_write;

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const EBPF_PACKAGE: &str = "pwru-rs-ebpf";
const OBJECT_NAME: &str = "pwru-rs.bpf.o";
/// The eBPF crate's test-only dataplane (`pwru-rs-ebpf/fixtures/dataplane.rs`), built alongside and
/// left in OUT_DIR for the tests (never embedded).
const DATAPLANE_NAME: &str = "test-dataplane.bpf.o";
const SKIP_VAR: &str = "PWRU_RS_SKIP_EBPF_BUILD";

fn main() {
    version_facts();
    println!("cargo:rerun-if-env-changed={SKIP_VAR}");
    if env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
        let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        std::fs::write(out_dir.join(OBJECT_NAME), []).expect("writing the empty object");
        std::fs::write(out_dir.join(DATAPLANE_NAME), []).expect("writing the empty object");
        println!("cargo:warning={SKIP_VAR} is set: the kernel programs are not built and this pwru-rs cannot trace");
        return;
    }
    if let Err(e) = build_ebpf() {
        // One clear line: the most likely cause is a machine without the toolchain.
        panic!("building the eBPF programs failed: {e:#}\n(run `cargo xtask setup` to install Debian's rustc-web, libstd-rust-web-dev-bpf and bpf-linker)");
    }
}

fn build_ebpf() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir.parent().expect("crate lives in the workspace");
    for dir in [
        "pwru-rs-ebpf/src",
        "pwru-rs-ebpf/Cargo.toml",
        "pwru-rs-ebpf/fixtures",
        "pwru-rs-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for tool in [DEBIAN_RUSTC, DEBIAN_CARGO] {
        anyhow::ensure!(Path::new(tool).exists(), "{tool} not found");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Share one eBPF target dir across profiles (debug, release, clippy) so it is built once:
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("ebpf"))
        .unwrap_or_else(|| out_dir.join("ebpf"));

    // aya-ebpf reads registers per architecture: the one this pwru-rs is built for.
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let arch_cfg = format!("--cfg=bpf_target_arch=\"{arch}\"");
    let rustflags = [
        arch_cfg.as_str(),
        "-Cdebuginfo=2",
        // bpf-linker emits BTF only when asked; aya needs it for the maps and globals.
        "-Clink-arg=--btf",
    ]
    .join("\x1f");

    let mut cmd = Command::new(DEBIAN_CARGO);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--package", EBPF_PACKAGE])
        .args(["--target", "bpfel-unknown-none", "--message-format=json"])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    // Only what this build needs: the outer cargo's environment (its rustc, wrappers, flags,
    // jobserver, profile and cfg settings) must not leak into a build for another target with
    // another compiler.
    cmd.env_clear();
    for var in ["PATH", "HOME", "CARGO_HOME", "TMPDIR", "LANG"] {
        if let Some(value) = env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.env("RUSTC", DEBIAN_RUSTC)
        // aya-ebpf uses an unstable feature (asm_experimental_arch); allow it for that crate only.
        .env("RUSTC_BOOTSTRAP", "aya_ebpf")
        .env("CARGO_ENCODED_RUSTFLAGS", &rustflags);
    // Only stdin, stdout and stderr: the outer build's other descriptors (a concurrent build
    // script's pipes among them) must not reach this build, whose rustc probe was seen reading
    // another crate's compiler output as its source.
    // SAFETY: close_range is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (mut artifact, mut dataplane) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let msg: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        match msg["reason"].as_str() {
            Some("compiler-artifact") if msg["target"]["kind"][0] == "bin" => {
                let exe = msg["executable"].as_str().map(PathBuf::from);
                match msg["target"]["name"].as_str() {
                    Some("pwru-rs") => artifact = exe,
                    Some("test-dataplane") => dataplane = exe,
                    _ => {}
                }
            }
            Some("compiler-message") => {
                if let Some(rendered) = msg["message"]["rendered"].as_str() {
                    for l in rendered.lines() {
                        println!("cargo:warning={l}");
                    }
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(
        status.success(),
        "{DEBIAN_CARGO} build of {EBPF_PACKAGE} failed: {status}"
    );
    let artifact = artifact.ok_or_else(|| anyhow::anyhow!("no eBPF artifact reported"))?;
    std::fs::write(
        out_dir.join(OBJECT_NAME),
        without_dwarf(&std::fs::read(&artifact)?)?,
    )?;
    let dataplane =
        dataplane.ok_or_else(|| anyhow::anyhow!("no test dataplane artifact reported"))?;
    std::fs::copy(&dataplane, out_dir.join(DATAPLANE_NAME))?;
    Ok(())
}

/// The object without its DWARF sections (`.debug_*` and their relocations): bpf-linker made BTF
/// from them, which aya and the kernel use (names, line info); the DWARF is three quarters of the
/// object, and pwru-rs holds the object in memory two or three times while loading it.
fn without_dwarf(object: &[u8]) -> anyhow::Result<Vec<u8>> {
    use object::build::elf::Builder;
    let mut builder = Builder::read(object)?;
    for section in builder.sections.iter_mut() {
        let name = &*section.name;
        if name.starts_with(b".debug_") || name.starts_with(b".rel.debug_") {
            section.delete = true;
        }
    }
    let deleted: Vec<_> = builder
        .sections
        .iter()
        .filter(|s| s.delete)
        .map(|s| s.id())
        .collect();
    for symbol in builder.symbols.iter_mut() {
        if symbol.section.is_some_and(|s| deleted.contains(&s)) {
            symbol.delete = true;
        }
    }
    Ok(elf_write::write(builder)?)
}

/// `--version`'s git commit (`unknown` outside a git checkout) and aya version (from Cargo.lock).
fn version_facts() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PWRU_RS_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit).
    if let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let lock = manifest_dir.join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let aya = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let at = text.find("\nname = \"aya\"\nversion = \"")?;
            let rest = &text[at + "\nname = \"aya\"\nversion = \"".len()..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PWRU_RS_AYA_VERSION={aya}");
}
