//! Types shared by the kernel programs (`pwru-rs-ebpf`) and the CLI (`pwru-rs`).
//!
//! Every type is `#[repr(C)]`, `Copy`, has no `bool` and no implicit padding, and its size is
//! asserted, so both sides agree on the layout byte for byte.
#![no_std]

use core::mem::size_of;

pub mod contract;

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
    /// `sk_buff.cb`, the control buffer whose first 20 bytes are BPF's `__sk_buff->cb[5]`.
    pub skb_cb: u32,
    // struct xdp_buff and struct xdp_rxq_info (`--filter-trace-xdp`)
    pub xdp_data: u32,
    pub xdp_data_end: u32,
    pub xdp_data_hard_start: u32,
    pub xdp_rxq: u32,
    pub rxq_dev: u32,
    pub rxq_queue_index: u32,
    // `--output-netfilter`: `nft_do_chain(struct nft_pktinfo *pkt, void *priv)`, `priv` being the
    // base chain's `struct nft_chain`.
    pub nft_pktinfo_skb: u32,
    pub nft_pktinfo_state: u32,
    pub hook_state_hook: u32,
    pub hook_state_pf: u32,
    pub nft_chain_name: u32,
    pub nft_chain_table: u32,
    pub nft_table_name: u32,
    /// `nft_table.family` is a bitfield on current kernels: 4 bytes read at this offset, then
    /// `(word >> shift) & mask`.
    pub nft_table_family: u32,
    pub nft_table_family_shift: u32,
    pub nft_table_family_mask: u32,
    /// `nft_base_chain.ops.priority` minus `nft_base_chain.chain`: from the chain to its base
    /// chain's priority (two's complement; the chain is not the base chain's first member).
    pub nft_chain_priority: u32,
    // struct bpf_map (`--output-bpfmap`)
    pub bpf_map_id: u32,
    pub bpf_map_key_size: u32,
    pub bpf_map_value_size: u32,
    pub bpf_map_name: u32,
    /// `htab_elem.key`: a hash map's value follows its key, 8-byte aligned.
    pub htab_elem_key: u32,
}
const _: () = assert!(size_of::<Offsets>() == 168);

pub const FILTER_NETNS: u32 = 1 << 0;
pub const FILTER_MARK: u32 = 1 << 1;
pub const FILTER_IFINDEX: u32 = 1 << 2;
/// A pcap expression was injected into the filter stubs.
pub const FILTER_PCAP: u32 = 1 << 3;
/// `--filter-track-skb`: an skb that passed the filters is traced from then on, whatever it
/// becomes, until it is freed; its clones and copies too.
pub const FILTER_TRACK_SKB: u32 = 1 << 4;
/// `--filter-track-skb-by-stackid`: events on the kernel stack a traced skb ran on are traced
/// too (a packet freed and re-made along the way, `--filter-non-skb-funcs`), as pwru does.
pub const FILTER_TRACK_SKB_BY_STACKID: u32 = 1 << 5;
/// `--filter-trace-xdp` with `--filter-track-skb`: an skb built on a packet that XDP passed
/// (its `head` is the XDP packet's `data_hard_start`) is tracked.
pub const FILTER_TRACK_XDP: u32 = 1 << 6;
/// A `--filter-skb-expr` was injected into its stub (`contract::SKB_EXPR_STUB`).
pub const FILTER_SKB_EXPR: u32 = 1 << 7;
/// `--filter-tunnel-pcap-l2` / `-l3`: a tunnel packet (VXLAN, Geneve, GRE, IPIP) must match
/// these on its inner frame / inner IP packet (`contract::TUNNEL_L2_STUB`, `TUNNEL_L3_STUB`);
/// other packets are not affected.
pub const FILTER_TUNNEL_L2: u32 = 1 << 8;
pub const FILTER_TUNNEL_L3: u32 = 1 << 9;
/// A `--filter-xdp-expr` was injected into its stub (`contract::XDP_EXPR_STUB`).
pub const FILTER_XDP_EXPR: u32 = 1 << 10;
/// `--filter-track-bpf-helpers`: the traced tc/XDP programs note their packet per CPU while
/// they run ([`InBpfProg`]), for the kprobes on the helpers they call.
pub const FILTER_TRACK_BPF_HELPERS: u32 = 1 << 11;

/// Per CPU: the packets of the traced BPF programs running now, innermost last
/// (`contract::IN_BPF_PROG_MAP`). An XDP packet's address has its low bit set; 0 is a packet
/// the filters did not pass.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InBpfProg {
    /// Programs entered and not left; only the first `packets.len()` are kept.
    pub depth: u64,
    pub packets: [u64; 4],
}
const _: () = assert!(size_of::<InBpfProg>() == 40);

/// Entries of the map of tracked skbs unless `--filter-track-skb-map-size` says otherwise.
pub const DEFAULT_TRACK_SKB_MAP_SIZE: u32 = 16384;

/// An skb being tracked (value of the tracking map, keyed by its address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackedSkb {
    /// The skb it was cloned or copied from; 0 for one that passed the filters itself.
    pub parent: u64,
}
const _: () = assert!(size_of::<TrackedSkb>() == 8);

/// `Config::outputs` bits: optional sections of a record.
pub const OUTPUT_SKB_CB: u32 = 1 << 0;
pub const OUTPUT_TCP_FLAGS: u32 = 1 << 1;
/// `struct sk_buff` printed by `bpf_snprintf_btf`.
pub const OUTPUT_SKB: u32 = 1 << 2;
/// `struct skb_shared_info` printed by `bpf_snprintf_btf`.
pub const OUTPUT_SHINFO: u32 = 1 << 3;
/// The kernel stack of each event, as an id into the stack map.
pub const OUTPUT_STACK: u32 = 1 << 4;
/// The calling function: the return address on kprobes; on tracepoints, found in the stack.
pub const OUTPUT_CALLER: u32 = 1 << 5;
/// The packet's first `Config::snaplen` bytes (`--output-pcap`).
pub const OUTPUT_PACKET: u32 = 1 << 6;
/// `--output-skb-metadata`: `Config::skb_metadata_words` words from the injected stub
/// (`contract::SKB_METADATA_STUB`), as a [`record::SECTION_SKB_METADATA`].
pub const OUTPUT_SKB_METADATA: u32 = 1 << 7;
/// `--output-tunnel`: a tunnel packet's inner tuple, as a [`record::SECTION_TUNNEL_TUPLE`].
pub const OUTPUT_TUNNEL: u32 = 1 << 8;
/// `--output-xdp-metadata`: as `OUTPUT_SKB_METADATA` for an XDP program's packet
/// (`contract::XDP_METADATA_STUB`, `Config::xdp_metadata_words`).
pub const OUTPUT_XDP_METADATA: u32 = 1 << 9;
/// `--output-netfilter`: events of the `nft_do_chain` exit carry a [`record::SECTION_NETFILTER`].
pub const OUTPUT_NETFILTER: u32 = 1 << 10;
/// `--output-bpfmap`: events of a map operation a traced BPF program made carry a
/// [`record::SECTION_BPF_MAP`].
pub const OUTPUT_BPF_MAP: u32 = 1 << 11;
/// The event's time (`ts_ns`), for what prints or uses it: `--timestamp`, `--output-pcap`,
/// `--output-group-by-skb`, `--summary`. Without it `ts_ns` is 0 and no clock is read.
pub const OUTPUT_TIMESTAMP: u32 = 1 << 12;

/// UDP ports the tunnel parser knows (IANA's).
pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;

/// pwru's limit on `--output-skb-metadata` expressions, and the words they may take together
/// (a value is one word, or two for arrays of 9 to 16 bytes).
pub const MAX_SKB_METADATA: usize = 4;
pub const MAX_SKB_METADATA_WORDS: u32 = 2 * MAX_SKB_METADATA as u32;

/// `--output-pcap-snaplen` unless said otherwise, and its bounds.
pub const DEFAULT_SNAPLEN: u32 = 256;
pub const MAX_SNAPLEN: u32 = 16384;

/// Frames kept of each stack (`--output-stack`): the stack map's value size is this × 8.
pub const STACK_DEPTH: u32 = 64;
/// Stacks the stack map holds (distinct ones: equal stacks share an entry).
pub const STACK_MAP_SIZE: u32 = 8192;

/// Dumps (`OUTPUT_SKB`, `OUTPUT_SHINFO`) are written into per-CPU buffers first; a program
/// interrupted by another on the same CPU (task, softirq, hardirq, NMI) must not share one, so
/// each nesting level has its own pair.
pub const DUMP_LEVELS: u32 = 4;
pub const DUMPS_PER_LEVEL: u32 = 2;
/// pwru's default `--set-percpu-buf`.
pub const DEFAULT_DUMP_BUF: u32 = 4096;

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
    /// `OUTPUT_*` bits.
    pub outputs: u32,
    /// vmlinux BTF ids of `struct sk_buff` and `struct skb_shared_info`, for the dumps.
    pub skb_btf_id: u32,
    pub shinfo_btf_id: u32,
    /// Bytes of each dump buffer (`--set-percpu-buf`): the dump maps' value size.
    pub dump_buf: u32,
    /// Packet bytes copied per event with `OUTPUT_PACKET`: the packet maps' value size.
    pub snaplen: u32,
    /// 8-byte words of `--output-skb-metadata` values per event (≤ `MAX_SKB_METADATA_WORDS`).
    pub skb_metadata_words: u32,
    /// The same for `--output-xdp-metadata`.
    pub xdp_metadata_words: u32,
    /// Non-zero where the kernel lets these programs call `bpf_rdonly_cast` (6.2+): the vmlinux
    /// BTF id of a struct whose first member is an 8-byte integer. Reads of kernel memory of at
    /// most 8 bytes then cast the address to it and load directly (the JIT guards the load; no
    /// helper call), each call `contract::RDONLY_CAST_CALL` being patched into the kfunc call.
    pub cast_btf_id: u32,
    /// The kprobe-multi function table has `1 << func_slot_bits` slots
    /// (`contract::FUNC_TABLE_MAP`; at least 2 bits).
    pub func_slot_bits: u32,
}
const _: () = assert!(size_of::<Config>() == 60);

/// One slot of the kprobe-multi function table (`contract::FUNC_TABLE_MAP`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncSlot {
    /// The function's address (0: a free slot; no function is at 0).
    pub ip: u64,
    /// Its `contract::func_args_entry`.
    pub args: u32,
    /// The displacement of the bucket whose index this slot has (`contract::func_slot`).
    pub seed: u32,
}
const _: () = assert!(size_of::<FuncSlot>() == 16);

/// Ring-buffer records: a [`RecordHeader`], then sections, each a [`SectionHeader`] and its
/// payload. The kernel writes only the sections it has (no tuple when no IP header could be read;
/// later features add theirs), so a record is as long as what it carries. Userspace checks every
/// length before reading and skips section kinds it does not know.
pub mod record {
    use core::mem::size_of;

    /// Bumped whenever a layout below changes incompatibly.
    pub const VERSION: u16 = 3;

    /// `RecordHeader::kind`: one hit of a hook on an skb.
    pub const KIND_SKB: u16 = 1;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RecordHeader {
        pub kind: u16,
        pub version: u16,
        /// Bytes of the whole record, this header included.
        pub len: u32,
    }
    const _: () = assert!(size_of::<RecordHeader>() == 8);

    /// `SectionHeader::kind` values.
    pub const SECTION_META: u16 = 1;
    pub const SECTION_TUPLE: u16 = 2;
    /// [`Cb`].
    pub const SECTION_CB: u16 = 3;
    /// [`DumpHeader`] and the text of `struct sk_buff`.
    pub const SECTION_SKB_DUMP: u16 = 4;
    /// [`DumpHeader`] and the text of `struct skb_shared_info`.
    pub const SECTION_SHINFO_DUMP: u16 = 5;
    /// [`Xdp`]: the packet is an `xdp_buff` in an XDP program (`--filter-trace-xdp`), not an skb.
    pub const SECTION_XDP: u16 = 6;
    /// [`PacketHeader`] and the packet's first bytes (`--output-pcap`).
    pub const SECTION_PACKET: u16 = 7;
    /// `--output-skb-metadata` values: `Config::skb_metadata_words` little-endian u64 words.
    pub const SECTION_SKB_METADATA: u16 = 8;
    /// A [`Tuple`] of a tunnel packet's inner packet (`--output-tunnel`).
    pub const SECTION_TUNNEL_TUPLE: u16 = 9;
    /// Bytes to skip: the tuple's place in a record built in place without a tuple.
    /// [`Netfilter`]: the base chain an `nft_do_chain` exit ran (its verdict is `Meta::verdict`).
    pub const SECTION_NETFILTER: u16 = 10;
    /// A map operation of a traced BPF program ([`BpfMap`], `--output-bpfmap`).
    pub const SECTION_BPF_MAP: u16 = 11;
    pub const SECTION_PADDING: u16 = 0xffff;

    /// `PacketHeader::link`: pcap link types (LINKTYPE_*).
    /// From the MAC header: an Ethernet frame.
    pub const LINK_ETHERNET: u32 = 1;
    /// From the network header: IPv4 or IPv6 without a link header.
    pub const LINK_RAW: u32 = 101;

    /// Eight bytes, so every payload stays 8-byte aligned within the record.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SectionHeader {
        pub kind: u16,
        pub _reserved: u16,
        /// Bytes of the payload that follows.
        pub len: u32,
    }
    const _: () = assert!(size_of::<SectionHeader>() == 8);

    /// `Meta::hook_kind`: what `Meta::hook` is.
    /// The probed function's address (`bpf_get_func_ip`), named through kallsyms.
    pub const HOOK_FUNC_IP: u8 = 1;
    /// The attachment's BPF cookie: an index into the table of hooks userspace attached.
    pub const HOOK_COOKIE: u8 = 2;
    /// A traced BPF program's address (`bpf_get_func_ip` in fentry/fexit on it), named through
    /// the table of traced programs. Like a tracepoint, it has no return address to its caller.
    pub const HOOK_BPF_PROG: u8 = 3;
    /// The exit of `nft_do_chain` (`--output-netfilter`): one hook, `Meta::hook` unused.
    pub const HOOK_NFT_DO_CHAIN: u8 = 4;

    /// `Meta::flags` bits.
    pub const META_HAS_REASON: u32 = 1 << 0;
    pub const META_HAS_DEV: u32 = 1 << 1;
    /// `Meta::stack_id` is an id of the stack map.
    pub const META_HAS_STACK: u32 = 1 << 2;
    /// The stack was asked for but not captured: `Meta::stack_id` is the errno.
    pub const META_STACK_FAILED: u32 = 1 << 3;
    /// The hook is the exit of a BPF program: `Meta::verdict` is its return value.
    pub const META_HAS_VERDICT: u32 = 1 << 4;

    /// `Meta::tracked_by`: why the event was traced (with `--filter-track-skb`).
    /// Tracking off.
    pub const TRACKED_NONE: u8 = 0;
    /// The skb passed the filters at this hook.
    pub const TRACKED_BY_FILTER: u8 = 1;
    /// The skb's address is tracked (it passed the filters earlier, or is a clone of one that did).
    pub const TRACKED_BY_SKB: u8 = 2;
    /// It runs on the kernel stack a traced skb ran on (`--filter-track-skb-by-stackid`).
    pub const TRACKED_BY_STACKID: u8 = 3;
    /// The skb was built on a packet an XDP program passed, which was traced.
    pub const TRACKED_BY_XDP: u8 = 4;

    /// Common metadata of an skb at a hook ([`SECTION_META`], always present).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Meta {
        /// `bpf_ktime_get_ns()` at the hit.
        pub ts_ns: u64,
        /// Address of the `struct sk_buff`.
        pub skb: u64,
        /// What fired; its meaning is given by `hook_kind`.
        pub hook: u64,
        /// The skb this one was cloned or copied from, when tracking follows it; else 0.
        pub parent_skb: u64,
        /// Return address into the probed function's caller (kprobes, `--output-caller`); else 0.
        pub caller: u64,
        pub pid: u32,
        pub cpu: u32,
        pub netns: u32,
        pub mark: u32,
        pub ifindex: u32,
        pub len: u32,
        pub mtu: u32,
        /// `enum skb_drop_reason` value, valid when `flags & META_HAS_REASON`.
        pub reason: u32,
        pub flags: u32,
        /// See `META_HAS_STACK` / `META_STACK_FAILED`.
        pub stack_id: u32,
        /// A BPF program's return value (`TC_ACT_*`, `XDP_*`), valid when
        /// `flags & META_HAS_VERDICT`.
        pub verdict: u32,
        /// `skb->protocol`, host byte order (an ethertype such as 0x0800).
        pub protocol: u16,
        /// `HOOK_FUNC_IP` or `HOOK_COOKIE`.
        pub hook_kind: u8,
        /// `TRACKED_*`.
        pub tracked_by: u8,
        pub comm: [u8; super::TASK_COMM_LEN],
        /// Valid when `flags & META_HAS_DEV`.
        pub ifname: [u8; super::IFNAMSIZ],
    }
    const _: () = assert!(size_of::<Meta>() == 120);

    /// `Tuple::ip_version` values.
    pub const IP_V4: u8 = 4;
    pub const IP_V6: u8 = 6;

    /// Addresses and ports from the packet's headers ([`SECTION_TUPLE`], present when the
    /// network header holds IPv4 or IPv6).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Tuple {
        /// `IP_V4` or `IP_V6`.
        pub ip_version: u8,
        /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
        pub l4_proto: u8,
        /// Host byte order; zero when the L4 protocol has no ports.
        pub sport: u16,
        pub dport: u16,
        /// TCP header flags byte (FIN 0x01 … CWR 0x80), when asked for and the packet is TCP.
        pub tcp_flags: u8,
        pub _pad: u8,
        /// IPv4 addresses use the first 4 bytes. Network byte order.
        pub saddr: [u8; 16],
        pub daddr: [u8; 16],
    }
    const _: () = assert!(size_of::<Tuple>() == 40);

    /// `skb->cb` as BPF programs see it (`__sk_buff->cb[5]`) ([`SECTION_CB`]).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Cb {
        pub words: [u32; 5],
        pub _pad: u32,
    }
    const _: () = assert!(size_of::<Cb>() == 24);

    /// What an XDP packet has besides [`Meta`] ([`SECTION_XDP`]). `Meta::skb` is then the
    /// `xdp_buff`'s address, `len` its `data_end - data`, `protocol` the frame's ethertype.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Xdp {
        /// `xdp_rxq_info.queue_index`.
        pub rx_queue: u32,
        pub _pad: u32,
    }
    const _: () = assert!(size_of::<Xdp>() == 8);

    /// Bytes kept of a netfilter table's or chain's name (NUL included); longer names are cut.
    pub const NF_NAME_LEN: usize = 32;

    /// The nftables base chain a packet went through ([`SECTION_NETFILTER`]).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Netfilter {
        /// NUL-terminated, cut to `NF_NAME_LEN - 1` bytes.
        pub table: [u8; NF_NAME_LEN],
        pub chain: [u8; NF_NAME_LEN],
        /// The base chain's priority (`nf_hook_ops.priority`).
        pub priority: i32,
        /// The table's family (`NFPROTO_*`: inet 1, ip 2, arp 3, netdev 5, bridge 7, ip6 10).
        pub family: u8,
        /// The hook's protocol family and hook number (`nf_hook_state.pf`, `.hook`).
        pub pf: u8,
        pub hook: u8,
        pub _pad: u8,
    }
    const _: () = assert!(size_of::<Netfilter>() == 72);

    impl Default for Netfilter {
        fn default() -> Self {
            Netfilter {
                table: [0; NF_NAME_LEN],
                chain: [0; NF_NAME_LEN],
                priority: 0,
                family: 0,
                pf: 0,
                hook: 0,
                _pad: 0,
            }
        }
    }

    /// Bytes of a map's key and value an event carries; longer ones are cut (`key_size` and
    /// `value_size` say how long they are).
    pub const BPF_MAP_BYTES: usize = 64;
    /// `BpfMap::op`.
    pub const BPF_MAP_LOOKUP: u8 = 1;
    pub const BPF_MAP_UPDATE: u8 = 2;
    pub const BPF_MAP_DELETE: u8 = 3;

    /// A map operation a traced BPF program made ([`SECTION_BPF_MAP`]): the map, and the key
    /// and value it was given (an update) or found (a lookup).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BpfMap {
        pub id: u32,
        pub key_size: u32,
        pub value_size: u32,
        /// `BPF_MAP_LOOKUP`, `BPF_MAP_UPDATE` or `BPF_MAP_DELETE`.
        pub op: u8,
        /// Whether `value` holds one (a lookup that found nothing, a delete: no).
        pub has_value: u8,
        pub _pad: u16,
        /// The operation's return value (0 or `-errno`; a lookup's: 0).
        pub ret: i32,
        pub _pad2: u32,
        /// NUL-terminated unless 16 bytes long (`BPF_OBJ_NAME_LEN`).
        pub name: [u8; 16],
        pub key: [u8; BPF_MAP_BYTES],
        pub value: [u8; BPF_MAP_BYTES],
    }
    const _: () = assert!(size_of::<BpfMap>() == 168);

    /// Starts a packet section; `len` bytes of the packet follow (the section is padded to 8).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PacketHeader {
        /// Bytes that follow: at most the snap length, and what the skb's linear data holds.
        pub len: u32,
        /// Bytes the packet has from where the copy starts (paged data included).
        pub orig_len: u32,
        /// `LINK_ETHERNET` or `LINK_RAW`: where the copy starts.
        pub link: u32,
        pub _pad: u32,
    }
    const _: () = assert!(size_of::<PacketHeader>() == 16);

    /// Starts a dump section; `len` bytes of text follow (the section is padded to 8 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DumpHeader {
        /// Bytes of text that follow.
        pub len: u32,
        /// Bytes the whole dump has: more than `len` when the buffer cut it.
        pub full_len: u32,
    }
    const _: () = assert!(size_of::<DumpHeader>() == 8);

    /// The first sections of an skb record as the kernel lays them out: the kernel sends the
    /// first [`SKB_RECORD_NO_TUPLE`] bytes when there is no tuple, all of them otherwise, then
    /// any optional sections.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SkbRecord {
        pub header: RecordHeader,
        pub meta_header: SectionHeader,
        pub meta: Meta,
        pub tuple_header: SectionHeader,
        pub tuple: Tuple,
    }
    /// An XDP packet's record: as [`SkbRecord`] with an [`Xdp`] section before the tuple; the
    /// kernel sends the first [`XDP_RECORD_NO_TUPLE`] bytes when there is no tuple.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct XdpRecord {
        pub header: RecordHeader,
        pub meta_header: SectionHeader,
        pub meta: Meta,
        pub xdp_header: SectionHeader,
        pub xdp: Xdp,
        pub tuple_header: SectionHeader,
        pub tuple: Tuple,
    }
    pub const XDP_RECORD_NO_TUPLE: usize = size_of::<XdpRecord>() - 8 - size_of::<Tuple>();
    const _: () = assert!(size_of::<XdpRecord>() == 200);

    /// `--output-netfilter`: a packet's record at the entry of a base chain, kept until the
    /// chain's exit (which may come after the chain freed the skb) sends it again with the
    /// verdict.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NfPending {
        pub record: SkbRecord,
        /// Bytes of `record` to send: `SKB_RECORD_NO_TUPLE` or all of it.
        pub len: u32,
        pub _pad: u32,
        /// The base chain (`struct nft_chain *`) and the hook state.
        pub chain: u64,
        pub state: u64,
    }
    const _: () = assert!(size_of::<NfPending>() == 208);

    /// Bytes of an [`SkbRecord`] without its tuple section.
    pub const SKB_RECORD_NO_TUPLE: usize = size_of::<SkbRecord>() - 8 - size_of::<Tuple>();
    const _: () = assert!(size_of::<SkbRecord>() == 184);
    const _: () = assert!(SKB_RECORD_NO_TUPLE == 136);
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
    unsafe impl aya::Pod for super::FuncSlot {}
    unsafe impl aya::Pod for super::FilterTestPacket {}
    unsafe impl aya::Pod for super::TrackedSkb {}
}
