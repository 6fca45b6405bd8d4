//! Tracepoint backend: raw-tracepoint programs attached to every tracepoint that carries an skb.
//!
//! The kernel refuses to attach a raw-tracepoint program that reads more arguments than the
//! tracepoint has, so there is one program per position of the skb (and one for kfree_skb's
//! drop reason). Each attachment's BPF cookie says which hook fired.

use aya_ebpf::{
    helpers::generated::bpf_get_attach_cookie, macros::raw_tracepoint,
    programs::RawTracePointContext, EbpfContext,
};
use pwru_rs_common::{contract, record::HOOK_COOKIE};

use crate::skb::{handle_skb, Hit};

#[inline(always)]
fn hit(ctx: &RawTracePointContext, skb_arg: usize, reason_arg: Option<usize>) -> i32 {
    let skb: u64 = ctx.arg(skb_arg);
    // The cookie is the hook's index in userspace's table of attached tracepoints.
    handle_skb(Hit {
        ctx: ctx.as_ptr(),
        skb,
        hook_kind: HOOK_COOKIE,
        hook: || unsafe { bpf_get_attach_cookie(ctx.as_ptr()) },
        // A tracepoint's caller is found in its stack; it has no stack pointer to key by.
        caller: || 0,
        reason: move || reason_arg.map(|n| ctx.arg::<u64>(n) as u32),
        verdict: None,
        stack_key: || 0,
        given: None,
        netfilter: crate::skb::NfChain::NONE,
        bpf_map: false,
    });
    0
}

/// The end of an skb's life: traced, then no longer tracked.
#[inline(always)]
fn hit_then_forget(ctx: &RawTracePointContext, skb_arg: usize, reason_arg: Option<usize>) -> i32 {
    hit(ctx, skb_arg, reason_arg);
    crate::track::end_of_life(ctx.arg(skb_arg));
    0
}

skb_programs! {
    raw_tracepoint(RawTracePointContext) -> i32 = hit_then_forget;
    pwru_raw_tp_skb_0_free => contract::RAW_TP_SKB_0_FREE, 0, None;
    pwru_raw_tp_skb_0_reason_2_free => contract::RAW_TP_SKB_0_REASON_2_FREE, 0, Some(2);
}

skb_programs! {
    raw_tracepoint(RawTracePointContext) -> i32 = hit;
    pwru_raw_tp_skb_0 => contract::RAW_TP_PROGRAMS[0], 0, None;
    pwru_raw_tp_skb_1 => contract::RAW_TP_PROGRAMS[1], 1, None;
    pwru_raw_tp_skb_2 => contract::RAW_TP_PROGRAMS[2], 2, None;
    pwru_raw_tp_skb_3 => contract::RAW_TP_PROGRAMS[3], 3, None;
    pwru_raw_tp_skb_4 => contract::RAW_TP_PROGRAMS[4], 4, None;
    pwru_raw_tp_skb_0_reason_2 => contract::RAW_TP_SKB_0_REASON_2, 0, Some(2);
}
const _: () = assert!(contract::RAW_TP_PROGRAMS.len() == contract::MAX_SKB_ARGS);
