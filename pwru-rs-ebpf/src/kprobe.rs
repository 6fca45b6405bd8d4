//! kprobe and kprobe-multi backends: one program per position of the `struct sk_buff *` among
//! the function's arguments (pwru's scheme), plus the two drop functions whose reason argument
//! is printed. The same programs serve plain kprobes and kprobe-multi links.

use aya_ebpf::{
    helpers::generated::bpf_get_func_ip, macros::kprobe, programs::ProbeContext, EbpfContext,
};

use crate::skb::handle_skb;

#[inline(always)]
fn hit(ctx: &ProbeContext, skb_arg: usize, reason_arg: Option<usize>) -> u32 {
    let skb: u64 = ctx.arg(skb_arg).unwrap_or(0);
    let reason = reason_arg.map(|n| ctx.arg::<u64>(n).unwrap_or(0) as u32);
    // The probed function's address; userspace names it through kallsyms.
    handle_skb(skb, || unsafe { bpf_get_func_ip(ctx.as_ptr()) }, reason);
    0
}

#[kprobe]
pub fn pwru_kprobe_skb_1(ctx: ProbeContext) -> u32 {
    hit(&ctx, 0, None)
}

#[kprobe]
pub fn pwru_kprobe_skb_2(ctx: ProbeContext) -> u32 {
    hit(&ctx, 1, None)
}

#[kprobe]
pub fn pwru_kprobe_skb_3(ctx: ProbeContext) -> u32 {
    hit(&ctx, 2, None)
}

#[kprobe]
pub fn pwru_kprobe_skb_4(ctx: ProbeContext) -> u32 {
    hit(&ctx, 3, None)
}

#[kprobe]
pub fn pwru_kprobe_skb_5(ctx: ProbeContext) -> u32 {
    hit(&ctx, 4, None)
}

/// `kfree_skb_reason(struct sk_buff *skb, enum skb_drop_reason reason)`.
#[kprobe]
pub fn pwru_kprobe_skb_1_reason_2(ctx: ProbeContext) -> u32 {
    hit(&ctx, 0, Some(1))
}

/// `sk_skb_reason_drop(struct sock *sk, struct sk_buff *skb, enum skb_drop_reason reason)` (6.11+).
#[kprobe]
pub fn pwru_kprobe_skb_2_reason_3(ctx: ProbeContext) -> u32 {
    hit(&ctx, 1, Some(2))
}
