//! `cargo xtask dist`: one static `pwru-rs` for x86_64 in `dist/`, with its SHA-256 and a
//! version file. glibc's static libraries and Debian's `libpcap.a`, nothing downloaded:
//! `-C target-feature=+crt-static` links libc, libpcap and the rest statically (pwru-rs stands
//! in for libpcap's D-Bus capture module, which it never uses: pwru-rs/src/static_pcap.rs).
//! The binary runs on any x86_64 Linux with BPF, without a shared library (the guests check).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use crate::cmd;

/// Where the static build's target directory lives: apart from the normal build, whose
/// artefacts the flag would otherwise rebuild.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds, strips, checks and writes `dist/pwru-rs`, `dist/pwru-rs.sha256`, `dist/VERSION`;
/// returns the binary's path.
pub fn run() -> anyhow::Result<PathBuf> {
    let json = cmd::run_stdout(
        cmd::cargo()
            .args([
                "build",
                "--release",
                "--package",
                "pwru-rs",
                "--target",
                TARGET,
                "--message-format=json-render-diagnostics",
            ])
            // With --target, RUSTFLAGS reach the target's crates only, not build scripts.
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let built = cmd::executables(&json, |msg| {
        msg["target"]["name"] == "pwru-rs" && msg["target"]["kind"][0] == "bin"
    })?
    .into_iter()
    .next()
    .context("cargo reported no pwru-rs executable")?;
    let dist = cmd::root().join("dist");
    std::fs::create_dir_all(&dist).context("creating dist/")?;
    let bin = dist.join("pwru-rs");
    std::fs::copy(&built, &bin).with_context(|| format!("copying {}", built.display()))?;
    cmd::run(Command::new("strip").arg(&bin))?;
    ensure_static(&bin)?;
    // For the container image (deploy/kubernetes/Containerfile): port names in filters.
    std::fs::copy("/etc/services", dist.join("services")).context("copying /etc/services")?;
    let sha = cmd::output(Command::new("sha256sum").arg("pwru-rs").current_dir(&dist))?;
    std::fs::write(dist.join("pwru-rs.sha256"), &sha).context("writing the SHA-256")?;
    // What the binary is (version, commit, aya), not what this machine's kernel supports.
    let said = cmd::output(Command::new(&bin).arg("--version"))?;
    let about: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("backends:"))
        .collect();
    std::fs::write(dist.join("VERSION"), about.join("\n") + "\n").context("writing VERSION")?;
    let version = about.first().copied().unwrap_or_default();
    let size = std::fs::metadata(&bin)?.len();
    eprintln!(
        "xtask: dist: {} ({:.1} MiB, static), {}",
        bin.display(),
        size as f64 / (1 << 20) as f64,
        version
    );
    Ok(bin)
}

/// Fails unless `bin` asks for no program interpreter and no shared library, and `ldd` agrees.
pub fn ensure_static(bin: &Path) -> anyhow::Result<()> {
    let ldd = Command::new("ldd")
        .arg(bin)
        .output()
        .context("cannot run ldd")?;
    let said =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    if !(said.contains("statically linked") || said.contains("not a dynamic executable")) {
        bail!("ldd {}: {}", bin.display(), said.trim());
    }
    use object::{Object, ObjectSection};
    let data = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let file = object::File::parse(&*data).context("parsing the binary")?;
    if file.section_by_name(".interp").is_some() {
        bail!("{} has a program interpreter: not static", bin.display());
    }
    if file.section_by_name(".dynamic").is_some_and(|s| {
        s.data().is_ok_and(|d| {
            d.chunks_exact(16).any(|entry| {
                // DT_NEEDED (1): a shared library.
                u64::from_le_bytes(entry[..8].try_into().expect("8 bytes")) == 1
            })
        })
    }) {
        bail!("{} needs shared libraries: not static", bin.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        // busybox-static (the guests' userland, installed by setup) and the host's bash.
        ensure_static(Path::new("/usr/bin/busybox")).unwrap();
        let err = ensure_static(Path::new("/usr/bin/bash")).unwrap_err();
        assert!(err.to_string().contains("ldd"), "{err:#}");
    }
}
