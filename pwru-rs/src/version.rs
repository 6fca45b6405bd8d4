//! `--version`: what pwru-rs is (version, commit, aya) and, as root, what this kernel lets it do.

use std::fmt::Write;

use crate::{backend::support, config::has_bpf_privileges};

/// Set by build.rs.
pub const COMMIT: &str = env!("PWRU_RS_GIT_COMMIT");
pub const AYA_VERSION: &str = env!("PWRU_RS_AYA_VERSION");

/// The lines `--version` prints.
pub fn report() -> String {
    let mut out = format!(
        "pwru-rs {}\ncommit: {COMMIT}\naya: {AYA_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    );
    if !has_bpf_privileges() {
        out.push_str(
            "backends: probing the kernel needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)\n",
        );
        return out;
    }
    let verdicts: Vec<String> = support::probe()
        .into_iter()
        .map(|(backend, verdict)| match verdict {
            Ok(()) => format!("{backend}: supported"),
            Err(why) => format!("{backend}: unsupported ({why})"),
        })
        .collect();
    let _ = writeln!(out, "backends: {}", verdicts.join("; "));
    out
}
