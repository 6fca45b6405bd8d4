//! `--filter-trace-tc` / `--filter-trace-xdp`: fentry and fexit on the BPF programs of a
//! dataplane (Cilium's, Calico's). Userspace loads each of these once per traced program, with
//! that program as the attach target; the event names the program by its address.

use aya_ebpf::{
    helpers::generated::{bpf_get_func_arg, bpf_get_func_ip},
    macros::{fentry, fexit, map},
    maps::PerCpuArray,
    programs::{FEntryContext, FExitContext},
    EbpfContext,
};
use pwru_rs_common::{assert_contract_name, contract, record::HOOK_BPF_PROG, InBpfProg};

use crate::skb::{handle_skb, handle_xdp, helpers_tracked, Hit, XdpHit};

/// `--filter-track-bpf-helpers`: per CPU, the packets of the traced programs running on it now,
/// innermost last (a program may run another's hook: `bpf_clone_redirect` transmits at once).
/// A traced program's entry pushes its packet (0 when the filters did not pass it), its exit
/// pops. BPF programs run with migration disabled, so entry and exit are on the same CPU.
#[map]
static IN_BPF_PROG: PerCpuArray<InBpfProg> = PerCpuArray::with_max_entries(1, 0);
assert_contract_name!(IN_BPF_PROG, contract::IN_BPF_PROG_MAP);

/// Marks an XDP packet among them (the low bit: `xdp_buff`s and skbs are aligned).
const XDP_BIT: u64 = 1;

/// The packet of the traced program running on this CPU now.
pub enum Packet {
    Skb(u64),
    Xdp(u64),
}

/// At a traced program's entry: `packet` (0: not traced) runs in it until its exit. The
/// innermost is always slot 0 (the others shift): constant indices only, which the verifier
/// bounds where a run-time index into the map value is refused.
#[inline(always)]
fn enter(packet: u64) {
    if !helpers_tracked() {
        return;
    }
    let Some(p) = IN_BPF_PROG.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *p };
    // Deeper than the slots: counted, so that the exits match, but seen as not traced.
    if s.depth < SLOTS {
        s.packets[3] = s.packets[2];
        s.packets[2] = s.packets[1];
        s.packets[1] = s.packets[0];
        s.packets[0] = packet;
    }
    s.depth = s.depth.saturating_add(1);
}

/// Slots of [`InBpfProg::packets`].
const SLOTS: u64 = 4;

/// At a traced program's exit.
#[inline(always)]
fn leave() {
    if !helpers_tracked() {
        return;
    }
    let Some(p) = IN_BPF_PROG.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *p };
    // An exit whose entry ran before it was attached finds nothing to pop.
    if s.depth == 0 {
        return;
    }
    if s.depth <= SLOTS {
        s.packets[0] = s.packets[1];
        s.packets[1] = s.packets[2];
        s.packets[2] = s.packets[3];
        s.packets[3] = 0;
    }
    s.depth -= 1;
}

/// The packet of the innermost traced program running on this CPU, if it is traced.
#[inline(always)]
pub fn current_packet() -> Option<Packet> {
    let s = unsafe { &*IN_BPF_PROG.get_ptr(0)? };
    if s.depth == 0 || s.depth > SLOTS {
        return None;
    }
    match s.packets[0] {
        0 => None,
        p if p & XDP_BIT != 0 => Some(Packet::Xdp(p & !XDP_BIT)),
        p => Some(Packet::Skb(p)),
    }
}

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
fn tc_hit(ctx: *mut core::ffi::c_void, skb: u64, verdict: Option<u32>) -> bool {
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
        given: None,
        netfilter: crate::skb::NfChain::NONE,
    })
}

#[fentry]
pub fn pwru_fentry_tc(ctx: FEntryContext) -> u32 {
    let skb = scalar_arg(ctx.as_ptr(), 0);
    let traced = tc_hit(ctx.as_ptr(), skb, None);
    enter(if traced { skb } else { 0 });
    0
}
assert_contract_name!(pwru_fentry_tc, contract::FENTRY_TC);

#[fexit]
pub fn pwru_fexit_tc(ctx: FExitContext) -> u32 {
    // The return value follows the one argument.
    let verdict: u64 = ctx.arg(1);
    leave();
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
fn xdp_hit(ctx: *mut core::ffi::c_void, xdp: u64, verdict: Option<u32>) -> bool {
    handle_xdp(XdpHit {
        ctx,
        xdp,
        hook_kind: HOOK_BPF_PROG,
        hook: || unsafe { bpf_get_func_ip(ctx) },
        verdict,
        given: false,
    })
}

#[fentry]
pub fn pwru_fentry_xdp(ctx: FEntryContext) -> u32 {
    let xdp = scalar_arg(ctx.as_ptr(), 0);
    let traced = xdp_hit(ctx.as_ptr(), xdp, None);
    enter(if traced { xdp | XDP_BIT } else { 0 });
    0
}
assert_contract_name!(pwru_fentry_xdp, contract::FENTRY_XDP);

#[fexit]
pub fn pwru_fexit_xdp(ctx: FExitContext) -> u32 {
    let verdict: u64 = ctx.arg(1);
    leave();
    xdp_hit(
        ctx.as_ptr(),
        scalar_arg(ctx.as_ptr(), 0),
        Some(verdict as u32),
    );
    0
}
assert_contract_name!(pwru_fexit_xdp, contract::FEXIT_XDP);
