//! What the integration tests (`tests/`) and the benchmarks (`cargo xtask bench`) share: a pwru-rs
//! started and waited for until its ready file appears ([`Pwru`]), waiting for a process with a
//! deadline ([`wait_within`], [`output_within`]), and network namespaces that remove themselves
//! ([`Netns`], [`VethPair`]).
//!
//! It does not depend on pwru-rs, so xtask, which uses it, builds on a machine that has no BPF
//! toolchain yet. Errors are values ([`Error`]); the tests unwrap them, xtask reports them.

use std::{
    ffi::OsStr,
    fmt,
    fs::{self, File},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// A failure, with what the process said on stderr when there was a process. Its `Debug` is its
/// message, so a test's `unwrap()` shows it as written.
pub struct Error(String);

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(message: impl Into<String>) -> Error {
    Error(message.into())
}

fn io_error(what: impl fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| error(format!("{what}: {e}"))
}

/// `<prefix>-<pid>-<n>`, different for every call in every process: for names of files,
/// directories and namespaces that concurrent runs must not share.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A fresh directory under the system's temporary directory; removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique(prefix));
        fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Empty once handed on (see `Pwru::wait`).
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Waits until `child` exits, at most `timeout`. Past it, kills the child (its whole process group
/// when it leads one, so a shell's children go too) and fails with `what` and `stderr()`.
pub fn wait_within(
    child: &mut Child,
    timeout: Duration,
    what: &str,
    stderr: impl FnOnce() -> String,
) -> Result<ExitStatus> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(io_error(what))? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            kill(child);
            return Err(error(format!(
                "{what}: still running after {timeout:.0?}, killed; its stderr:\n{}",
                stderr()
            )));
        }
        std::thread::sleep(poll_pause(started));
    }
}

/// How long to wait between two looks: short at first, so that the benchmark's exit and
/// ready times are not rounded up to the pause, then longer.
fn poll_pause(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_millis(200) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    }
}

/// SIGKILL to the child, or to its process group if it leads one; then reaps it.
fn kill(child: &mut Child) {
    // Once reaped, its pid may be another process's: signal only a child still unreaped.
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: getpgid and kill on our own, not yet reaped, child.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` in a process group of its own with stdin closed and its stdout and stderr captured,
/// and waits at most `timeout` for it (see [`wait_within`]).
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    let dir = TempDir::new("pwru-rs-cmd")?;
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let create = |p: &Path| File::create(p).map_err(io_error(format!("creating {}", p.display())));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(create(&out)?)
        .stderr(create(&err)?)
        .process_group(0)
        .spawn()
        .map_err(io_error(format!("starting {what}")))?;
    let read = |p: &Path| fs::read(p).unwrap_or_default();
    let status = wait_within(&mut child, timeout, &what, || {
        String::from_utf8_lossy(&read(&err)).into_owned()
    })?;
    Ok(Output {
        status,
        stdout: read(&out),
        stderr: read(&err),
    })
}

/// How long a shell command of [`sh`] or [`Netns::sh`] may take.
pub const SH_TIMEOUT: Duration = Duration::from_secs(120);

/// `bash -c cmd`, bounded by [`SH_TIMEOUT`], whatever its exit status.
pub fn sh_any(cmd: &str) -> Result<Output> {
    output_within(Command::new("bash").args(["-c", cmd]), SH_TIMEOUT)
}

/// `bash -c cmd`, bounded by [`SH_TIMEOUT`]; its stdout, or a failure with its stderr.
pub fn sh(cmd: &str) -> Result<String> {
    let out = sh_any(cmd)?;
    if !out.status.success() {
        return Err(error(format!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// kB of a `/proc/PID/status` field (`VmRSS`, `VmHWM`): what a test or benchmark reads of a
/// running pwru-rs's memory.
pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(io_error(format!("reading {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .ok_or_else(|| error(format!("no {field} in {path}")))
}

/// What pwru-rs's ready file says it attached (see pwru-rs/src/ready.rs).
#[derive(Debug, Clone)]
pub struct Ready {
    /// The backend in use, as `--backend` names it.
    pub backend: String,
    /// Functions or tracepoints attached.
    pub hooks: u64,
    /// Candidates that could not be attached.
    pub skipped: u64,
    /// The file as written.
    pub json: String,
}

impl Ready {
    fn parse(json: &str) -> Result<Self> {
        let bad = || error(format!("ready file: not the expected JSON line: {json:?}"));
        let v: serde_json::Value = serde_json::from_str(json).map_err(|_| bad())?;
        Ok(Self {
            backend: v["backend"].as_str().ok_or_else(bad)?.to_owned(),
            hooks: v["hooks"].as_u64().ok_or_else(bad)?,
            skipped: v["skipped"].as_u64().ok_or_else(bad)?,
            json: json.to_owned(),
        })
    }
}

/// The ready file's name in a [`Pwru`]'s directory.
pub const READY_FILE: &str = "ready";
/// pwru-rs's stderr, in a [`Pwru`]'s directory.
pub const STDERR_FILE: &str = "stderr";

/// A running pwru-rs that has attached every probe. Killed on drop if still running.
pub struct Pwru {
    child: Option<Child>,
    dir: TempDir,
    /// What it attached.
    pub ready: Ready,
}

/// A pwru-rs that has exited; its directory (output files the caller put there) lives as long.
pub struct Stopped {
    pub status: ExitStatus,
    pub stderr: String,
    pub dir: TempDir,
}

impl Pwru {
    /// Starts `bin` with `args` and `--ready-file <dir>/ready`, stdin and stdout closed and stderr
    /// in `<dir>/stderr`, and waits at most `timeout` for the ready file. `dir` is where the caller
    /// may have pointed output files (`--output-file`); it is removed with the last of
    /// [`Pwru`]/[`Stopped`].
    pub fn start(
        bin: &Path,
        dir: TempDir,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        timeout: Duration,
    ) -> Result<Self> {
        Self::start_with_stdout(bin, dir, args, timeout, Stdio::null())
    }

    /// [`Pwru::start`] with stdout going to `stdout` (a pipe: [`Pwru::take_stdout`]).
    pub fn start_with_stdout(
        bin: &Path,
        dir: TempDir,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        timeout: Duration,
        stdout: Stdio,
    ) -> Result<Self> {
        let ready = dir.join(READY_FILE);
        let stderr = dir.join(STDERR_FILE);
        let child = Command::new(bin)
            .args(args)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(
                File::create(&stderr)
                    .map_err(io_error(format!("creating {}", stderr.display())))?,
            )
            .spawn()
            .map_err(io_error(format!("starting {}", bin.display())))?;
        let mut pwru = Self {
            child: Some(child),
            dir,
            ready: Ready {
                backend: String::new(),
                hooks: 0,
                skipped: 0,
                json: String::new(),
            },
        };
        let started = Instant::now();
        let deadline = started + timeout;
        // The file is renamed into place complete: once it exists, it can be read.
        while !ready.exists() {
            if let Some(status) = pwru.child_mut().try_wait().map_err(io_error("pwru-rs"))? {
                return Err(error(format!(
                    "pwru-rs exited ({status}) before it was ready: {}",
                    pwru.stderr()
                )));
            }
            if Instant::now() >= deadline {
                return Err(error(format!(
                    "pwru-rs not ready after {timeout:.0?}: {}",
                    pwru.stderr()
                )));
            }
            std::thread::sleep(poll_pause(started));
        }
        let json = fs::read_to_string(&ready).map_err(io_error("reading the ready file"))?;
        pwru.ready = Ready::parse(json.trim_end())?;
        Ok(pwru)
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("running until stopped")
    }

    /// The read end of its stdout, when it was started with [`Stdio::piped`].
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child_mut().stdout.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running until stopped").id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join(STDERR_FILE)).unwrap_or_default()
    }

    /// Whether it has exited by itself (e.g. `--output-limit-lines`).
    pub fn has_exited(&mut self) -> Result<bool> {
        Ok(self
            .child_mut()
            .try_wait()
            .map_err(io_error("pwru-rs"))?
            .is_some())
    }

    /// SIGINT, then waits at most `timeout` for it to detach and exit.
    pub fn stop(mut self, timeout: Duration) -> Result<Stopped> {
        // Once reaped (it exited by itself), its pid may be another process's.
        if matches!(self.child_mut().try_wait(), Ok(None)) {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGINT) };
        }
        self.wait(timeout)
    }

    /// Waits at most `timeout` for it to exit by itself (e.g. `--output-limit-lines`).
    pub fn wait(mut self, timeout: Duration) -> Result<Stopped> {
        let mut child = self.child.take().expect("running until stopped");
        let status = wait_within(&mut child, timeout, "pwru-rs", || self.stderr())?;
        let stderr = self.stderr();
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new()));
        Ok(Stopped {
            status,
            stderr,
            dir,
        })
    }
}

impl Drop for Pwru {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// A network namespace with its loopback up; removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `name`, replacing a namespace of that name left by a crashed run.
    pub fn new(name: &str) -> Result<Self> {
        let _ = sh_any(&format!("ip netns del {name}"));
        sh(&format!("ip netns add {name}"))?;
        let ns = Self { name: name.into() };
        ns.sh("ip link set lo up")?;
        Ok(ns)
    }

    /// `/run/netns/<name>`, usable as `--filter-netns`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// The namespace's inode, as pwru-rs reports it in `netns`.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(self.path()).map_or(0, |m| m.ino())
    }

    /// `cmd` run by bash inside the namespace; its stdout, or a failure with its stderr.
    pub fn sh(&self, cmd: &str) -> Result<String> {
        sh(&format!(
            "ip netns exec {} bash -c {}",
            self.name,
            quote(cmd)
        ))
    }

    /// The same, whatever its exit status (e.g. traffic to a closed port).
    pub fn sh_any(&self, cmd: &str) -> Result<Output> {
        sh_any(&format!(
            "ip netns exec {} bash -c {}",
            self.name,
            quote(cmd)
        ))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of a veth, and so the pair.
        let _ = sh_any(&format!("ip netns del {}", self.name));
    }
}

/// `s` single-quoted for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Moves the calling thread into the network namespace `/run/netns/<name>` (setns is per thread).
pub fn enter_netns(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let f = File::open(&path).map_err(io_error(&path))?;
    // SAFETY: setns on a valid namespace fd, affecting only this thread.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) } != 0 {
        return Err(io_error(format!("setns {path}"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Two network namespaces joined by a veth pair, with IPv4 and IPv6 addresses:
/// `a` (`addr_a`, `veth_a`) <-> `b` (`addr_b`, `veth_b`). Removed on drop. Names and subnets
/// differ per process and per pair, so tests can run in parallel and after a crash.
pub struct VethPair {
    pub a: Netns,
    pub b: Netns,
    pub veth_a: String,
    pub veth_b: String,
    pub addr_a: String,
    pub addr_b: String,
    pub addr6_a: String,
    pub addr6_b: String,
}

impl VethPair {
    pub fn new() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names have at most 15 characters.
        let tag = format!("{}{id}", pid % 10000);
        let subnet = 1 + (pid % 50) * 5 + id % 5;
        let pair = Self {
            a: Netns::new(&format!("pwrt-a{tag}"))?,
            b: Netns::new(&format!("pwrt-b{tag}"))?,
            veth_a: format!("pva{tag}"),
            veth_b: format!("pvb{tag}"),
            addr_a: format!("10.231.{subnet}.1"),
            addr_b: format!("10.231.{subnet}.2"),
            addr6_a: format!("fd00:231:{subnet}::1"),
            addr6_b: format!("fd00:231:{subnet}::2"),
        };
        let (a, b, va, vb) = (&pair.a.name, &pair.b.name, &pair.veth_a, &pair.veth_b);
        sh(&format!(
            "set -e
             ip link add {va} netns {a} type veth peer name {vb} netns {b}
             ip -n {a} addr add {}/24 dev {va}; ip -n {b} addr add {}/24 dev {vb}
             ip -n {a} addr add {}/64 dev {va} nodad; ip -n {b} addr add {}/64 dev {vb} nodad
             ip -n {a} link set {va} up; ip -n {b} link set {vb} up",
            pair.addr_a, pair.addr_b, pair.addr6_a, pair.addr6_b
        ))?;
        Ok(pair)
    }

    /// One ping from a to b.
    pub fn ping_a_to_b(&self) -> Result<()> {
        self.a
            .sh(&format!("ping -c 1 -W 2 {}", self.addr_b))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_captures_status_stdout_and_stderr() {
        let out = output_within(
            Command::new("bash").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn past_the_deadline_the_whole_group_is_killed_and_stderr_reported() {
        let started = Instant::now();
        // The shell waits for a child of its own: killing the shell alone would leave it.
        let err = output_within(
            Command::new("bash").args(["-c", "echo stuck >&2; sleep 30 & wait"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(err.to_string().contains("stuck"), "{err}");
    }

    #[test]
    fn ready_file_fields() {
        let r = Ready::parse(r#"{"backend":"kprobe","hooks":12,"skipped":3}"#).unwrap();
        assert_eq!((r.backend.as_str(), r.hooks, r.skipped), ("kprobe", 12, 3));
        assert!(Ready::parse("").is_err());
        assert!(Ready::parse(r#"{"backend":"kprobe"}"#).is_err());
    }
}
