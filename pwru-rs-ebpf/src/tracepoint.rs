//! Tracepoint backend: raw-tracepoint programs attached to every tracepoint that carries an skb.
//!
//! The kernel refuses to attach a raw-tracepoint program that reads more arguments than the
//! tracepoint has, so there is one program per position of the skb (and one for kfree_skb's
//! drop reason). Each attachment's BPF cookie says which hook fired.

use crate::skb::handle_skb;
use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie, macros::raw_tracepoint,
    programs::RawTracePointContext, EbpfContext,
};

#[inline(always)]
fn hit(ctx: &RawTracePointContext, skb_arg: usize, reason_arg: Option<usize>) -> i32 {
    let skb: u64 = ctx.arg(skb_arg);
    let reason = reason_arg.map(|n| ctx.arg::<u64>(n) as u32);
    // The cookie is the hook's index in userspace's table of attached tracepoints.
    handle_skb(
        skb,
        || unsafe { bpf_get_attach_cookie(ctx.as_ptr()) },
        reason,
    );
    0
}

#[raw_tracepoint]
pub fn pwru_raw_tp_skb_0(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 0, None)
}

#[raw_tracepoint]
pub fn pwru_raw_tp_skb_1(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 1, None)
}

#[raw_tracepoint]
pub fn pwru_raw_tp_skb_2(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 2, None)
}

#[raw_tracepoint]
pub fn pwru_raw_tp_skb_3(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 3, None)
}

#[raw_tracepoint]
pub fn pwru_raw_tp_skb_4(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 4, None)
}

/// `kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)`.
#[raw_tracepoint]
pub fn pwru_raw_tp_skb_0_reason_2(ctx: RawTracePointContext) -> i32 {
    hit(&ctx, 0, Some(2))
}
