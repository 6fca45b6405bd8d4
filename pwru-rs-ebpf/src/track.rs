//! `--filter-track-skb`: the set of tracked skbs, and the programs that keep it: fexit on the
//! functions that clone or copy an skb (a copy of a tracked skb joins the set), and the ends of an
//! skb's life (kprobe on `kfree_skbmem`, or the `skb:kfree_skb`/`skb:consume_skb` tracepoints)
//! where it leaves the set, so that a reused address is not taken for the old packet.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_probe_read_kernel,
    macros::{fentry, fexit, kprobe, map, raw_tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::{FEntryContext, FExitContext, ProbeContext, RawTracePointContext},
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

/// `pskb` → the skb it pointed to when `veth_convert_skb_to_xdp_buff` was entered.
#[map]
static VETH_PSKB: HashMap<u64, u64> = HashMap::with_max_entries(1024, 0);
assert_contract_name!(VETH_PSKB, contract::VETH_PSKB_MAP);

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
            if let Some(p) = TRACK_FULL.get_ptr_mut(0) {
                unsafe { *p += 1 };
            }
        }
    }
}

#[inline(always)]
pub fn forget(skb: u64) {
    let _ = TRACKED.remove(&skb);
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

#[inline(always)]
fn read_u64(addr: u64) -> u64 {
    unsafe { bpf_probe_read_kernel(addr as *const u64) }.unwrap_or(0)
}

#[fentry]
pub fn pwru_fentry_veth_convert(ctx: FEntryContext) -> u32 {
    let pskb: u64 = ctx.arg(2);
    let skb = read_u64(pskb);
    if skb != 0 && lookup(skb).is_some() {
        let _ = VETH_PSKB.insert(&pskb, &skb, 0);
    }
    0
}
assert_contract_name!(pwru_fentry_veth_convert, contract::FENTRY_VETH_CONVERT);

#[fexit]
pub fn pwru_fexit_veth_convert(ctx: FExitContext) -> u32 {
    let pskb: u64 = ctx.arg(2);
    // SAFETY: copied out at once.
    let Some(old) = (unsafe { VETH_PSKB.get(&pskb) }).copied() else {
        return 0;
    };
    let _ = VETH_PSKB.remove(&pskb);
    copied(old, read_u64(pskb));
    0
}
assert_contract_name!(pwru_fexit_veth_convert, contract::FEXIT_VETH_CONVERT);

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
