//! kprobe and kprobe-multi backends: one program per position of the `struct sk_buff *` among
//! the function's arguments (pwru's scheme), plus the two drop functions whose reason argument
//! is printed. The same programs serve plain kprobes and kprobe-multi links.

use aya_ebpf::{
    helpers::generated::bpf_get_func_ip,
    macros::{kprobe, map},
    maps::Array,
    programs::ProbeContext,
    EbpfContext,
};
use pwru_rs_common::{
    contract,
    record::{HOOK_FUNC_IP, TRACKED_BY_STACKID},
    FuncSlot,
};

use crate::skb::{handle_skb, handle_xdp, Hit, XdpHit};

#[inline(always)]
fn hit(ctx: &ProbeContext, skb_arg: usize, reason_arg: Option<usize>) -> u32 {
    let skb: u64 = ctx.arg(skb_arg).unwrap_or(0);
    let reason = move || reason_arg.map(|n| ctx.arg::<u64>(n).unwrap_or(0) as u32);
    handle_skb(hit_at(ctx, skb, reason, None));
    0
}

/// A hit of this probe on `skb`; the probed function's address comes from the kernel.
#[inline(always)]
fn hit_at<R: FnOnce() -> Option<u32>>(
    ctx: &ProbeContext,
    skb: u64,
    reason: R,
    given: Option<u8>,
) -> Hit<impl FnOnce() -> u64 + '_, impl FnOnce() -> u64 + '_, R, impl Fn() -> u64 + Copy + '_> {
    // The probed function's address; userspace names it through kallsyms.
    hit_at_ip(ctx, skb, reason, given, || unsafe {
        bpf_get_func_ip(ctx.as_ptr())
    })
}

/// [`hit_at`] with the function's address from `hook`.
#[inline(always)]
fn hit_at_ip<H: FnOnce() -> u64, R: FnOnce() -> Option<u32>>(
    ctx: &ProbeContext,
    skb: u64,
    reason: R,
    given: Option<u8>,
    hook: H,
) -> Hit<H, impl FnOnce() -> u64 + '_, R, impl Fn() -> u64 + Copy + '_> {
    // Read when asked: most hits are filtered out before either needs it.
    let regs = ctx.regs;
    let sp = move || unsafe { (*regs).rsp };
    Hit {
        ctx: ctx.as_ptr(),
        skb,
        hook_kind: HOOK_FUNC_IP,
        hook,
        // At the function's entry the stack pointer points at the return address.
        caller: move || crate::skb::read::<u64>(sp()),
        reason,
        verdict: None,
        stack_key: move || crate::track::stack_key(sp()),
        given,
        netfilter: crate::skb::NfChain::NONE,
        bpf_map: false,
    }
}

/// `--filter-non-skb-funcs`: a function without an skb, traced for the skb that ran last on the
/// same kernel stack (pwru's `--filter-track-skb-by-stackid`).
#[kprobe]
pub fn pwru_kprobe_non_skb(ctx: ProbeContext) -> u32 {
    let sp = unsafe { (*ctx.regs).rsp };
    if let Some(skb) = crate::track::skb_on_stack(crate::track::stack_key(sp)) {
        handle_skb(hit_at(&ctx, skb, || None, Some(TRACKED_BY_STACKID)));
    }
    0
}
pwru_rs_common::assert_contract_name!(pwru_kprobe_non_skb, contract::KPROBE_NON_SKB);

/// `--filter-track-bpf-helpers`: a BPF helper (or a map operation a helper call became), traced
/// for the packet of the traced tc or XDP program that runs it on this CPU now.
#[kprobe]
pub fn pwru_kprobe_bpf_helper(ctx: ProbeContext) -> u32 {
    let Some(packet) = crate::bpfprog::current_packet() else {
        return 0;
    };
    let tracked_by = crate::bpfprog::found_tracked_by();
    match packet {
        crate::bpfprog::Packet::Skb(skb) => {
            handle_skb(hit_at(&ctx, skb, || None, Some(tracked_by)));
        }
        crate::bpfprog::Packet::Xdp(xdp) => {
            handle_xdp(XdpHit {
                ctx: ctx.as_ptr(),
                xdp,
                hook_kind: HOOK_FUNC_IP,
                hook: || unsafe { bpf_get_func_ip(ctx.as_ptr()) },
                verdict: None,
                given: true,
                bpf_map: false,
            });
        }
    }
    0
}
pwru_rs_common::assert_contract_name!(pwru_kprobe_bpf_helper, contract::KPROBE_BPF_HELPER);

/// The end of an skb's life: traced, then no longer tracked.
#[inline(always)]
fn hit_then_forget(ctx: &ProbeContext, skb_arg: usize, reason_arg: Option<usize>) -> u32 {
    hit(ctx, skb_arg, reason_arg);
    crate::track::end_of_life(ctx.arg(skb_arg).unwrap_or(0));
    0
}

/// Where each function's skb is (`contract::func_args_entry`), by function address: the perfect
/// hash table of `contract::FUNC_TABLE_MAP`, which userspace sizes at load and fills before
/// linking.
#[map]
static FUNC_TABLE: Array<FuncSlot> = Array::with_max_entries(1, 0);
pwru_rs_common::assert_contract_name!(FUNC_TABLE, contract::FUNC_TABLE_MAP);

/// The function table's entry for the function at `ip`.
#[inline(always)]
fn func_args(ip: u64) -> Option<u32> {
    let bits = crate::skb::func_slot_bits();
    let seed = FUNC_TABLE.get(contract::func_bucket(ip, bits) as u32)?.seed;
    let slot = FUNC_TABLE.get(contract::func_slot(ip, seed, bits) as u32)?;
    (slot.ip == ip).then_some(slot.args)
}

/// kprobe-multi: every function in one link; [`FUNC_TABLE`] says where the function's skb and
/// drop reason are, and whether the skb's life ends there.
#[kprobe]
pub fn pwru_kprobe_multi(ctx: ProbeContext) -> u32 {
    let ip = unsafe { bpf_get_func_ip(ctx.as_ptr()) };
    let Some(args) = func_args(ip) else {
        return 0;
    };
    let skb_arg = (args & contract::FUNC_ARGS_SKB) as usize;
    let reason = match (args >> contract::FUNC_ARGS_REASON_SHIFT) & contract::FUNC_ARGS_REASON {
        0 => None,
        n => Some(n as usize - 1),
    };
    let skb = arg_at(&ctx, skb_arg);
    let ctx = &ctx;
    let reason = move || reason.map(|n| arg_at(ctx, n) as u32);
    handle_skb(hit_at_ip(ctx, skb, reason, None, move || ip));
    if args & contract::FUNC_ARGS_LIFE_END != 0 {
        crate::track::end_of_life(skb);
    }
    0
}
pwru_rs_common::assert_contract_name!(pwru_kprobe_multi, contract::KPROBE_MULTI);

/// Argument `n` (0-4) of the probed function, `n` known only at run time. Every register is read
/// at its fixed offset, then one picked: the verifier refuses a load through a context pointer
/// moved by a run-time amount, which is what indexing by `n` compiles to (even a match with a
/// volatile load per arm: LLVM merges the arms into one such load).
#[inline(always)]
fn arg_at(ctx: &ProbeContext, n: usize) -> u64 {
    let regs = ctx.regs;
    let [a0, a1, a2, a3, a4] = unsafe {
        [
            core::ptr::read_volatile(&raw const (*regs).rdi),
            core::ptr::read_volatile(&raw const (*regs).rsi),
            core::ptr::read_volatile(&raw const (*regs).rdx),
            core::ptr::read_volatile(&raw const (*regs).rcx),
            core::ptr::read_volatile(&raw const (*regs).r8),
        ]
    };
    match n {
        0 => a0,
        1 => a1,
        2 => a2,
        3 => a3,
        _ => a4,
    }
}

skb_programs! {
    kprobe(ProbeContext) -> u32 = hit_then_forget;
    pwru_kprobe_skb_0_free => contract::KPROBE_SKB_0_FREE, 0, None;
}

skb_programs! {
    kprobe(ProbeContext) -> u32 = hit;
    pwru_kprobe_skb_0 => contract::KPROBE_PROGRAMS[0], 0, None;
    pwru_kprobe_skb_1 => contract::KPROBE_PROGRAMS[1], 1, None;
    pwru_kprobe_skb_2 => contract::KPROBE_PROGRAMS[2], 2, None;
    pwru_kprobe_skb_3 => contract::KPROBE_PROGRAMS[3], 3, None;
    pwru_kprobe_skb_4 => contract::KPROBE_PROGRAMS[4], 4, None;
    pwru_kprobe_skb_0_reason_1 => contract::KPROBE_SKB_0_REASON_1, 0, Some(1);
    pwru_kprobe_skb_1_reason_2 => contract::KPROBE_SKB_1_REASON_2, 1, Some(2);
}
// One program per position the contract lists.
const _: () = assert!(contract::KPROBE_PROGRAMS.len() == contract::MAX_SKB_ARGS);
