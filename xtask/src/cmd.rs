//! Running commands: echoed before they run, failures carry the command line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_owned()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The cargo that is running us (rustup's), not Debian's /usr/bin/cargo.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs `cmd`, echoing it first and timing it; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    run_echoed(cmd).map(drop)
}

/// Like [`run`], with stdout captured and returned (stderr still shows).
pub fn run_stdout(cmd: &mut Command) -> anyhow::Result<String> {
    run_echoed(cmd.stdout(Stdio::piped()))
}

fn run_echoed(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = show(cmd);
    eprintln!("xtask: $ {shown}");
    let started = Instant::now();
    let out = cmd
        .spawn()
        .and_then(|child| child.wait_with_output())
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    eprintln!("xtask: done in {:.1?}: {shown}", started.elapsed());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` quietly and returns its stdout (for probing state).
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    output_bytes(cmd).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// Runs `cmd` quietly and returns its stdout as bytes (for binary output, e.g. `xz -dc`).
pub fn output_bytes(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{}`", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            show(cmd),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sudo` in front when we are not root (loading eBPF and making namespaces need it).
pub fn privileged(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("--preserve-env=PWRU_RS_BIN,RUST_LOG,RUST_BACKTRACE")
            .arg(program);
        c
    }
}

/// Builds the release pwru-rs and returns its path as cargo reports it, so `CARGO_TARGET_DIR`
/// and `build.target-dir` are honoured: every xtask command that runs pwru-rs gets it from here.
pub fn build_release() -> anyhow::Result<PathBuf> {
    let json = release_build_messages()?;
    let bins = executables(&json, |msg| {
        msg["target"]["name"] == "pwru-rs" && msg["target"]["kind"][0] == "bin"
    })?;
    bins.into_iter()
        .next()
        .context("cargo reported no pwru-rs executable")
}

/// `cargo build --release -p pwru-rs`, and cargo's JSON messages about it.
fn release_build_messages() -> anyhow::Result<String> {
    run_stdout(cargo().args([
        "build",
        "--release",
        "--package",
        "pwru-rs",
        "--message-format=json-render-diagnostics",
    ]))
}

/// The test-only dataplane object (tc and XDP programs) that pwru-rs's build script builds next
/// to the kernel programs, in its OUT_DIR (see pwru-rs/build.rs).
pub fn test_dataplane_object() -> anyhow::Result<PathBuf> {
    let json = release_build_messages()?;
    for line in json.lines() {
        let msg: serde_json::Value = serde_json::from_str(line).context("cargo's JSON output")?;
        // A path package's id: `path+file:///…/pwru-rs#0.1.0`.
        let ours = msg["package_id"]
            .as_str()
            .and_then(|id| id.split('#').next())
            .is_some_and(|path| path.ends_with("/pwru-rs"));
        if msg["reason"] == "build-script-executed" && ours {
            if let Some(out_dir) = msg["out_dir"].as_str() {
                return Ok(Path::new(out_dir).join("test-dataplane.bpf.o"));
            }
        }
    }
    bail!("cargo reported no build script output for pwru-rs")
}

/// The executables in cargo's `--message-format=json` output whose artifact message satisfies
/// `keep`.
pub fn executables(
    json: &str,
    keep: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut exes = Vec::new();
    for line in json.lines() {
        let msg: serde_json::Value = serde_json::from_str(line).context("cargo's JSON output")?;
        if msg["reason"] == "compiler-artifact" && keep(&msg) {
            if let Some(exe) = msg["executable"].as_str() {
                exes.push(PathBuf::from(exe));
            }
        }
    }
    Ok(exes)
}

pub fn run_as_root(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    let status = privileged(bin)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    // pwru-rs has already said what went wrong; pass its exit code on.
    std::process::exit(status.code().unwrap_or(1));
}
