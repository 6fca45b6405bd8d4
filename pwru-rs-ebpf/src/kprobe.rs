//! kprobe and kprobe-multi backends: one program per position of the `struct sk_buff *` among
//! the function's arguments (pwru's scheme), plus the two drop functions whose reason argument
//! is printed. The same programs serve plain kprobes and kprobe-multi links.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated::bpf_get_func_ip},
    macros::kprobe,
    programs::ProbeContext,
    EbpfContext,
};
use pwru_rs_common::{contract, record::HOOK_FUNC_IP};

use crate::skb::handle_skb;

#[inline(always)]
fn hit(ctx: &ProbeContext, skb_arg: usize, reason_arg: Option<usize>) -> u32 {
    let skb: u64 = ctx.arg(skb_arg).unwrap_or(0);
    let reason = reason_arg.map(|n| ctx.arg::<u64>(n).unwrap_or(0) as u32);
    // The probed function's address; userspace names it through kallsyms.
    handle_skb(
        ctx.as_ptr(),
        skb,
        HOOK_FUNC_IP,
        || unsafe { bpf_get_func_ip(ctx.as_ptr()) },
        // At the function's entry the stack pointer points at the return address.
        || {
            let sp = unsafe { (*ctx.regs).rsp };
            unsafe { bpf_probe_read_kernel(sp as *const u64) }.unwrap_or(0)
        },
        reason,
    );
    0
}

/// The end of an skb's life: traced, then no longer tracked.
#[inline(always)]
fn hit_then_forget(ctx: &ProbeContext, skb_arg: usize, reason_arg: Option<usize>) -> u32 {
    hit(ctx, skb_arg, reason_arg);
    if crate::skb::tracking() {
        crate::track::forget(ctx.arg(skb_arg).unwrap_or(0));
    }
    0
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
