//! `--filter-trace-tc` / `--filter-trace-xdp`: fentry and fexit on the BPF programs of a
//! dataplane (Cilium's, Calico's). Userspace loads each of these once per traced program, with
//! that program as the attach target; the event names the program by its address.

use aya_ebpf::{
    helpers::generated::{bpf_get_func_arg, bpf_get_func_ip, bpf_get_func_ret},
    macros::{fentry, fexit, map},
    maps::PerCpuArray,
    programs::{FEntryContext, FExitContext},
    EbpfContext,
};
use pwru_rs_common::{
    assert_contract_name, contract,
    record::{
        BPF_MAP_DELETE, BPF_MAP_LOOKUP, BPF_MAP_UPDATE, HOOK_BPF_PROG, HOOK_FUNC_IP,
        TRACKED_BY_SKB, TRACKED_NONE,
    },
    InBpfProg,
};

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

/// How an event found through the running traced program reports why it was traced: the
/// packet passed the filters at the program's entry (tracked, with `--filter-track-skb`).
#[inline(always)]
pub fn found_tracked_by() -> u8 {
    if crate::skb::tracking() {
        TRACKED_BY_SKB
    } else {
        TRACKED_NONE
    }
}

/// `--output-bpfmap`: at the exit of a map operation (`op`) that a traced program called on a
/// traced packet: an event of that packet with the map, the key and the value (argument
/// `value_arg`, or for a lookup what it returned).
#[inline(always)]
fn map_op(ctx: *mut core::ffi::c_void, op: u8, value_arg: Option<u32>) {
    let Some(packet) = current_packet() else {
        return;
    };
    let mut ret = 0u64;
    unsafe { bpf_get_func_ret(ctx, &mut ret) };
    let map = scalar_arg(ctx, 0);
    if crate::skb::is_own_map(map) {
        return;
    }
    let (value, ret) = match value_arg {
        Some(n) => (scalar_arg(ctx, n), ret as i32),
        None if op == BPF_MAP_LOOKUP => (ret, 0),
        // A hash map's element: the value follows the key, 8-byte aligned.
        None if op == LOOKUP_ELEM => match ret {
            0 => (0, 0),
            elem => (crate::skb::htab_elem_value(map, elem), 0),
        },
        None => (0, ret as i32),
    };
    let op = if op == LOOKUP_ELEM {
        BPF_MAP_LOOKUP
    } else {
        op
    };
    if !crate::skb::note_bpf_map(map, scalar_arg(ctx, 1), value, op, ret) {
        return;
    }
    match packet {
        Packet::Skb(skb) => {
            handle_skb(Hit {
                ctx,
                skb,
                hook_kind: HOOK_FUNC_IP,
                hook: || unsafe { bpf_get_func_ip(ctx) },
                caller: || 0,
                reason: || None,
                verdict: None,
                stack_key: || 0,
                given: Some(found_tracked_by()),
                netfilter: crate::skb::NfChain::NONE,
                bpf_map: true,
            });
        }
        Packet::Xdp(xdp) => {
            handle_xdp(XdpHit {
                ctx,
                xdp,
                hook_kind: HOOK_FUNC_IP,
                hook: || unsafe { bpf_get_func_ip(ctx) },
                verdict: None,
                given: true,
                bpf_map: true,
            });
        }
    }
}

/// `map_lookup_elem(map, key)`, returning the value or NULL.
#[fexit]
pub fn pwru_fexit_map_lookup(ctx: FExitContext) -> u32 {
    map_op(ctx.as_ptr(), BPF_MAP_LOOKUP, None);
    0
}
assert_contract_name!(pwru_fexit_map_lookup, contract::FEXIT_BPF_MAP_LOOKUP);

/// `__htab_map_lookup_elem(map, key)`, returning the element or NULL.
#[fexit]
pub fn pwru_fexit_map_lookup_elem(ctx: FExitContext) -> u32 {
    map_op(ctx.as_ptr(), LOOKUP_ELEM, None);
    0
}
assert_contract_name!(
    pwru_fexit_map_lookup_elem,
    contract::FEXIT_BPF_MAP_LOOKUP_ELEM
);

/// `map_op`'s own: a lookup returning a hash map's element.
const LOOKUP_ELEM: u8 = 0xff;

/// `map_update_elem(map, key, value, flags)`.
#[fexit]
pub fn pwru_fexit_map_update(ctx: FExitContext) -> u32 {
    map_op(ctx.as_ptr(), BPF_MAP_UPDATE, Some(2));
    0
}
assert_contract_name!(pwru_fexit_map_update, contract::FEXIT_BPF_MAP_UPDATE);

/// `map_delete_elem(map, key)`.
#[fexit]
pub fn pwru_fexit_map_delete(ctx: FExitContext) -> u32 {
    map_op(ctx.as_ptr(), BPF_MAP_DELETE, None);
    0
}
assert_contract_name!(pwru_fexit_map_delete, contract::FEXIT_BPF_MAP_DELETE);

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
        reason: || None,
        verdict,
        // No stack pointer here: `--filter-track-skb-by-stackid` does not see these hooks.
        stack_key: || 0,
        given: None,
        netfilter: crate::skb::NfChain::NONE,
        bpf_map: false,
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
        bpf_map: false,
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
