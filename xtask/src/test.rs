//! `cargo xtask test`: the whole suite, as `.ci/run` runs it. Every step runs even when an earlier
//! one failed, and the failures are listed together at the end.

use std::time::Instant;

use anyhow::bail;

use crate::cmd;

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut step = |name: &str, result: anyhow::Result<()>| {
        if let Err(e) = result {
            eprintln!("xtask: FAILED: {name}: {e:#}");
            failures.push(format!("{name}: {e:#}"));
        }
    };

    step(
        "rustfmt",
        cmd::run(cmd::cargo().args(["fmt", "--all", "--check"])),
    );
    step(
        "clippy",
        cmd::run(cmd::cargo().args([
            "clippy",
            "--release",
            "--all-targets",
            "--workspace",
            "--exclude",
            "pwru-rs-ebpf",
            "--",
            "-D",
            "warnings",
        ])),
    );
    step(
        "unit tests",
        cmd::run(cmd::cargo().args([
            "test",
            "--release",
            "--workspace",
            "--exclude",
            "pwru-rs-ebpf",
            "--exclude",
            "integration-tests",
        ])),
    );
    match cmd::build_release() {
        Ok(bin) => {
            step("integration tests", integration_tests(&bin));
            for kernel in GUEST_KERNELS {
                step(
                    &format!("guest tests ({kernel})"),
                    guest_tests(&bin, kernel),
                );
            }
            let dist = crate::dist::run();
            step(
                "the static binary alone in the guests",
                dist.as_ref()
                    .map_err(|e| anyhow::anyhow!("{e:#}"))
                    .and_then(|bin| static_alone(bin)),
            );
            step("kubernetes: manifest and image", kubernetes(dist.is_ok()));
        }
        Err(e) => step("release build", Err(e)),
    }

    eprintln!("xtask: test suite took {:.0?}", started.elapsed());
    if !failures.is_empty() {
        bail!(
            "{} step(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// Stock Debian kernels the kprobe backends are tested on: 6.12 (kprobe-multi and kprobe) and
/// 6.1 (kprobe only).
const GUEST_KERNELS: [&str; 2] = ["linux-image-6.12-cloud-amd64", "linux-image-cloud-amd64"];

/// `tests/vm/guest.sh` in a QEMU guest; its output is printed either way.
fn guest_tests(bin: &std::path::Path, kernel: &str) -> anyhow::Result<()> {
    let payload = cmd::root().join("tests/vm");
    let run = crate::vm::run_script(
        kernel,
        bin,
        &payload,
        "guest.sh",
        std::time::Duration::from_secs(900),
        crate::vm::Image::Full,
    )?;
    eprintln!("{}", run.output.trim_end());
    eprintln!(
        "xtask: guest tests on {kernel}: status {} in {:.0?}",
        run.status, run.boot_and_run
    );
    if run.status != 0 {
        bail!(
            "exit status {} (console tail:\n{})",
            run.status,
            run.console_tail
        );
    }
    Ok(())
}

/// `cargo xtask dist`'s binary in a guest image without any shared library, on each kernel
/// (`tests/vm/bare.sh`).
fn static_alone(bin: &std::path::Path) -> anyhow::Result<()> {
    let payload = cmd::root().join("tests/vm");
    let mut failed = Vec::new();
    for kernel in GUEST_KERNELS {
        let run = crate::vm::run_script(
            kernel,
            bin,
            &payload,
            "bare.sh",
            std::time::Duration::from_secs(300),
            crate::vm::Image::Bare,
        )?;
        eprintln!("{}", run.output.trim_end());
        if run.status != 0 {
            failed.push(format!(
                "{kernel}: exit status {} (console tail:\n{})",
                run.status, run.console_tail
            ));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// deploy/kubernetes: the manifest against Kubernetes' schema (strict: an unknown field is an
/// error), and the image built with podman from `dist/` (when the static build worked). Running
/// the image needs a container runtime this machine's sandbox refuses (crun cannot set rlimits):
/// the guests run the same binary alone instead.
fn kubernetes(dist_built: bool) -> anyhow::Result<()> {
    let dir = cmd::root().join("deploy/kubernetes");
    cmd::run(
        std::process::Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(dir.join("daemonset.yaml")),
    )?;
    if !dist_built {
        bail!("no static binary to build the image from");
    }
    let podman = |args: &[&str]| {
        let mut c = std::process::Command::new("podman");
        // vfs: no overlay mounts needed, which a CI sandbox may refuse.
        c.args(["--storage-driver", "vfs"]).args(args);
        c
    };
    cmd::run(
        podman(&["build", "--quiet", "-t", "localhost/pwru-rs:test", "-f"])
            .arg(dir.join("Containerfile"))
            .arg(cmd::root().join("dist")),
    )?;
    let size = cmd::output(&mut podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        "localhost/pwru-rs:test",
    ]))?;
    eprintln!(
        "xtask: kubernetes: image localhost/pwru-rs:test, {:.1} MB",
        size.trim().parse::<f64>().unwrap_or(0.0) / 1e6
    );
    cmd::run(&mut podman(&["rmi", "localhost/pwru-rs:test"]))?;
    Ok(())
}

/// Host integration tests: they make namespaces and load eBPF, so they run as root.
fn integration_tests(bin: &std::path::Path) -> anyhow::Result<()> {
    let json = cmd::run_stdout(cmd::cargo().args([
        "test",
        "--release",
        "--package",
        "integration-tests",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]))?;
    let tests = cmd::executables(&json, |msg| msg["profile"]["test"] == true)?;
    if tests.is_empty() {
        bail!("cargo built no integration test binaries");
    }
    let mut failed = Vec::new();
    for exe in tests {
        let name = exe
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let result = cmd::run(cmd::privileged(&exe).env("PWRU_RS_BIN", bin));
        if let Err(e) = result {
            failed.push(format!("{name}: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::cmd;

    /// The composite actions under `actions/`: each runs scripts that exist and are executable,
    /// and uses every input it declares (a misspelt `inputs.x` would be an empty string on
    /// GitHub, silently). The guests run the scripts themselves (tests/vm/guest.sh).
    #[test]
    fn actions_run_their_scripts_and_use_their_inputs() {
        let root = cmd::root().join("actions");
        let mut actions = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let yml = entry.unwrap().path().join("action.yml");
            let Ok(text) = std::fs::read_to_string(&yml) else {
                continue;
            };
            actions += 1;
            assert!(text.contains("using: composite"), "{}", yml.display());
            let mut scripts = 0;
            for at in text.match_indices("$GITHUB_ACTION_PATH/").map(|(i, _)| i) {
                let rest = &text[at + "$GITHUB_ACTION_PATH/".len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let script = yml.parent().unwrap().join(&path);
                let mode = std::fs::metadata(&script)
                    .unwrap_or_else(|e| panic!("{}: {path}: {e}", yml.display()))
                    .permissions()
                    .mode();
                assert!(mode & 0o111 != 0, "{} is not executable", script.display());
                scripts += 1;
            }
            assert!(scripts > 0, "{} runs no script", yml.display());
            let inputs = text
                .split("\ninputs:\n")
                .nth(1)
                .and_then(|rest| rest.split("\nruns:\n").next())
                .unwrap_or_default();
            for line in inputs.lines() {
                let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) else {
                    continue;
                };
                if name.starts_with(' ') {
                    continue;
                }
                assert!(
                    text.contains(&format!("inputs.{name} "))
                        || text.contains(&format!("inputs.{name}}}")),
                    "{}: input {name} is declared but not used",
                    yml.display()
                );
            }
        }
        assert_eq!(actions, 2, "pwru-rs-run and pwru-rs-log");
    }
}
