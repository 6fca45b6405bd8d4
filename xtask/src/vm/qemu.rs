//! Booting the guest under QEMU (TCG: this machine's /dev/kvm cannot run stock kernels) with a
//! host-side deadline, and reading back what it wrote on its serial ports:
//! ttyS0 console, ttyS1 payload stdout, ttyS2 payload stderr (used by exec.sh), ttyS3 exit marker.

use std::{
    io::{Read, Seek, SeekFrom, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use super::kernel::Kernel;

const KERNEL_CMDLINE: &str = "console=ttyS0 quiet loglevel=4 panic=-1 oops=panic rdinit=/init";
/// Files in the run directory, in serial port order.
const SERIAL_FILES: [&str; 4] = ["console.log", "out.log", "err.log", "status.log"];
const CONSOLE_TAIL_LINES: usize = 60;
const OUTPUT_TAIL_LINES: usize = 20;
const POLL: Duration = Duration::from_millis(50);

/// Whether the payload's stdout/stderr are copied to ours while the guest runs.
#[derive(Clone, Copy, PartialEq)]
pub enum Echo {
    Quiet,
    Live,
}

pub struct Outcome {
    pub status: i32,
    pub out: Vec<u8>,
    pub console_tail: String,
    pub elapsed: Duration,
}

/// Boots `kernel` with `initrd` (serial logs go to `dir`) and returns the payload's exit status
/// from the marker `vm/init` writes on ttyS3. No marker (hang, panic, init died) or the deadline
/// passing is an error showing the end of the console.
pub fn boot(
    kernel: &Kernel,
    initrd: &Path,
    dir: &Path,
    timeout: Duration,
    echo: Echo,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut qemu = KillOnDrop(
        command(kernel, initrd, dir)?
            .spawn()
            .context("cannot start qemu-system-x86_64 (run `cargo xtask setup`)")?,
    );
    let mut live = LiveCopy::new(dir, echo);
    let exit = loop {
        if let Some(status) = qemu.0.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            // The guest may be hung or spinning: nothing it can say is worth waiting for.
            qemu.0.kill().context("killing QEMU")?;
            qemu.0.wait()?;
            break None;
        }
        live.copy()?;
        std::thread::sleep(POLL);
    };
    live.copy()?;
    let elapsed = started.elapsed();
    let console = read_lossy(&dir.join(SERIAL_FILES[0]));
    let out = std::fs::read(dir.join(SERIAL_FILES[1])).unwrap_or_default();
    let failure = |what: String| Failure {
        what,
        dir: dir.to_owned(),
        console: console.clone(),
        // Already on our stdout when it was copied live.
        out: match echo {
            Echo::Live => String::new(),
            Echo::Quiet => String::from_utf8_lossy(&out).into_owned(),
        },
    };
    let Some(exit) = exit else {
        bail!(failure(format!(
            "the guest did not finish within {timeout:?}; QEMU was killed"
        )));
    };
    let Some(status) = exit_marker(&read_lossy(&dir.join(SERIAL_FILES[3]))) else {
        bail!(failure(why_no_marker(exit, &console)));
    };
    Ok(Outcome {
        status,
        out,
        console_tail: tail(&console, CONSOLE_TAIL_LINES),
        elapsed,
    })
}

fn command(kernel: &Kernel, initrd: &Path, dir: &Path) -> anyhow::Result<Command> {
    let qemu_log = std::fs::File::create(dir.join("qemu.log"))?;
    let mut c = Command::new("qemu-system-x86_64");
    // Relative serial file names: QEMU's option syntax would trip over commas in a path.
    c.current_dir(dir)
        .args([
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "2G",
        ])
        .args([
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
        ]);
    for file in SERIAL_FILES {
        c.arg("-serial").arg(format!("file:{file}"));
    }
    c.arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", KERNEL_CMDLINE])
        .stdin(Stdio::null())
        .stdout(qemu_log.try_clone()?)
        .stderr(qemu_log);
    // SAFETY: prctl is async-signal-safe; it only asks for SIGKILL when we die, so that a killed
    // xtask never leaves a QEMU behind.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    Ok(c)
}

/// QEMU, killed if we return early (an error, a panicking test thread) before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Both fail harmlessly once QEMU has exited and been waited for.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `@@PWRU_RS_EXIT=<n>@@`, as `vm/init` writes it.
fn exit_marker(status_log: &str) -> Option<i32> {
    let rest = status_log.split("@@PWRU_RS_EXIT=").nth(1)?;
    rest.split("@@").next()?.trim().parse().ok()
}

fn why_no_marker(qemu: ExitStatus, console: &str) -> String {
    let what = if console.contains("Kernel panic") {
        "the guest kernel panicked"
    } else if qemu.success() {
        "the guest powered off"
    } else {
        "QEMU failed (see qemu.log)"
    };
    format!("{what} before the payload's exit marker was written (QEMU: {qemu})")
}

/// Copies what the guest appended to ttyS1/ttyS2 since the last call to our stdout/stderr.
struct LiveCopy {
    streams: Vec<(PathBuf, u64, Box<dyn Write>)>,
}

impl LiveCopy {
    fn new(dir: &Path, echo: Echo) -> Self {
        let mut streams: Vec<(PathBuf, u64, Box<dyn Write>)> = Vec::new();
        if echo == Echo::Live {
            streams.push((dir.join(SERIAL_FILES[1]), 0, Box::new(std::io::stdout())));
            streams.push((dir.join(SERIAL_FILES[2]), 0, Box::new(std::io::stderr())));
        }
        Self { streams }
    }

    fn copy(&mut self) -> anyhow::Result<()> {
        for (path, offset, sink) in &mut self.streams {
            // QEMU creates the files as it starts; until then there is nothing to copy.
            let Ok(mut file) = std::fs::File::open(&*path) else {
                continue;
            };
            file.seek(SeekFrom::Start(*offset))?;
            let mut new = Vec::new();
            file.read_to_end(&mut new)?;
            if !new.is_empty() {
                *offset += new.len() as u64;
                sink.write_all(&new)?;
                sink.flush()?;
            }
        }
        Ok(())
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `error` is a guest kernel that panicked while booting, before `vm/init` started the
/// payload: nothing of pwru-rs ran yet. Under TCG this happens, rarely, when the kernel patches its
/// own code at boot (a static key flipped while another vCPU runs the site: an `int3` Oops).
pub fn panicked_while_booting(error: &anyhow::Error) -> Option<String> {
    let failure = error.downcast_ref::<Failure>()?;
    (failure.console.contains("Kernel panic") && !failure.console.contains(PAYLOAD_STARTED)).then(
        || {
            failure
                .console
                .lines()
                .find(|l| l.contains("Oops") || l.contains("Kernel panic"))
                .unwrap_or("")
                .trim()
                .to_owned()
        },
    )
}

/// What `vm/init` prints as it starts the payload.
const PAYLOAD_STARTED: &str = "init: running /payload/";

/// A guest that did not finish properly, shown with the end of its console and output.
#[derive(Debug)]
struct Failure {
    what: String,
    dir: PathBuf,
    console: String,
    out: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} (logs kept in {})", self.what, self.dir.display())?;
        writeln!(
            f,
            "--- last {CONSOLE_TAIL_LINES} lines of the guest console (ttyS0) ---"
        )?;
        writeln!(f, "{}", tail(&self.console, CONSOLE_TAIL_LINES))?;
        if !self.out.is_empty() {
            writeln!(
                f,
                "--- last {OUTPUT_TAIL_LINES} lines of the payload output (ttyS1) ---"
            )?;
            writeln!(f, "{}", tail(&self.out, OUTPUT_TAIL_LINES))?;
        }
        write!(f, "--- end ---")
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_exit_marker() {
        assert_eq!(exit_marker("@@PWRU_RS_EXIT=0@@\n"), Some(0));
        assert_eq!(exit_marker("noise\r\n@@PWRU_RS_EXIT=137@@\r\n"), Some(137));
        assert_eq!(exit_marker("@@PWRU_RS_EXIT="), None);
        assert_eq!(exit_marker(""), None);
    }

    #[test]
    fn only_a_panic_before_the_payload_is_a_boot_flake() {
        let failure = |console: &str| {
            anyhow::Error::new(Failure {
                what: "the guest kernel panicked".into(),
                dir: PathBuf::from("/tmp/x"),
                console: console.into(),
                out: String::new(),
            })
        };
        let boot =
            "[ 1.97] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[ 1.98] Kernel panic - not syncing\n";
        assert_eq!(
            panicked_while_booting(&failure(boot)).as_deref(),
            Some("[ 1.97] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI")
        );
        let during = format!("init: running /payload/guest.sh\n{boot}");
        assert_eq!(panicked_while_booting(&failure(&during)), None);
        assert_eq!(panicked_while_booting(&failure("init died\n")), None);
        assert_eq!(panicked_while_booting(&anyhow::anyhow!("other")), None);
    }
}
