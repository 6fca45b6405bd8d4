//! Faults the reliability tests inject into a real run (`tests/survival.rs`, the guests), each
//! behind an environment variable read once: a panic in the event reader, an attach that fails
//! half-way, a program the verifier rejects. Unset, they cost a branch at start.

/// `PWRU_RS_TEST_PANIC_AFTER=N`: the event reader panics on the event after the Nth.
pub const PANIC_AFTER: &str = "PWRU_RS_TEST_PANIC_AFTER";
/// `PWRU_RS_TEST_FAIL_ATTACH_AT=N`: attaching the Nth hook (0-based) fails with EPERM, after
/// the ones before it are attached.
pub const FAIL_ATTACH_AT: &str = "PWRU_RS_TEST_FAIL_ATTACH_AT";
/// `PWRU_RS_TEST_VERIFIER_REJECT=1`: the pcap filter injected into the programs reads outside
/// its stack, which every verifier rejects.
pub const VERIFIER_REJECT: &str = "PWRU_RS_TEST_VERIFIER_REJECT";

fn number(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.parse().ok()
}

pub fn panic_after() -> Option<u64> {
    number(PANIC_AFTER)
}

/// The injected failure when hook `index` is the one to fail.
pub fn attach_failure(index: usize) -> Option<std::io::Error> {
    (number(FAIL_ATTACH_AT)? == index as u64).then(|| {
        log::debug!("{FAIL_ATTACH_AT}: failing hook {index}");
        std::io::Error::from_raw_os_error(libc::EPERM)
    })
}

pub fn verifier_reject() -> bool {
    std::env::var_os(VERIFIER_REJECT).is_some()
}

/// `r0 = *(u64 *)(r10 - 1000); exit`: a read below the 512-byte stack.
pub const REJECTED_PROGRAM: [u8; 16] = [
    0x79, 0xa0, 0x18, 0xfc, 0, 0, 0, 0, // ldxdw r0, [r10 - 1000]
    0x95, 0, 0, 0, 0, 0, 0, 0, // exit
];
