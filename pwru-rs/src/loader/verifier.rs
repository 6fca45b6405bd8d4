//! The verifier's log → one line: the kernel says why it refused a program on the log's last
//! line before its statistics.

/// Lines the verifier ends its log with, after the verdict.
const STATISTICS: [&str; 3] = ["processed ", "verification time ", "stack depth "];

/// The verdict of a verifier log (its last non-empty line that is not a statistic), or "" for
/// an empty log.
pub fn verdict(log: &str) -> &str {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !STATISTICS.iter().any(|s| l.starts_with(s)))
        .unwrap_or("")
}

/// One line for a failed program load: what the kernel said, and the verifier's verdict. The
/// whole log goes to the debug log (`RUST_LOG=debug`).
pub fn describe(program: &str, error: &std::io::Error, log: &str) -> String {
    log::debug!("verifier log of {program}:\n{log}");
    match verdict(log) {
        "" => format!("the kernel refused {program}: {error}"),
        verdict => format!("the kernel verifier rejected {program}: {error}: {verdict}"),
    }
}

/// [`describe`] for a load done by aya.
pub fn describe_aya_error(program: &str, err: &aya::programs::ProgramError) -> String {
    match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => describe(program, io_error, &verifier_log.to_string()),
        other => format!("loading {program} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_last_non_empty_line() {
        assert_eq!(
            verdict("0: (b7) r0 = 0\nR1 invalid mem access 'scalar'\n\n  \n"),
            "R1 invalid mem access 'scalar'"
        );
        assert_eq!(verdict(""), "");
        // 6.1 ends a rejection with statistics; the verdict is before them.
        assert_eq!(
            verdict(
                "2017: (71) r8 = *(u8 *)(r2 -72)\ninvalid variable-offset read from stack R2\n\
                 verification time 30279 usec\nstack depth 0+80+80\n\
                 processed 1010 insns (limit 1000000) max_states_per_insn 2\n"
            ),
            "invalid variable-offset read from stack R2"
        );
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(describe("p", &e, "x\nbad\n").ends_with(": bad"));
        assert!(describe("p", &e, "").starts_with("the kernel refused p: "));
    }
}
