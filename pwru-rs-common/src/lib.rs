//! Types shared by the kernel programs (`pwru-rs-ebpf`) and the CLI (`pwru-rs`).
//!
//! Every type is `#[repr(C)]`, `Copy`, has no `bool` and no implicit padding, and its size is
//! asserted, so both sides agree on the layout byte for byte.
#![no_std]

use core::mem::size_of;

pub const TASK_COMM_LEN: usize = 16;
pub const IFNAMSIZ: usize = 16;

/// Byte offsets of the kernel struct fields the programs read.
///
/// Rust eBPF cannot emit CO-RE relocations, so userspace reads these from the running kernel's BTF
/// at start-up and writes them into a read-only global before the programs are loaded.
/// Offsets of fields nested in anonymous structs/unions are already summed up.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    // struct sk_buff
    pub skb_len: u32,
    pub skb_mark: u32,
    pub skb_protocol: u32,
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_tail: u32,
    pub skb_end: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    pub skb_mac_header: u32,
    pub skb_mac_len: u32,
    // struct net_device
    pub dev_name: u32,
    pub dev_ifindex: u32,
    pub dev_mtu: u32,
    /// `net_device.nd_net.net` (possible_net_t already folded in).
    pub dev_net: u32,
    /// `sock.__sk_common.skc_net.net`.
    pub sk_net: u32,
    /// `net.ns.inum`.
    pub net_inum: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Offsets>() == 80);

pub const FILTER_NETNS: u32 = 1 << 0;
pub const FILTER_MARK: u32 = 1 << 1;
pub const FILTER_IFINDEX: u32 = 1 << 2;
/// A pcap expression was injected into the filter stubs.
pub const FILTER_PCAP: u32 = 1 << 3;

/// Run-time configuration of the kernel programs, a read-only global set before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `FILTER_*` bits: which meta filters are active.
    pub filters: u32,
    pub netns: u32,
    pub mark: u32,
    pub mark_mask: u32,
    pub ifindex: u32,
    /// Wake the reader only once this many bytes wait in the ring buffer (it also drains on a
    /// short timer): a wake-up per event costs an interrupt, several times the rest of a hit.
    pub wakeup_bytes: u32,
}
const _: () = assert!(size_of::<Config>() == 24);

/// `Event::ip_version` values.
pub const IP_NONE: u8 = 0;
pub const IP_V4: u8 = 4;
pub const IP_V6: u8 = 6;

/// `Event::flags` bits.
pub const EVENT_HAS_REASON: u32 = 1 << 0;
pub const EVENT_HAS_DEV: u32 = 1 << 1;

/// One hit of a probe on an skb, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` at the hit.
    pub ts_ns: u64,
    /// Address of the `struct sk_buff`.
    pub skb: u64,
    /// What fired: a kernel function address (kprobe backends), or the index of the hook in the
    /// table userspace attached (tracepoint backend).
    pub hook: u64,
    pub pid: u32,
    pub cpu: u32,
    pub netns: u32,
    pub mark: u32,
    pub ifindex: u32,
    pub len: u32,
    pub mtu: u32,
    /// `enum skb_drop_reason` value, valid when `flags & EVENT_HAS_REASON`.
    pub reason: u32,
    pub flags: u32,
    /// `skb->protocol`, host byte order (an ethertype such as 0x0800).
    pub protocol: u16,
    /// `IP_NONE`, `IP_V4` or `IP_V6`: whether `saddr`/`daddr`/`l4_proto` are valid.
    pub ip_version: u8,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    pub l4_proto: u8,
    /// Host byte order; zero when the L4 protocol has no ports.
    pub sport: u16,
    pub dport: u16,
    /// IPv4 addresses use the first 4 bytes. Network byte order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub comm: [u8; TASK_COMM_LEN],
    pub ifname: [u8; IFNAMSIZ],
}
const _: () = assert!(size_of::<Event>() == 136);

impl Event {
    pub const fn zeroed() -> Self {
        Self {
            ts_ns: 0,
            skb: 0,
            hook: 0,
            pid: 0,
            cpu: 0,
            netns: 0,
            mark: 0,
            ifindex: 0,
            len: 0,
            mtu: 0,
            reason: 0,
            flags: 0,
            protocol: 0,
            ip_version: 0,
            l4_proto: 0,
            sport: 0,
            dport: 0,
            saddr: [0; 16],
            daddr: [0; 16],
            comm: [0; TASK_COMM_LEN],
            ifname: [0; IFNAMSIZ],
        }
    }
}

/// Largest packet the filter test program takes.
pub const FILTER_TEST_MAX: usize = 2048;

/// Input of the kernel's filter test program (the in-kernel differential tests).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterTestPacket {
    pub len: u32,
    /// Non-zero: run the L3 (network header) filter, else the L2 (MAC header) one.
    pub l3: u32,
    pub data: [u8; FILTER_TEST_MAX],
}
const _: () = assert!(size_of::<FilterTestPacket>() == 8 + FILTER_TEST_MAX);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] integer aggregates without padding (sizes asserted above).
    unsafe impl aya::Pod for super::Offsets {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::FilterTestPacket {}
}
