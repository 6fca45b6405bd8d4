//! Filter and expression stubs. Userspace replaces each stub's body with the eBPF translation
//! of the user's expression (pwru-rs/src/filter, pwru-rs/src/expr) before load; each lives alone
//! in its own section so that it can be swapped whole.
//!
//! Contract of the pcap stubs: `start..end` is the packet in kernel memory (scalars, not BPF packet pointers);
//! return non-zero to keep the packet.

use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, generated::bpf_get_prandom_u32},
    macros::map,
    maps::Array,
};
use pwru_rs_common::{assert_contract_name, contract, FilterTestPacket, FILTER_TEST_MAX};

/// Filter on the packet seen from its MAC header (libpcap DLT_EN10MB).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.filter_l2")]
#[inline(never)]
pub extern "C" fn pwru_filter_l2(start: u64, end: u64) -> u64 {
    placeholder(start, end)
}
assert_contract_name!(pwru_filter_l2, contract::FILTER_L2_STUB.symbol);

/// Filter on the packet seen from its network header (libpcap DLT_RAW).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.filter_l3")]
#[inline(never)]
pub extern "C" fn pwru_filter_l3(start: u64, end: u64) -> u64 {
    placeholder(start, end)
}
assert_contract_name!(pwru_filter_l3, contract::FILTER_L3_STUB.symbol);

/// `--filter-tunnel-pcap-l2`: a pcap filter on a tunnel packet's inner frame.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.tunnel_l2")]
#[inline(never)]
pub extern "C" fn pwru_tunnel_filter_l2(start: u64, end: u64) -> u64 {
    placeholder(start, end)
}
assert_contract_name!(pwru_tunnel_filter_l2, contract::TUNNEL_L2_STUB.symbol);

/// `--filter-tunnel-pcap-l3`: a pcap filter on a tunnel packet's inner IP packet.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.tunnel_l3")]
#[inline(never)]
pub extern "C" fn pwru_tunnel_filter_l3(start: u64, end: u64) -> u64 {
    placeholder(start, end)
}
assert_contract_name!(pwru_tunnel_filter_l3, contract::TUNNEL_L3_STUB.symbol);

/// `--filter-skb-expr` on the skb (see pwru-rs/src/expr): non-zero when it holds.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.skb_expr")]
#[inline(never)]
pub extern "C" fn pwru_filter_skb_expr(skb: u64) -> u64 {
    placeholder(skb, 0)
}
assert_contract_name!(pwru_filter_skb_expr, contract::SKB_EXPR_STUB.symbol);

/// `--output-skb-metadata`: word `word` of the values read from the skb.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.skb_metadata")]
#[inline(never)]
pub extern "C" fn pwru_skb_metadata(skb: u64, word: u64) -> u64 {
    placeholder(skb, word)
}
assert_contract_name!(pwru_skb_metadata, contract::SKB_METADATA_STUB.symbol);

/// `--filter-xdp-expr` on an XDP program's `struct xdp_buff`: non-zero when it holds.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.xdp_expr")]
#[inline(never)]
pub extern "C" fn pwru_filter_xdp_expr(xdp: u64) -> u64 {
    placeholder(xdp, 1)
}
assert_contract_name!(pwru_filter_xdp_expr, contract::XDP_EXPR_STUB.symbol);

/// `--output-xdp-metadata`: word `word` of the values read from the `struct xdp_buff`.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.xdp_metadata")]
#[inline(never)]
pub extern "C" fn pwru_xdp_metadata(xdp: u64, word: u64) -> u64 {
    placeholder(xdp, word ^ 2)
}
assert_contract_name!(pwru_xdp_metadata, contract::XDP_METADATA_STUB.symbol);

/// Never runs unreplaced (the programs call the stubs only when a filter was injected). Its value
/// must be unknowable to the compiler, or it folds the call and the caller's check away; a helper's
/// result is. No relocations and no memory access, so it also verifies on its own.
#[inline(always)]
fn placeholder(start: u64, end: u64) -> u64 {
    (unsafe { bpf_get_prandom_u32() } as u64) ^ start ^ end
}

/// The packet for [`pwru_filter_test`], written by userspace.
#[map]
static FILTER_TEST: Array<FilterTestPacket> = Array::with_max_entries(1, 0);
assert_contract_name!(FILTER_TEST, contract::FILTER_TEST_MAP);

/// Runs the injected filter on `FILTER_TEST[0]` under BPF_PROG_TEST_RUN: the differential tests
/// hold the translation to libpcap's own matcher with this, in the kernel. Returns 1 for a match.
/// Written out by hand because the `raw_tracepoint` macro discards the return value.
#[unsafe(no_mangle)]
#[unsafe(link_section = "raw_tp")]
pub extern "C" fn pwru_filter_test(_ctx: *mut core::ffi::c_void) -> i32 {
    let Some(packet) = FILTER_TEST.get_ptr(0) else {
        return -1;
    };
    let (len, l3) = unsafe { ((*packet).len, (*packet).l3) };
    let data = unsafe { (&raw const (*packet).data) as u64 };
    // The stubs are global functions: the verifier wants scalars, not a map-value pointer. Reading
    // the address back through a helper turns it into one.
    let Ok(start) = (unsafe { bpf_probe_read_kernel(&raw const data) }) else {
        return -1;
    };
    let end = start + (len.min(FILTER_TEST_MAX as u32)) as u64;
    let verdict = if l3 != 0 {
        pwru_filter_l3(start, end)
    } else {
        pwru_filter_l2(start, end)
    };
    (verdict != 0) as i32
}
assert_contract_name!(pwru_filter_test, contract::FILTER_TEST_PROGRAM);
