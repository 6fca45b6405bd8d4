//! The guest's initramfs: a base image cached per kernel (busybox, the host's bash, iproute2,
//! nftables, ping and their libraries, the kernel modules, `vm/init`), followed by a small archive
//! per run (pwru-rs and the payload).

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use super::{cpio::Archive, kernel::Kernel, modules::ModuleSet};
use crate::cmd;

/// Host programs the guest scripts need, with their shared libraries. Busybox has most commands,
/// but its `ip` cannot make veth peers, it has no `nft`, and the tests are written for bash.
const HOST_TOOLS: &[&str] = &[
    "bash", "ip", "tc", "ss", "nft", "ping", "timeout", "setpriv",
];
/// Copied too when the host has them: handy when a test needs debugging inside the guest.
const OPTIONAL_HOST_TOOLS: &[&str] = &["bpftool", "strace"];
/// Loaded by init, with what they depend on, so that their functions are in kallsyms and BTF
/// before pwru-rs starts. (`nft … drop` and `meta mark set` need only nf_tables: the meta, payload
/// and cmp expressions are built into it.)
const MODULES_AT_BOOT: &[&str] = &["veth", "nf_tables"];
/// Shipped, and loaded by the kernel through busybox modprobe when first used (`ip link add type
/// dummy`, `nft … ct state …`, `tc qdisc add … clsact`). Each one loaded at boot would cost ~70 ms.
const MODULES_ON_DEMAND: &[&str] = &[
    "dummy",
    "bridge",
    "vxlan",
    "geneve",
    "ipip",
    "ip_gre",
    "macvlan",
    "ifb",
    "tun",
    "nft_ct",
    "nft_nat",
    "nft_masq",
    "nft_chain_nat",
    "nft_reject_inet",
    "nft_log",
    "nft_limit",
    "nft_fib_inet",
    "nft_socket",
    "sch_ingress",
    "sch_netem",
    "sch_htb",
    "sch_prio",
    "cls_bpf",
    "act_bpf",
    "cls_flower",
    "act_mirred",
];
/// Where the host looks for tools: /usr first, because on a merged-/usr host /bin is the same.
const TOOL_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];
/// busybox-static's: the guest has no libc of its own for a dynamically linked busybox.
const BUSYBOX: &str = "/usr/bin/busybox";
/// Bump when the image layout changes in a way the recipe hash below cannot see.
const LAYOUT_VERSION: u32 = 1;

/// Which base image a guest boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Image {
    /// Busybox, the host's tools with their shared libraries, the modules.
    Full,
    /// Busybox (static) and the modules only: no host program, no shared library; scripts run
    /// under busybox sh, and pwru-rs must be static (`cargo xtask dist`).
    Bare,
}

/// The cached base image of `kernel`, built first if missing or out of date. It is not compressed:
/// gunzip under TCG cost ~0.3 s per boot, more than reading the bigger file costs.
pub fn base(kernel: &Kernel, image: Image) -> anyhow::Result<PathBuf> {
    let init = std::fs::read(init_path()).context("reading the guest init script")?;
    let tools = match image {
        Image::Full => host_tools()?,
        Image::Bare => Vec::new(),
    };
    let hash = recipe_hash(kernel, &init, &tools, image)?;
    let name = match image {
        Image::Full => "base",
        Image::Bare => "bare",
    };
    let path = kernel.dir.join(format!("{name}-{hash:016x}.cpio"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("xtask: vm: building {}", path.display());
    let mut archive = base_archive(kernel, init, &tools)?;
    if image == Image::Bare {
        // Port names (`pwru-rs port https`) are looked up there, as on any installed system.
        archive.host_file(Path::new("/etc/services"), "/etc/services")?;
    }
    write_atomically(&path, &archive.to_bytes())?;
    remove_stale_bases(&kernel.dir, &path, name);
    Ok(path)
}

fn init_path() -> PathBuf {
    cmd::root().join("vm/init")
}

/// What decides the base image's content: a change to any of it builds a new image.
fn recipe_hash(
    kernel: &Kernel,
    init: &[u8],
    tools: &[PathBuf],
    image: Image,
) -> anyhow::Result<u64> {
    let mut h = DefaultHasher::new();
    (LAYOUT_VERSION, &kernel.dir, init, image).hash(&mut h);
    (MODULES_AT_BOOT, MODULES_ON_DEMAND).hash(&mut h);
    for tool in tools
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(BUSYBOX)])
    {
        let meta = std::fs::metadata(tool).with_context(|| format!("stat {}", tool.display()))?;
        (tool, meta.len(), meta.modified()?).hash(&mut h);
    }
    Ok(h.finish())
}

fn host_tools() -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for tool in HOST_TOOLS {
        found.push(which(tool).with_context(|| {
            format!("the guest needs the host's `{tool}`; run `cargo xtask setup`")
        })?);
    }
    found.extend(OPTIONAL_HOST_TOOLS.iter().filter_map(|t| which(t)));
    Ok(found)
}

fn which(tool: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}

fn base_archive(kernel: &Kernel, init: Vec<u8>, tools: &[PathBuf]) -> anyhow::Result<Archive> {
    let mut a = Archive::default();
    layout(&mut a);
    a.file("/init", 0o755, init);
    for tool in tools {
        add_program(&mut a, tool, &guest_path(tool))?;
    }
    // After the host tools, so that busybox's applets never shadow them.
    add_busybox(&mut a)?;
    add_modules(&mut a, kernel)?;
    Ok(a)
}

/// A merged-/usr root with the mount points and the few /etc files glibc and iproute2 read.
fn layout(a: &mut Archive) {
    for dir in ["bin", "sbin", "lib", "lib64"] {
        a.symlink(&format!("/{dir}"), &format!("usr/{dir}"));
        a.dir(&format!("/usr/{dir}"));
    }
    for dir in ["/dev", "/proc", "/sys", "/tmp", "/run", "/root", "/payload"] {
        a.dir(dir);
    }
    // iproute2 keeps network namespaces in /var/run/netns.
    a.symlink("/var/run", "../run");
    // The kernel opens it for init's stdio before init can mount devtmpfs.
    a.char_dev("/dev/console", 0o600, 5, 1);
    a.file(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/bash\n".to_vec(),
    );
    a.file("/etc/group", 0o644, b"root:x:0:\n".to_vec());
    a.file(
        "/etc/hosts",
        0o644,
        b"127.0.0.1 localhost\n::1 localhost\n".to_vec(),
    );
    // Without it glibc asks DNS first, and there is no network to ask.
    a.file(
        "/etc/nsswitch.conf",
        0o644,
        b"passwd: files\ngroup: files\nhosts: files\n".to_vec(),
    );
}

/// Adds a host executable at `guest` with every shared library `ldd` names, dynamic loader
/// included, at the same (merged-/usr) paths.
pub fn add_program(a: &mut Archive, host: &Path, guest: &str) -> anyhow::Result<()> {
    a.host_file(host, guest)?;
    for lib in shared_libraries(host)? {
        let guest_lib = guest_path(&lib);
        if !a.contains(&guest_lib) {
            a.host_file(&lib, &guest_lib)?;
        }
    }
    Ok(())
}

fn shared_libraries(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .context("cannot run ldd")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut libs = Vec::new();
    for line in stdout.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`
        // or `linux-vdso.so.1 (0x…)`, which is the kernel's.
        let path = line.split("=>").last().unwrap_or_default().trim();
        let path = path.split(" (").next().unwrap_or_default();
        if path == "not found" {
            bail!(
                "{}: a shared library is missing: {}",
                program.display(),
                line.trim()
            );
        }
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The guest path of a host file: the guest has a merged /usr, so `/lib/x/y` lives in `/usr/lib/x/y`.
fn guest_path(host: &Path) -> String {
    let path = host.to_string_lossy();
    let merged = ["/bin/", "/sbin/", "/lib/", "/lib64/"]
        .iter()
        .any(|top| path.starts_with(top));
    if merged {
        format!("/usr{path}")
    } else {
        path.into_owned()
    }
}

/// Busybox-static, with a symlink for each applet that no host tool already provides.
fn add_busybox(a: &mut Archive) -> anyhow::Result<()> {
    a.host_file(Path::new(BUSYBOX), "/usr/bin/busybox")?;
    let applets = cmd::output(Command::new(BUSYBOX).arg("--list"))?;
    for applet in applets.lines().filter(|l| !l.is_empty()) {
        let (bin, sbin) = (format!("/usr/bin/{applet}"), format!("/usr/sbin/{applet}"));
        if !a.contains(&bin) && !a.contains(&sbin) {
            a.symlink(&bin, "busybox");
        }
    }
    Ok(())
}

/// The modules at `/lib/modules/<release>/<name>.ko` with a modules.dep and modules.alias for
/// busybox modprobe (the kernel runs /sbin/modprobe to load a module on demand), and the boot
/// modules in load order in `/etc/pwru-vm/modules` for the init script's insmod loop.
fn add_modules(a: &mut Archive, kernel: &Kernel) -> anyhow::Result<()> {
    let wanted: Vec<&str> = MODULES_AT_BOOT
        .iter()
        .chain(MODULES_ON_DEMAND)
        .copied()
        .collect();
    let set = ModuleSet::read(&kernel.modules.join("kernel"), &wanted)?;
    let dir = format!("/usr/lib/modules/{}", kernel.release);
    a.file(
        &format!("{dir}/modules.dep"),
        0o644,
        set.modules_dep().into_bytes(),
    );
    a.file(
        &format!("{dir}/modules.alias"),
        0o644,
        set.modules_alias().into_bytes(),
    );
    a.symlink("/usr/sbin/modprobe", "../bin/busybox");
    let at_boot = set.load_order(MODULES_AT_BOOT).join("\n") + "\n";
    a.file("/etc/pwru-vm/modules", 0o644, at_boot.into_bytes());
    for (name, elf) in set.into_files() {
        a.file(&format!("{dir}/{name}.ko"), 0o644, elf);
    }
    Ok(())
}

/// Adds the files below `host_dir` at `guest_dir`, keeping permissions and symlinks.
pub fn add_tree(a: &mut Archive, host_dir: &Path, guest_dir: &str) -> anyhow::Result<()> {
    a.dir(guest_dir);
    let entries =
        std::fs::read_dir(host_dir).with_context(|| format!("listing {}", host_dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let host = entry.path();
        let guest = format!("{guest_dir}/{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            let target = std::fs::read_link(&host)?;
            a.symlink(&guest, &target.to_string_lossy());
        } else if kind.is_dir() {
            add_tree(a, &host, &guest)?;
        } else {
            a.host_file(&host, &guest)?;
        }
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a concurrent or interrupted run never reads
/// half an image.
pub fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(pwru_rs_harness::unique("tmp"));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Old base images of this kernel (from an earlier recipe) are never used again.
fn remove_stale_bases(dir: &Path, current: &Path, kind: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{kind}-");
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        // Not `base-*.tmp-*`: another run may be writing that right now.
        if name.starts_with(&prefix) && name.ends_with(".cpio") && path != current {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_merged_usr() {
        assert_eq!(
            guest_path(Path::new("/lib64/ld-linux-x86-64.so.2")),
            "/usr/lib64/ld-linux-x86-64.so.2"
        );
        assert_eq!(guest_path(Path::new("/usr/sbin/ip")), "/usr/sbin/ip");
        assert_eq!(guest_path(Path::new("/libexec/x")), "/libexec/x");
    }
}
