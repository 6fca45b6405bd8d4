//! What pwru-rs survives, on this host's tracepoint backend: every way a run can end (the
//! signals a user or a CI runner sends, a reader that went away, the output limit, a full disk,
//! a bug in the reader, a program the verifier refuses, an attach failing half-way) ends with
//! the documented exit status, one error line where it is an error, and nothing of pwru-rs
//! left in the kernel: no program, no map, no link (links hold programs). The guests run the
//! kprobe backends' cases (tests/vm/guest.sh); the README's "What pwru-rs survives" lists all.
//!
//! One test: the cases run one after the other, so that each one's kernel objects are its own.

use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use integration_tests::{pwru_bin, pwru_programs, require_root, run_within};
use pwru_rs_harness::{sh, Netns, Pwru, TempDir};

const BACKEND: &str = "tracepoint";
const START: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(20);

/// pwru-rs's kernel objects now: its programs and its maps, by name.
#[derive(Debug, PartialEq, Eq)]
struct Objects {
    programs: Vec<String>,
    maps: Vec<String>,
}

/// The names of the maps in pwru-rs's object, as the kernel keeps them (15 bytes).
fn our_map_names() -> Vec<String> {
    let object = pwru_rs::loader::embedded_object().unwrap();
    let parsed = aya_obj::Object::parse(object).unwrap();
    parsed
        .maps
        .keys()
        // Sections (`.rodata`, `.bss`) are named like every other program's.
        .filter(|name| !name.starts_with('.'))
        .map(|name| name.chars().take(15).collect())
        .collect()
}

fn objects(ours: &[String]) -> Objects {
    let mut maps: Vec<String> = pwru_rs::loader::sys::loaded_map_names()
        .unwrap()
        .into_iter()
        .filter(|name| ours.contains(name))
        .collect();
    maps.sort();
    let mut programs = pwru_programs();
    programs.sort();
    Objects { programs, maps }
}

/// pwru-rs's objects once the kernel has freed what it will: it frees a program or map after
/// its last reference goes (RCU, a work queue), a moment after the process's exit. Waits at
/// most a few seconds for them to be `want` (any, when `None`, then until they stop changing).
fn settled(ours: &[String], want: Option<&Objects>) -> Objects {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = objects(ours);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let next = objects(ours);
        let done = match want {
            Some(want) => next == *want,
            None => next == now && next.programs.is_empty() && next.maps.is_empty(),
        };
        if done || Instant::now() >= deadline {
            return next;
        }
        now = next;
    }
}

/// Starts pwru-rs (tracing ICMP) with `env` set and waits until it is ready.
fn start(env: &[(&str, &str)], args: &[&str], dir: TempDir) -> Pwru {
    let bin = pwru_bin();
    let mut all: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    all.push(bin.to_string_lossy().into_owned());
    all.extend(["--backend", BACKEND].map(String::from));
    all.extend(args.iter().map(|a| a.to_string()));
    Pwru::start(Path::new("/usr/bin/env"), dir, all, START).expect("pwru-rs gets ready")
}

fn signal(pwru: &Pwru, sig: libc::c_int) {
    // SAFETY: our own running child.
    unsafe { libc::kill(pwru.pid() as libc::pid_t, sig) };
}

fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("error")).collect()
}

/// A way to run pwru-rs to its end: its exit status and stderr.
type Run = Box<dyn Fn(&Netns) -> (ExitStatus, String)>;

struct Case {
    name: &'static str,
    /// Status and stderr.
    run: Run,
    check: fn(ExitStatus, &str) -> Result<(), String>,
}

fn exit_0(status: ExitStatus, stderr: &str) -> Result<(), String> {
    if status.code() == Some(0) && errors(stderr).is_empty() {
        Ok(())
    } else {
        Err(format!("want exit 0 without errors, got {status}"))
    }
}

fn one_error(code: i32, says: &'static str) -> impl Fn(ExitStatus, &str) -> Result<(), String> {
    move |status, stderr| {
        let errors = errors(stderr);
        if status.code() == Some(code) && errors.len() == 1 && errors[0].contains(says) {
            Ok(())
        } else {
            Err(format!(
                "want exit {code} and one error line with {says:?}, got {status}"
            ))
        }
    }
}

fn ping(ns: &Netns, count: u32) {
    let _ = ns.sh(&format!(
        "ping -q -c {count} -i 0.01 -W 1 127.0.0.1 >/dev/null"
    ));
}

/// Runs pwru-rs until `sig`, after a ping.
fn until_signal(sig: libc::c_int) -> Run {
    Box::new(move |ns| {
        let pwru = start(
            &[],
            &["--output-file", "/dev/null", "icmp"],
            TempDir::new("pwru-rs-surv").unwrap(),
        );
        ping(ns, 3);
        signal(&pwru, sig);
        let stopped = pwru.wait(EXIT).expect("pwru-rs exits");
        (stopped.status, stopped.stderr)
    })
}

/// Runs pwru-rs to an end of its own (`env` and `args`), making traffic meanwhile.
fn until_it_ends(
    env: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
) -> Run {
    Box::new(move |ns| {
        let dir = TempDir::new("pwru-rs-surv").unwrap();
        let pwru = start(env, args, dir);
        let deadline = Instant::now() + EXIT;
        let mut pwru = pwru;
        while !pwru.has_exited().unwrap() && Instant::now() < deadline {
            ping(ns, 20);
        }
        let stopped = pwru.wait(EXIT).expect("pwru-rs ends by itself");
        (stopped.status, stopped.stderr)
    })
}

/// Runs pwru-rs expecting it to fail before it is ready.
fn at_start(env: &'static [(&'static str, &'static str)]) -> Run {
    Box::new(move |_| {
        let out = run_within(
            Command::new(pwru_bin()).envs(env.iter().copied()).args([
                "--backend",
                BACKEND,
                "--output-file",
                "/dev/null",
                "icmp",
            ]),
            EXIT,
        );
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
}

#[test]
fn every_end_leaves_nothing_in_the_kernel() {
    require_root();
    let ours = our_map_names();
    assert!(ours.iter().any(|m| m == "EVENTS"), "{ours:?}");
    let ns = Netns::new("pwrusurvive").unwrap();
    let full = TempDir::new("pwru-rs-full").unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=64k pwru-rs-full {}",
        full.path().display()
    ))
    .expect("mounting a small tmpfs");
    let full_file = full.join("out.txt").to_string_lossy().into_owned();
    let full_file: &'static str = Box::leak(full_file.into_boxed_str());
    let cases = vec![
        Case {
            name: "SIGINT",
            run: until_signal(libc::SIGINT),
            check: exit_0,
        },
        Case {
            name: "SIGTERM",
            run: until_signal(libc::SIGTERM),
            check: exit_0,
        },
        Case {
            name: "SIGHUP",
            run: until_signal(libc::SIGHUP),
            check: exit_0,
        },
        Case {
            name: "SIGKILL",
            run: until_signal(libc::SIGKILL),
            check: |status, _| match status.signal() {
                Some(libc::SIGKILL) => Ok(()),
                _ => Err(format!("want killed by SIGKILL, got {status}")),
            },
        },
        Case {
            name: "--output-limit-lines",
            run: until_it_ends(
                &[],
                &[
                    "--output-limit-lines",
                    "3",
                    "--output-file",
                    "/dev/null",
                    "icmp",
                ],
            ),
            check: exit_0,
        },
        Case {
            name: "stdout's reader gone (| head -n 1)",
            run: Box::new(|ns| {
                let dir = TempDir::new("pwru-rs-surv").unwrap();
                let ready = dir.join("ready");
                let script = format!(
                    "{} --backend {BACKEND} --ready-file {} icmp 2>{}/stderr | head -n 1 >/dev/null; exit ${{PIPESTATUS[0]}}",
                    pwru_bin().display(),
                    ready.display(),
                    dir.path().display()
                );
                let mut child = Command::new("bash").args(["-c", &script]).spawn().unwrap();
                let deadline = Instant::now() + START;
                while !ready.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // The header went to head, which has exited: pwru-rs must notice without a
                // write, and end at once.
                let stopped_at = Instant::now();
                let status = pwru_rs_harness::wait_within(
                    &mut child,
                    Duration::from_secs(5),
                    "pwru-rs | head",
                    String::new,
                )
                .expect("pwru-rs ends once head has gone");
                let _ = ns;
                assert!(stopped_at.elapsed() < Duration::from_secs(5));
                (
                    status,
                    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
                )
            }),
            check: exit_0,
        },
        Case {
            name: "output file's disk full",
            run: until_it_ends(
                &[],
                Box::leak(Box::new(["--output-file", full_file, "icmp"])),
            ),
            check: |status, stderr| one_error(1, "No space left on device")(status, stderr),
        },
        Case {
            name: "panic in the event reader",
            run: until_it_ends(
                &[(pwru_rs::fault::PANIC_AFTER, "2")],
                &["--output-file", "/dev/null", "icmp"],
            ),
            check: |status, stderr| one_error(101, "internal error")(status, stderr),
        },
        Case {
            name: "verifier rejection",
            run: at_start(&[(pwru_rs::fault::VERIFIER_REJECT, "1")]),
            check: |status, stderr| one_error(1, "invalid read from stack")(status, stderr),
        },
        Case {
            name: "attach failing half-way",
            run: at_start(&[(pwru_rs::fault::FAIL_ATTACH_AT, "5")]),
            check: |status, stderr| one_error(1, "Operation not permitted")(status, stderr),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let before = settled(&ours, None);
        let (status, stderr) = (case.run)(&ns);
        let verdict = (case.check)(status, &stderr);
        let after = settled(&ours, Some(&before));
        eprintln!("{}: {status}: {}", case.name, errors(&stderr).join(" / "));
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}; stderr: {stderr}", case.name));
        }
        if after != before {
            failures.push(format!(
                "{}: left in the kernel: {after:?} (before: {before:?})",
                case.name
            ));
        }
    }
    let _ = sh(&format!("umount {}", full.path().display()));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
