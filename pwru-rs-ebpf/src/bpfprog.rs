//! `--filter-trace-tc` / `--filter-trace-xdp`: fentry and fexit on the BPF programs of a
//! dataplane (Cilium's, Calico's). Userspace loads each of these once per traced program, with
//! that program as the attach target; the event names the program by its address.

use aya_ebpf::{
    helpers::generated::{bpf_get_func_arg, bpf_get_func_ip},
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
    EbpfContext,
};
use pwru_rs_common::{assert_contract_name, contract, record::HOOK_BPF_PROG};

use crate::skb::{handle_skb, handle_xdp, Hit, XdpHit};

/// Argument `n` of the traced program as a plain number. Read from the context, the verifier
/// types it as a kernel pointer (BTF), which the global filter and expression functions, whose
/// parameters are scalars, refuse; the helper (inlined by the verifier) hands it back untyped.
#[inline(always)]
fn scalar_arg(ctx: *mut core::ffi::c_void, n: u32) -> u64 {
    let mut value = 0u64;
    unsafe { bpf_get_func_arg(ctx, n, &mut value) };
    value
}

/// A tc program (`struct __sk_buff *`, which is the `struct sk_buff *` itself) at its entry,
/// or at its exit with its return value.
#[inline(always)]
fn tc_hit(ctx: *mut core::ffi::c_void, skb: u64, verdict: Option<u32>) {
    handle_skb(Hit {
        ctx,
        skb,
        hook_kind: HOOK_BPF_PROG,
        hook: || unsafe { bpf_get_func_ip(ctx) },
        caller: || 0,
        reason: None,
        verdict,
        // No stack pointer here: `--filter-track-skb-by-stackid` does not see these hooks.
        stack_key: 0,
        via_stack: false,
        netfilter: crate::skb::NfChain::NONE,
    });
}

#[fentry]
pub fn pwru_fentry_tc(ctx: FEntryContext) -> u32 {
    tc_hit(ctx.as_ptr(), scalar_arg(ctx.as_ptr(), 0), None);
    0
}
assert_contract_name!(pwru_fentry_tc, contract::FENTRY_TC);

#[fexit]
pub fn pwru_fexit_tc(ctx: FExitContext) -> u32 {
    // The return value follows the one argument.
    let verdict: u64 = ctx.arg(1);
    tc_hit(
        ctx.as_ptr(),
        scalar_arg(ctx.as_ptr(), 0),
        Some(verdict as u32),
    );
    0
}
assert_contract_name!(pwru_fexit_tc, contract::FEXIT_TC);

/// An XDP program (`struct xdp_md *`, which is the `struct xdp_buff *`).
#[inline(always)]
fn xdp_hit(ctx: *mut core::ffi::c_void, xdp: u64, verdict: Option<u32>) {
    handle_xdp(XdpHit {
        ctx,
        xdp,
        hook: || unsafe { bpf_get_func_ip(ctx) },
        verdict,
    });
}

#[fentry]
pub fn pwru_fentry_xdp(ctx: FEntryContext) -> u32 {
    xdp_hit(ctx.as_ptr(), scalar_arg(ctx.as_ptr(), 0), None);
    0
}
assert_contract_name!(pwru_fentry_xdp, contract::FENTRY_XDP);

#[fexit]
pub fn pwru_fexit_xdp(ctx: FExitContext) -> u32 {
    let verdict: u64 = ctx.arg(1);
    xdp_hit(
        ctx.as_ptr(),
        scalar_arg(ctx.as_ptr(), 0),
        Some(verdict as u32),
    );
    0
}
assert_contract_name!(pwru_fexit_xdp, contract::FEXIT_XDP);
