//! Stock Debian kernels, fetched with apt without installing them and cached by resolved version.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use crate::cmd;

/// An extracted kernel package under `vm/cache/<package>_<version>/`.
pub struct Kernel {
    /// Where this kernel's cached files (and its base images) live.
    pub dir: PathBuf,
    pub vmlinuz: PathBuf,
    /// `uname -r` in the guest, and the name of its modules directory.
    pub release: String,
    /// `lib/modules/<release>` of the package.
    pub modules: PathBuf,
}

/// Resolves `package` (usually a meta package such as `linux-image-6.12-cloud-amd64`) to the
/// concrete kernel package apt would install today, then downloads and extracts it unless cached.
pub fn fetch(package: &str) -> anyhow::Result<Kernel> {
    let (concrete, version) = resolve(package)?;
    eprintln!("xtask: vm: kernel {package} is {concrete} {version}");
    let dir = super::cache_dir().join(format!("{concrete}_{version}"));
    let root = dir.join("root");
    if !root.exists() {
        extract(&concrete, &version, &dir, &root)?;
    }
    locate(dir, &root)
}

/// (package, version) of the kernel behind `package`, remembered in `vm/cache/resolved/` until
/// the package lists change: this machine's apt keeps no package cache, so each apt-cache call
/// takes a second.
fn resolve(package: &str) -> anyhow::Result<(String, String)> {
    let memo = super::cache_dir().join("resolved").join(package);
    let lists = apt_lists_state();
    if let Ok(text) = std::fs::read_to_string(&memo) {
        if let [state, concrete, version] = text.lines().collect::<Vec<_>>()[..] {
            if Some(state) == lists.as_deref() {
                return Ok((concrete.to_owned(), version.to_owned()));
            }
        }
    }
    let (concrete, version) = resolve_with_apt(package)?;
    // Read again: apt_cache may have just updated the lists.
    if let Some(state) = apt_lists_state() {
        // Only a shortcut: failing to save it costs a second next time.
        let _ = std::fs::create_dir_all(memo.parent().expect("has a parent"));
        let _ = std::fs::write(&memo, format!("{state}\n{concrete}\n{version}\n"));
    }
    Ok((concrete, version))
}

/// Changes whenever `apt-get update` changes the package lists: their newest mtime.
fn apt_lists_state() -> Option<String> {
    let newest = std::fs::read_dir("/var/lib/apt/lists")
        .ok()?
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .max()?;
    let since_epoch = newest.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("lists {}", since_epoch.as_nanos()))
}

/// Follows `Depends: linux-image-… (= version)` from a meta package to the package that holds the
/// kernel. A concrete package depends on no other linux-image and resolves to itself.
fn resolve_with_apt(package: &str) -> anyhow::Result<(String, String)> {
    let mut current = package.to_owned();
    // Meta packages chain at most once; the bound only guards against a cycle.
    for _ in 0..4 {
        let show = apt_cache(&["show", "--no-all-versions", &current])?;
        let field = |name: &str| {
            show.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let kernel_dep = field("Depends:").and_then(|deps| {
            deps.split([',', '|'])
                .map(str::trim)
                .find(|dep| dep.starts_with("linux-image-"))
        });
        let Some(dep) = kernel_dep else {
            let version = field("Version:").context("apt-cache show printed no Version")?;
            return Ok((current, version.to_owned()));
        };
        // `linux-image-6.12.117+deb12-cloud-amd64 (= 6.12.117-1~deb12u1)`
        let (name, pin) = dep.split_once(" (= ").unwrap_or((dep, ""));
        if let Some(version) = pin.strip_suffix(')') {
            return Ok((name.to_owned(), version.to_owned()));
        }
        current = name.to_owned();
    }
    bail!("{package}: too many levels of linux-image meta packages")
}

/// `apt-cache` with one `apt-get update` on failure: a fresh machine may have no package lists.
fn apt_cache(args: &[&str]) -> anyhow::Result<String> {
    let query = || cmd::output(Command::new("apt-cache").args(args));
    query().or_else(|first| {
        eprintln!("xtask: vm: {first:#}; updating the package lists once");
        cmd::run(
            cmd::privileged("apt-get")
                .args(["update", "-q"])
                .stdout(std::io::stderr()),
        )?;
        query()
    })
}

/// Downloads the .deb and unpacks it to `root`. Both happen in a private temporary directory that
/// is renamed into place at the end, so an interrupted or concurrent run never sees half a tree.
fn extract(package: &str, version: &str, dir: &Path, root: &Path) -> anyhow::Result<()> {
    let tmp = dir.join(pwru_rs_harness::unique("tmp"));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    cmd::run(
        Command::new("apt-get")
            .current_dir(&tmp)
            // As root, apt downloads as the `_apt` user, who cannot write here; it warns and
            // falls back to root. Ask for root directly to keep the output clean.
            .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
            .arg(format!("{package}={version}"))
            // Our stdout may be a trace being piped somewhere.
            .stdout(std::io::stderr()),
    )?;
    let deb = only_deb(&tmp)?;
    let unpacked = tmp.join("root");
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    if let Err(e) = std::fs::rename(&unpacked, root) {
        // A concurrent run may have won the race; its tree is as good as ours.
        if !root.exists() {
            bail!("cannot move {} into place: {e}", unpacked.display());
        }
    }
    std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))
}

fn only_deb(dir: &Path) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            return Ok(path);
        }
    }
    bail!("apt-get download left no .deb in {}", dir.display())
}

/// Finds `boot/vmlinuz-<release>` and the modules directory (`/lib` in bookworm packages,
/// `/usr/lib` in later ones).
fn locate(dir: PathBuf, root: &Path) -> anyhow::Result<Kernel> {
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("listing {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let name = vmlinuz.file_name().unwrap_or_default().to_string_lossy();
    let release = name.trim_start_matches("vmlinuz-").to_owned();
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| root.join(m).join(&release))
        .find(|m| m.is_dir())
        .with_context(|| format!("no modules directory for {release} in {}", root.display()))?;
    Ok(Kernel {
        dir,
        vmlinuz,
        release,
        modules,
    })
}
