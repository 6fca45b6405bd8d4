//! `--filter-track-skb`: the set of tracked skbs, and the programs that keep it: fexit on the
//! functions that clone or copy an skb (a copy of a tracked skb joins the set; kprobe + kretprobe
//! pairs where there are no trampolines; fentry + fexit on those that replace `*pskb`), and the
//! ends of an skb's life (kprobe on `kfree_skbmem`, or the `skb:kfree_skb`/`skb:consume_skb`
//! tracepoints) where it leaves the set, so that a reused address is not taken for the old
//! packet. `--filter-track-skb-by-stackid`'s maps of which skb ran on which kernel stack too.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::{fentry, fexit, kprobe, kretprobe, map, raw_tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RawTracePointContext, RetProbeContext},
    EbpfContext,
};
use pwru_rs_common::{assert_contract_name, contract, TrackedSkb};

/// Userspace sets the size before load (`--filter-track-skb-map-size`).
#[map]
static TRACKED: HashMap<u64, TrackedSkb> = HashMap::with_max_entries(1, 0);
assert_contract_name!(TRACKED, contract::TRACKED_MAP);

/// Skbs that passed the filters (or were copied from a tracked one) but found the map full:
/// userspace reports the count, nothing goes untracked silently.
#[map]
static TRACK_FULL: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
assert_contract_name!(TRACK_FULL, contract::TRACK_FULL_MAP);

/// `pskb` → the tracked skb it pointed to when a function that may replace it was entered.
#[map]
static PSKB_PENDING: LruHashMap<u64, u64> = LruHashMap::with_max_entries(1024, 0);
assert_contract_name!(PSKB_PENDING, contract::PSKB_PENDING_MAP);

/// `--filter-track-skb-by-stackid`: stack key → the skb traced on it last, and back. Userspace
/// sets their size (`--filter-track-skb-map-size`) when stack tracking is on.
#[map]
static STACK_SKB: HashMap<u64, u64> = HashMap::with_max_entries(1, 0);
assert_contract_name!(STACK_SKB, contract::STACK_SKB_MAP);
#[map]
static SKB_STACK: HashMap<u64, u64> = HashMap::with_max_entries(1, 0);
assert_contract_name!(SKB_STACK, contract::SKB_STACK_MAP);

/// Kernel stacks are 16 KiB (task stacks, and each CPU's IRQ stack, where softirqs run).
const STACK_REGION_SHIFT: u32 = 14;

/// Which kernel stack `sp` is on: its 16 KiB region. The skb's whole trip through one call
/// chain (a softirq, a syscall) stays on it, and so do skbs made along the way (a reply, a
/// copy): what pwru's "stack id" (the outermost frame pointer) stands for, without needing frame
/// pointers, which distribution kernels do not keep.
#[inline(always)]
pub fn stack_key(sp: u64) -> u64 {
    sp >> STACK_REGION_SHIFT
}

/// The skb traced last on this stack, if any. Regions next to it count too: a stack need not be
/// aligned to 16 KiB, so one call chain may span two regions.
#[inline(always)]
pub fn skb_on_stack(key: u64) -> Option<u64> {
    if key == 0 {
        return None;
    }
    for k in [key, key + 1, key - 1] {
        // SAFETY: copied out at once.
        if let Some(&skb) = unsafe { STACK_SKB.get(&k) } {
            return Some(skb);
        }
    }
    None
}

/// Marks `key` as the stack `skb` runs on (moving it off the one it ran on before).
#[inline(always)]
pub fn remember_stack(skb: u64, key: u64) {
    if key == 0 {
        return;
    }
    // SAFETY: copied out at once.
    if let Some(&old) = unsafe { SKB_STACK.get(&skb) } {
        // Only if the old stack still stands for this skb, not for one traced there since.
        if old != key && unsafe { STACK_SKB.get(&old) } == Some(&skb) {
            let _ = STACK_SKB.remove(&old);
        }
    }
    if STACK_SKB.insert(&key, &skb, 0).is_err() || SKB_STACK.insert(&skb, &key, 0).is_err() {
        crate::skb::count(&TRACK_FULL);
    }
}

/// A packet an XDP program passed: its `xdp_buff` and when.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XdpPassed {
    xdp: u64,
    ts_ns: u64,
}

/// `data_hard_start` of the traced packets XDP passed → [`XdpPassed`]: the skb built on one
/// has it as `head` (right after, on the same CPU; a buffer recycled later is not the same
/// packet, hence the time limit). LRU: entries whose skb was never seen age out.
#[map]
static XDP_PASSED: LruHashMap<u64, XdpPassed> = LruHashMap::with_max_entries(4096, 0);
assert_contract_name!(XDP_PASSED, contract::XDP_PASSED_MAP);

/// How long after the XDP verdict an skb on its buffer counts as the same packet.
const XDP_PASSED_FOR_NS: u64 = 100_000_000;

/// A traced XDP packet at `data_hard_start` was passed to the stack.
#[inline(always)]
pub fn xdp_pass(data_hard_start: u64, xdp: u64) {
    let ts_ns = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    let _ = XDP_PASSED.insert(&data_hard_start, &XdpPassed { xdp, ts_ns }, 0);
}

/// The XDP packet an skb with this `head` was built on, if it was traced and passed just now;
/// it is taken out (the skb is tracked from then on).
#[inline(always)]
pub fn xdp_passed(head: u64) -> Option<u64> {
    // SAFETY: copied out at once.
    let passed = unsafe { XDP_PASSED.get(&head) }.copied()?;
    let _ = XDP_PASSED.remove(&head);
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    (now.wrapping_sub(passed.ts_ns) < XDP_PASSED_FOR_NS).then_some(passed.xdp)
}

/// An skb on buffer `head` was seen tracked already: any note of an XDP packet passed there is
/// about it, and goes.
#[inline(always)]
pub fn xdp_seen(head: u64) {
    let _ = XDP_PASSED.remove(&head);
}

const EEXIST: i32 = 17;

#[inline(always)]
pub fn lookup(skb: u64) -> Option<TrackedSkb> {
    // SAFETY: the value is copied out at once.
    unsafe { TRACKED.get(&skb) }.copied()
}

/// Adds `skb` (a copy of `parent`, or 0) to the set; counts it when the map is full.
#[inline(always)]
pub fn track(skb: u64, parent: u64) {
    if let Err(e) = TRACKED.insert(&skb, &TrackedSkb { parent }, BPF_NOEXIST as u64) {
        if e != -EEXIST {
            crate::skb::count(&TRACK_FULL);
        }
    }
}

/// Where an skb's life ends: [`forget`] it when tracking is on (a load-time constant).
#[inline(always)]
pub fn end_of_life(skb: u64) {
    if crate::skb::tracking() || crate::skb::tracking_by_stack() {
        forget(skb);
    }
}

/// The skb's life ended: it is tracked no more, and its stack no longer stands for it.
#[inline(always)]
pub fn forget(skb: u64) {
    let _ = TRACKED.remove(&skb);
    if crate::skb::tracking_by_stack() {
        // SAFETY: copied out at once.
        if let Some(&key) = unsafe { SKB_STACK.get(&skb) } {
            // Only if the stack still stands for this skb.
            if unsafe { STACK_SKB.get(&key) } == Some(&skb) {
                let _ = STACK_SKB.remove(&key);
            }
            let _ = SKB_STACK.remove(&skb);
        }
    }
}

/// A copy `new` of `skb` joins the set when `skb` is in it.
#[inline(always)]
fn copied(skb: u64, new: u64) {
    if new != 0 && new != skb && lookup(skb).is_some() {
        track(new, skb);
    }
}

#[fexit]
pub fn pwru_fexit_copy_2(ctx: FExitContext) -> u32 {
    copied(ctx.arg(0), ctx.arg(2));
    0
}
assert_contract_name!(pwru_fexit_copy_2, contract::FEXIT_COPY_OF_2);

#[fexit]
pub fn pwru_fexit_copy_4(ctx: FExitContext) -> u32 {
    copied(ctx.arg(0), ctx.arg(4));
    0
}
assert_contract_name!(pwru_fexit_copy_4, contract::FEXIT_COPY_OF_4);

/// Where the kernel has kprobes but no BPF trampolines: a copy function's entry remembers a
/// tracked skb under the stack pointer at entry, its return finds it there (one word higher, the
/// return address popped) — unique per call in progress, whatever the CPU, task or interrupt.
/// LRU: an entry whose return was missed (kretprobe instances exhausted) ages out.
#[map]
static COPY_PENDING: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);
assert_contract_name!(COPY_PENDING, contract::COPY_PENDING_MAP);

#[kprobe]
pub fn pwru_kprobe_copy_entry(ctx: ProbeContext) -> u32 {
    let skb: u64 = ctx.arg(0).unwrap_or(0);
    if skb != 0 && lookup(skb).is_some() {
        let sp = unsafe { (*ctx.regs).rsp };
        let _ = COPY_PENDING.insert(&sp, &skb, 0);
    }
    0
}
assert_contract_name!(pwru_kprobe_copy_entry, contract::KPROBE_COPY_ENTRY);

#[kretprobe]
pub fn pwru_kretprobe_copy(ctx: RetProbeContext) -> u32 {
    let key = unsafe { (*ctx.regs).rsp }.wrapping_sub(8);
    // SAFETY: copied out at once.
    if let Some(parent) = unsafe { COPY_PENDING.get(&key) }.copied() {
        let _ = COPY_PENDING.remove(&key);
        copied(parent, ctx.ret());
    }
    0
}
assert_contract_name!(pwru_kretprobe_copy, contract::KRETPROBE_COPY);

#[inline(always)]
fn read_u64(addr: u64) -> u64 {
    crate::skb::read(addr)
}

/// A function that may replace `*pskb` by a copy (`skb_pp_cow_data(pool, pskb, headroom)`,
/// veth's `veth_convert_skb_to_xdp_buff(rq, xdp, pskb)`): on entry the tracked skb is noted under
/// `pskb` (the caller's variable, unique per call in progress), on exit its replacement, if any,
/// is tracked with it as parent.
/// Argument `n` of the traced function, whatever its BTF type: the verifier lets a tracing
/// program read only scalars and struct pointers from its context, not `struct sk_buff **`.
#[inline(always)]
fn func_arg(ctx: *mut core::ffi::c_void, n: u32) -> u64 {
    let mut value = 0u64;
    unsafe { aya_ebpf::helpers::generated::bpf_get_func_arg(ctx, n, &mut value) };
    value
}

#[inline(always)]
fn pskb_entry(pskb: u64) {
    let skb = read_u64(pskb);
    if skb != 0 && lookup(skb).is_some() {
        let _ = PSKB_PENDING.insert(&pskb, &skb, 0);
    }
}

#[inline(always)]
fn pskb_exit(pskb: u64) {
    // SAFETY: copied out at once.
    let Some(old) = (unsafe { PSKB_PENDING.get(&pskb) }).copied() else {
        return;
    };
    let _ = PSKB_PENDING.remove(&pskb);
    // `old` was tracked on entry; the function has freed it since (skb_pp_cow_data consumes
    // it), so it is not looked up again.
    let new = read_u64(pskb);
    if new != 0 && new != old {
        track(new, old);
    }
}

/// One fentry and one fexit program per position of `pskb` among the arguments.
macro_rules! pskb_programs {
    ($($attr:ident($ctx:ty) $name:ident => $hook:ident($arg:literal), $contract:expr;)*) => {
        $(
            #[$attr]
            pub fn $name(ctx: $ctx) -> u32 {
                $hook(func_arg(ctx.as_ptr(), $arg));
                0
            }
            assert_contract_name!($name, $contract);
        )*
    };
}

pskb_programs! {
    fentry(FEntryContext) pwru_fentry_pskb_1 => pskb_entry(1), contract::FENTRY_PSKB[0];
    fexit(FExitContext) pwru_fexit_pskb_1 => pskb_exit(1), contract::FEXIT_PSKB[0];
    fentry(FEntryContext) pwru_fentry_pskb_2 => pskb_entry(2), contract::FENTRY_PSKB[1];
    fexit(FExitContext) pwru_fexit_pskb_2 => pskb_exit(2), contract::FEXIT_PSKB[1];
}

/// `kfree_skbmem` where `--filter-func` leaves it out: forget only.
#[kprobe]
pub fn pwru_kprobe_untrack_0(ctx: ProbeContext) -> u32 {
    forget(ctx.arg(0).unwrap_or(0));
    0
}
assert_contract_name!(pwru_kprobe_untrack_0, contract::KPROBE_UNTRACK_0);

/// `skb:kfree_skb` / `skb:consume_skb` where `--filter-func` leaves them out: forget only.
#[raw_tracepoint]
pub fn pwru_raw_tp_untrack_0(ctx: RawTracePointContext) -> i32 {
    forget(ctx.arg(0));
    0
}
assert_contract_name!(pwru_raw_tp_untrack_0, contract::RAW_TP_UNTRACK_0);
