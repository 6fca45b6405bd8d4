//! Names the kernel object and userspace share. The kernel side checks its identifiers against
//! these at compile time (`same_name`), and a userspace test checks that the built object has each
//! one with the expected kind, so a rename on one side fails the build or the tests, not a trace.

/// kprobes read at most this many arguments from registers: one program per position.
pub const MAX_SKB_ARGS: usize = 5;

/// Ring buffer of event records.
pub const EVENTS_MAP: &str = "EVENTS";
/// Per-CPU count of records that found the ring buffer full.
pub const LOST_MAP: &str = "LOST";
/// Per-CPU dump buffers: `DUMP_LEVELS * DUMPS_PER_LEVEL` entries of `Config::dump_buf` bytes
/// (userspace sets the value size before load).
pub const DUMPS_MAP: &str = "DUMPS";
/// Per-CPU buffers the packet bytes are copied into (`--output-pcap`), one per nesting level.
pub const PACKETS_MAP: &str = "PACKETS";
/// Per-CPU buffers the skb records are built in, one per nesting level (the stack is too small
/// for them besides the filters).
pub const RECORDS_MAP: &str = "RECORDS";
/// The same for XDP records.
pub const XDP_RECORDS_MAP: &str = "XDP_RECORDS";
/// Per-CPU buffers the `--output-skb-metadata` words are gathered in, one per nesting level.
pub const SKB_METADATA_MAP: &str = "SKB_METADATA";
/// Per-CPU buffers the `--output-tunnel` inner tuple is built in, one per nesting level.
pub const TUNNEL_TUPLES_MAP: &str = "TUNNEL_TUPLES";
/// Per-CPU buffers the `--output-netfilter` section is built in, one per nesting level.
pub const NETFILTER_MAP: &str = "NETFILTER";
/// Per-CPU nesting level of the programs using [`DUMPS_MAP`].
pub const DUMP_NEST_MAP: &str = "DUMP_NEST";
/// Hash map of tracked skbs: address → [`crate::TrackedSkb`] (`--filter-track-skb`); userspace
/// sets its size before load.
pub const TRACKED_MAP: &str = "TRACKED";
/// Per-CPU count of skbs that passed the filters but found the tracking map full.
pub const TRACK_FULL_MAP: &str = "TRACK_FULL";
/// Stack traces of events (`--output-stack`, and `--output-caller` on tracepoints); userspace
/// sets the value size (`STACK_DEPTH` frames) and entries before load.
pub const STACKS_MAP: &str = "STACKS";
/// Read-only global: [`crate::Offsets`].
pub const OFFSETS_GLOBAL: &str = "OFFSETS";
/// Read-only global: [`crate::Config`].
pub const CONFIG_GLOBAL: &str = "CONFIG";

/// kprobe / kprobe-multi programs by 0-based position of the `struct sk_buff *` argument.
pub const KPROBE_PROGRAMS: [&str; MAX_SKB_ARGS] = [
    "pwru_kprobe_skb_0",
    "pwru_kprobe_skb_1",
    "pwru_kprobe_skb_2",
    "pwru_kprobe_skb_3",
    "pwru_kprobe_skb_4",
];
/// kprobe-multi: one program on every function, in one link (each link costs the kernel grace
/// periods at detach, ~0.13 s each in the TCG guests), told by [`FUNC_TABLE_MAP`] where each
/// function's skb is.
pub const KPROBE_MULTI: &str = "pwru_kprobe_multi";

/// A function's entry in [`FUNC_TABLE_MAP`]: bits 0-2 the skb's argument position,
/// bits 4-6 the drop reason's position + 1 (0: none), bit 8 set where an skb's life ends.
pub const fn func_args_entry(skb_arg: u8, reason_arg: Option<u8>, life_end: bool) -> u32 {
    let reason = match reason_arg {
        Some(r) => r as u32 + 1,
        None => 0,
    };
    (skb_arg as u32 & FUNC_ARGS_SKB)
        | (reason << FUNC_ARGS_REASON_SHIFT)
        | if life_end { FUNC_ARGS_LIFE_END } else { 0 }
}
/// kprobe-multi: where each function's [`func_args_entry`] is, for [`KPROBE_MULTI`]: a perfect
/// hash of the functions' addresses (hash and displace) in one array of `crate::FuncSlot`s,
/// `1 << Config::func_slot_bits` of them. A function's bucket is [`func_bucket`]; the slot of
/// that index holds in its `seed` the displacement that gives each function of the bucket a slot
/// of its own, [`func_slot`], which holds the function's address and entry. Two array lookups,
/// which the verifier inlines: a hash map's lookup is a call that hashes and compares (and a BPF
/// cookie, a binary search over the link's addresses with an indirect call per step).
pub const FUNC_TABLE_MAP: &str = "FUNC_TABLE";

/// The bucket of the function at `ip` in a table of `1 << slot_bits` slots (half as many
/// buckets). Shifts wrap: never a shift the verifier refuses.
#[inline(always)]
pub const fn func_bucket(ip: u64, slot_bits: u32) -> u64 {
    ip.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_shr(65u32.wrapping_sub(slot_bits))
}

/// The slot of the function at `ip` given its bucket's `seed`.
#[inline(always)]
pub const fn func_slot(ip: u64, seed: u32, slot_bits: u32) -> u64 {
    (ip ^ seed as u64)
        .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        .wrapping_shr(64u32.wrapping_sub(slot_bits))
}

pub const FUNC_ARGS_SKB: u32 = 0x7;
pub const FUNC_ARGS_REASON_SHIFT: u32 = 4;
pub const FUNC_ARGS_REASON: u32 = 0x7;
pub const FUNC_ARGS_LIFE_END: u32 = 1 << 8;

/// The helper number the kernel programs call for `bpf_rdonly_cast(addr, btf_id)` (no helper
/// has it): before load, userspace turns every such call into the kfunc's call where the kernel
/// has it, or into `r0 = r1` where it does not (the programs then take the helper path: see
/// `Config::cast_btf_id`).
pub const RDONLY_CAST_CALL: u32 = 0x7fff_0ca5;

/// `kfree_skb_reason(struct sk_buff *skb, enum skb_drop_reason reason)`.
pub const KPROBE_SKB_0_REASON_1: &str = "pwru_kprobe_skb_0_reason_1";
/// `sk_skb_reason_drop(struct sock *sk, struct sk_buff *skb, enum skb_drop_reason reason)`.
pub const KPROBE_SKB_1_REASON_2: &str = "pwru_kprobe_skb_1_reason_2";

/// The end of an skb's life, `kfree_skbmem(struct sk_buff *skb)`: traced like any function, then
/// forgotten by the tracking. The second only forgets (when `--filter-func` leaves it out).
pub const KPROBE_SKB_0_FREE: &str = "pwru_kprobe_skb_0_free";
pub const KPROBE_UNTRACK_0: &str = "pwru_kprobe_untrack_0";

/// `--filter-non-skb-funcs`: kprobe on a function without an skb argument, traced for the skb
/// whose stack it runs on.
pub const KPROBE_NON_SKB: &str = "pwru_kprobe_non_skb";
/// `--filter-track-skb-by-stackid`: stack key → skb, and skb → its stack key.
pub const STACK_SKB_MAP: &str = "STACK_SKB";
pub const SKB_STACK_MAP: &str = "SKB_STACK";

/// fexit programs that add a clone or copy of a tracked skb to the tracked set: the skb is the
/// first argument and the new skb the return value of a function of 2 (`skb_clone`,
/// `skb_copy`) or 4 (`skb_copy_expand`, `__pskb_copy_fclone`) arguments.
pub const FEXIT_COPY_OF_2: &str = "pwru_fexit_copy_2";
pub const FEXIT_COPY_OF_4: &str = "pwru_fexit_copy_4";
/// The same without BPF trampolines: a kprobe at a copy function's entry and a kretprobe at its
/// return, paired through [`COPY_PENDING_MAP`] (entry stack pointer → tracked skb).
pub const KPROBE_COPY_ENTRY: &str = "pwru_kprobe_copy_entry";
pub const KRETPROBE_COPY: &str = "pwru_kretprobe_copy";
pub const COPY_PENDING_MAP: &str = "COPY_PENDING";
/// Functions that may replace `*pskb` by a copy (`skb_pp_cow_data(pool, pskb, headroom)`,
/// veth's `veth_convert_skb_to_xdp_buff(rq, xdp, pskb)`): fentry notes the tracked skb, fexit
/// tracks its replacement; one pair per position of `pskb` (1, 2).
pub const FENTRY_PSKB: [&str; 2] = ["pwru_fentry_pskb_1", "pwru_fentry_pskb_2"];
pub const FEXIT_PSKB: [&str; 2] = ["pwru_fexit_pskb_1", "pwru_fexit_pskb_2"];
/// fentry → fexit of those: `pskb` → the skb it held on entry.
pub const PSKB_PENDING_MAP: &str = "PSKB_PENDING";

/// `--filter-trace-tc` / `--filter-trace-xdp`: fentry and fexit on BPF programs, loaded once per
/// traced program (the target is fixed at load).
pub const FENTRY_TC: &str = "pwru_fentry_tc";
pub const FEXIT_TC: &str = "pwru_fexit_tc";
pub const FENTRY_XDP: &str = "pwru_fentry_xdp";
pub const FEXIT_XDP: &str = "pwru_fexit_xdp";
/// `--filter-track-bpf-helpers`: kprobe on the helpers (and map operations) the traced programs
/// call, traced for the packet of the program running them ([`IN_BPF_PROG_MAP`]).
pub const KPROBE_BPF_HELPER: &str = "pwru_kprobe_bpf_helper";
pub const IN_BPF_PROG_MAP: &str = "IN_BPF_PROG";
/// `--output-bpfmap`: fexit on the map operations the traced programs call, by operation:
/// `(map, key)`, `(map, key, value, flags)`, `(map, key)`; loaded once per function.
pub const FEXIT_BPF_MAP_LOOKUP: &str = "pwru_fexit_map_lookup";
pub const FEXIT_BPF_MAP_UPDATE: &str = "pwru_fexit_map_update";
pub const FEXIT_BPF_MAP_DELETE: &str = "pwru_fexit_map_delete";
/// A hash map's lookup that returns its element (`__htab_map_lookup_elem`, the call the
/// verifier inlines a hash lookup to), not the value: the value follows the key.
pub const FEXIT_BPF_MAP_LOOKUP_ELEM: &str = "pwru_fexit_map_lookup_elem";
/// Per-CPU buffer the map operation's section is built in.
pub const BPF_MAP_SCRATCH_MAP: &str = "BPF_MAP_SCRATCH";
/// The ids of pwru-rs's own maps, which `--output-bpfmap` does not show (its programs use hash
/// maps too, and may run inside a traced program); filled by userspace after load, 0 unused.
pub const OWN_MAPS_MAP: &str = "OWN_MAPS";
pub const MAX_OWN_MAPS: u32 = 64;
/// `--output-netfilter`: fentry and fexit on `nft_do_chain` (vmlinux's or the nf_tables
/// module's).
pub const FENTRY_NFT_DO_CHAIN: &str = "pwru_fentry_nft";
pub const FEXIT_NFT_DO_CHAIN: &str = "pwru_fexit_nft";
/// skb → its [`crate::record::NfPending`] while it is in a base chain (LRU: an exit never
/// seen ages out).
pub const NF_ACTIVE_MAP: &str = "NF_ACTIVE";
/// Per-CPU buffers an `NfPending` is built in before it is stored, one per nesting level.
pub const NF_SCRATCH_MAP: &str = "NF_SCRATCH";
/// `xdp_buff.data_hard_start` of packets XDP passed, for the skb built on it.
pub const XDP_PASSED_MAP: &str = "XDP_PASSED";

/// Raw-tracepoint programs by 0-based position of the skb argument.
pub const RAW_TP_PROGRAMS: [&str; MAX_SKB_ARGS] = [
    "pwru_raw_tp_skb_0",
    "pwru_raw_tp_skb_1",
    "pwru_raw_tp_skb_2",
    "pwru_raw_tp_skb_3",
    "pwru_raw_tp_skb_4",
];
/// `kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)`.
pub const RAW_TP_SKB_0_REASON_2: &str = "pwru_raw_tp_skb_0_reason_2";
/// The ends of an skb's life on the tracepoint backend (`skb:kfree_skb`, `skb:consume_skb`):
/// traced, then forgotten by the tracking; the `UNTRACK` one only forgets.
pub const RAW_TP_SKB_0_REASON_2_FREE: &str = "pwru_raw_tp_skb_0_reason_2_free";
pub const RAW_TP_SKB_0_FREE: &str = "pwru_raw_tp_skb_0_free";
pub const RAW_TP_UNTRACK_0: &str = "pwru_raw_tp_untrack_0";

/// A function whose body userspace replaces before load: alone in its ELF section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stub {
    pub section: &'static str,
    pub symbol: &'static str,
}

/// pcap filter on the packet from its MAC header (libpcap DLT_EN10MB).
pub const FILTER_L2_STUB: Stub = Stub {
    section: ".text.filter_l2",
    symbol: "pwru_filter_l2",
};
/// pcap filter on the packet from its network header (libpcap DLT_RAW).
pub const FILTER_L3_STUB: Stub = Stub {
    section: ".text.filter_l3",
    symbol: "pwru_filter_l3",
};
/// `--filter-skb-expr`: `u64 f(u64 skb)`, non-zero when the expression holds.
pub const SKB_EXPR_STUB: Stub = Stub {
    section: ".text.skb_expr",
    symbol: "pwru_filter_skb_expr",
};
/// `--output-skb-metadata`: `u64 f(u64 skb, u64 word)`, word `word` of the values.
pub const SKB_METADATA_STUB: Stub = Stub {
    section: ".text.skb_metadata",
    symbol: "pwru_skb_metadata",
};
/// `--filter-tunnel-pcap-l2`: a pcap filter (as [`FILTER_L2_STUB`]) on a tunnel packet's
/// inner frame.
pub const TUNNEL_L2_STUB: Stub = Stub {
    section: ".text.tunnel_l2",
    symbol: "pwru_tunnel_filter_l2",
};
/// `--filter-tunnel-pcap-l3`: the same on its inner IP packet.
pub const TUNNEL_L3_STUB: Stub = Stub {
    section: ".text.tunnel_l3",
    symbol: "pwru_tunnel_filter_l3",
};
/// `--filter-xdp-expr`: `u64 f(u64 xdp)`, non-zero when the expression holds on the
/// `struct xdp_buff`.
pub const XDP_EXPR_STUB: Stub = Stub {
    section: ".text.xdp_expr",
    symbol: "pwru_filter_xdp_expr",
};
/// `--output-xdp-metadata`: `u64 f(u64 xdp, u64 word)`.
pub const XDP_METADATA_STUB: Stub = Stub {
    section: ".text.xdp_metadata",
    symbol: "pwru_xdp_metadata",
};
/// Every stub of the object.
pub const STUBS: [Stub; 8] = [
    FILTER_L2_STUB,
    FILTER_L3_STUB,
    SKB_EXPR_STUB,
    SKB_METADATA_STUB,
    TUNNEL_L2_STUB,
    TUNNEL_L3_STUB,
    XDP_EXPR_STUB,
    XDP_METADATA_STUB,
];

/// Runs the injected filters on [`FILTER_TEST_MAP`] under BPF_PROG_TEST_RUN (tests).
pub const FILTER_TEST_PROGRAM: &str = "pwru_filter_test";
pub const FILTER_TEST_MAP: &str = "FILTER_TEST";

/// `a == b`, usable in `const` assertions.
pub const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Fails the build when the identifier `$ident` is not the contract name `$name`.
#[macro_export]
macro_rules! assert_contract_name {
    ($ident:ident, $name:expr) => {
        const _: () = assert!(
            $crate::contract::same_name(stringify!($ident), $name),
            concat!(
                stringify!($ident),
                " is not the name pwru-rs-common's contract gives"
            )
        );
    };
}
