//! Reading an `sk_buff`, the meta filters and writing the event: shared by every hook kind.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, generated},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf, StackTrace},
};
use core::mem::MaybeUninit;

use pwru_rs_common::{
    assert_contract_name, contract,
    record::{
        BpfMap, Cb, DumpHeader, Meta as MetaSection, Netfilter, NfPending, PacketHeader,
        RecordHeader, SectionHeader, SkbRecord, Tuple, Xdp, XdpRecord, BPF_MAP_BYTES, HOOK_FUNC_IP,
        IP_V4, IP_V6, KIND_SKB, LINK_ETHERNET, LINK_RAW, META_HAS_DEV, META_HAS_REASON,
        META_HAS_STACK, META_HAS_VERDICT, META_STACK_FAILED, NF_NAME_LEN, SECTION_BPF_MAP,
        SECTION_CB, SECTION_META, SECTION_NETFILTER, SECTION_PACKET, SECTION_PADDING,
        SECTION_SHINFO_DUMP, SECTION_SKB_DUMP, SECTION_SKB_METADATA, SECTION_TUNNEL_TUPLE,
        SECTION_TUPLE, SECTION_XDP, SKB_RECORD_NO_TUPLE, TRACKED_BY_FILTER, TRACKED_BY_SKB,
        TRACKED_BY_STACKID, TRACKED_BY_XDP, TRACKED_NONE, VERSION, XDP_RECORD_NO_TUPLE,
    },
    Config, Offsets, DEFAULT_DUMP_BUF, DEFAULT_SNAPLEN, DUMPS_PER_LEVEL, DUMP_LEVELS,
    FILTER_IFINDEX, FILTER_MARK, FILTER_NETNS, FILTER_PCAP, FILTER_SKB_EXPR,
    FILTER_TRACK_BPF_HELPERS, FILTER_TRACK_SKB, FILTER_TRACK_SKB_BY_STACKID, FILTER_TRACK_XDP,
    FILTER_TUNNEL_L2, FILTER_TUNNEL_L3, FILTER_XDP_EXPR, MAX_SKB_METADATA_WORDS, OUTPUT_BPF_MAP,
    OUTPUT_CALLER, OUTPUT_NETFILTER, OUTPUT_PACKET, OUTPUT_SHINFO, OUTPUT_SKB, OUTPUT_SKB_CB,
    OUTPUT_SKB_METADATA, OUTPUT_STACK, OUTPUT_TCP_FLAGS, OUTPUT_TIMESTAMP, OUTPUT_TUNNEL,
    OUTPUT_XDP_METADATA, TASK_COMM_LEN,
};

use crate::{
    filter::{
        pwru_filter_l2, pwru_filter_l3, pwru_filter_skb_expr, pwru_filter_xdp_expr,
        pwru_skb_metadata, pwru_tunnel_filter_l2, pwru_tunnel_filter_l3, pwru_xdp_metadata,
    },
    track, tunnel,
};

/// Kernel struct offsets, written by userspace before load (read-only global).
#[unsafe(no_mangle)]
static OFFSETS: Offsets = unsafe { core::mem::zeroed() };
assert_contract_name!(OFFSETS, contract::OFFSETS_GLOBAL);

/// Filters, written by userspace before load (read-only global).
#[unsafe(no_mangle)]
static CONFIG: Config = unsafe { core::mem::zeroed() };
assert_contract_name!(CONFIG, contract::CONFIG_GLOBAL);

/// Userspace resizes it at load time (`--ringbuf-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);
assert_contract_name!(EVENTS, contract::EVENTS_MAP);

/// Per-CPU dump buffers; userspace sets the value size (`--set-percpu-buf`) before load.
#[map]
static DUMPS: PerCpuArray<[u8; DEFAULT_DUMP_BUF as usize]> =
    PerCpuArray::with_max_entries(DUMP_LEVELS * DUMPS_PER_LEVEL, 0);
assert_contract_name!(DUMPS, contract::DUMPS_MAP);

/// Stack traces; userspace sets the value size (`STACK_DEPTH` frames) and entries before load.
/// Entries are never replaced (no `BPF_F_REUSE_STACKID`) nor deleted, so an id always means the
/// stack it was given for, and userspace reads each once.
#[map]
static STACKS: StackTrace = StackTrace::with_max_entries(1, 0);
assert_contract_name!(STACKS, contract::STACKS_MAP);

/// Compare stacks by hash only: cheaper, and a collision is told apart at no cost to us.
const BPF_F_FAST_STACK_CMP: u64 = 1 << 9;

/// Per-CPU packet buffers, one per nesting level; userspace sets the value size
/// (`--output-pcap-snaplen`) before load.
#[map]
static PACKETS: PerCpuArray<[u8; DEFAULT_SNAPLEN as usize]> =
    PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(PACKETS, contract::PACKETS_MAP);

/// Per-CPU buffers the skb records are built in, one per nesting level.
#[map]
static RECORDS: PerCpuArray<SkbRecord> = PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(RECORDS, contract::RECORDS_MAP);

/// Per-CPU buffers the XDP records are built in, one per nesting level.
#[map]
static XDP_RECORDS: PerCpuArray<XdpRecord> = PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(XDP_RECORDS, contract::XDP_RECORDS_MAP);

/// Per-CPU buffers of `--output-skb-metadata` words, one per nesting level.
#[map]
static SKB_METADATA: PerCpuArray<[u64; MAX_SKB_METADATA_WORDS as usize]> =
    PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(SKB_METADATA, contract::SKB_METADATA_MAP);

/// Per-CPU buffers of `--output-tunnel`'s inner tuple, one per nesting level.
#[map]
static TUNNEL_TUPLES: PerCpuArray<TupleSection> = PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(TUNNEL_TUPLES, contract::TUNNEL_TUPLES_MAP);

/// Per-CPU buffers of `--output-netfilter`'s section, one per nesting level.
#[map]
static NETFILTER: PerCpuArray<NetfilterSection> = PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(NETFILTER, contract::NETFILTER_MAP);

/// Packets inside a base chain (`--output-netfilter`), by skb address.
#[map]
static NF_ACTIVE: LruHashMap<u64, NfPending> = LruHashMap::with_max_entries(4096, 0);
assert_contract_name!(NF_ACTIVE, contract::NF_ACTIVE_MAP);

#[map]
static NF_SCRATCH: PerCpuArray<NfPending> = PerCpuArray::with_max_entries(DUMP_LEVELS, 0);
assert_contract_name!(NF_SCRATCH, contract::NF_SCRATCH_MAP);

/// This CPU's dump nesting level (see `DUMP_LEVELS`).
#[map]
static DUMP_NEST: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
assert_contract_name!(DUMP_NEST, contract::DUMP_NEST_MAP);

/// Events that matched but found the ring buffer full: userspace reports them, nothing is lost
/// silently.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
assert_contract_name!(LOST, contract::LOST_MAP);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
/// `skb->{network,transport}_header` value meaning "not set".
const HEADER_UNSET: u16 = 0xffff;

macro_rules! off {
    ($field:ident) => {
        load_time_u32(&raw const OFFSETS.$field) as u64
    };
}

macro_rules! cfg {
    ($field:ident) => {
        load_time_u32(&raw const CONFIG.$field)
    };
}

/// Reads a read-only global set at load time. Volatile: the compiler only sees the zero
/// placeholder and must not fold it.
#[inline(always)]
fn load_time_u32(p: *const u32) -> u32 {
    unsafe { core::ptr::read_volatile(p) }
}

/// `T` at kernel address `addr`; its default (zero) when the address cannot be read.
///
/// Where the kernel allows it (`Config::cast_btf_id`, a load-time constant), a read of at most 8
/// bytes is a direct load through `bpf_rdonly_cast`: the verifier turns the cast into a register
/// move and the JIT guards the load (a fault or a user address gives 0, as the helper would). A
/// `bpf_probe_read_kernel` call costs ~20 ns natively and several times that emulated; most hits
/// read a few fields and stop.
#[inline(always)]
pub(crate) fn read<T>(addr: u64) -> T
where
    T: Default,
{
    if size_of::<T>() <= 8 && cfg!(cast_btf_id) != 0 {
        // SAFETY: the verifier types the cast's result as an untrusted kernel pointer and the JIT
        // guards loads through it: an unreadable address reads 0 instead of faulting.
        return unsafe { core::ptr::read_volatile(rdonly_cast(addr) as *const T) };
    }
    unsafe { bpf_probe_read_kernel(addr as *const T) }.unwrap_or_default()
}

/// `bpf_rdonly_cast(addr, cast_btf_id)`, called by a placeholder helper number that userspace
/// patches into the kfunc call (see `contract::RDONLY_CAST_CALL`).
#[inline(always)]
unsafe fn rdonly_cast(addr: u64) -> u64 {
    // SAFETY: the same pattern as aya-ebpf's helper bindings: a call to a fixed number.
    let cast: unsafe extern "C" fn(u64, u32) -> u64 =
        unsafe { core::mem::transmute(contract::RDONLY_CAST_CALL as usize) };
    unsafe { cast(addr, cfg!(cast_btf_id)) }
}

/// What the meta filters and the event need to know about the skb's device and netns.
struct Meta {
    dev: u64,
    netns: u32,
    ifindex: u32,
}

impl Meta {
    /// Not read yet: every field defined (an `Option` would leave some undefined, see
    /// `why_traced`). No device sits at the last address.
    const UNREAD: Meta = Meta {
        dev: u64::MAX,
        netns: 0,
        ifindex: 0,
    };

    #[inline(always)]
    fn is_unread(&self) -> bool {
        self.dev == u64::MAX
    }
}

#[inline(always)]
fn read_meta(skb: u64) -> Meta {
    let dev: u64 = read(skb + off!(skb_dev));
    if dev != 0 {
        return dev_meta(dev);
    }
    // Before the skb has a device (early transmit path), its socket tells the netns.
    let sk: u64 = read(skb + off!(skb_sk));
    let net = if sk != 0 {
        read::<u64>(sk + off!(sk_net))
    } else {
        0
    };
    Meta {
        dev: 0,
        netns: net_inum(net),
        ifindex: 0,
    }
}

/// The device's ifindex and netns (`dev` may be 0).
#[inline(always)]
fn dev_meta(dev: u64) -> Meta {
    if dev == 0 {
        return Meta {
            dev,
            netns: 0,
            ifindex: 0,
        };
    }
    Meta {
        dev,
        netns: net_inum(read::<u64>(dev + off!(dev_net))),
        ifindex: read::<u32>(dev + off!(dev_ifindex)),
    }
}

#[inline(always)]
fn net_inum(net: u64) -> u32 {
    if net != 0 {
        read::<u32>(net + off!(net_inum))
    } else {
        0
    }
}

/// `nft_pktinfo`'s skb and hook state.
#[inline(always)]
pub fn nft_pktinfo(pkt: u64) -> (u64, u64) {
    (
        read(pkt + off!(nft_pktinfo_skb)),
        read(pkt + off!(nft_pktinfo_state)),
    )
}

/// `--filter-track-skb` (a load-time constant).
#[inline(always)]
pub fn tracking() -> bool {
    cfg!(filters) & FILTER_TRACK_SKB != 0
}

/// `--filter-track-bpf-helpers` (a load-time constant).
#[inline(always)]
pub fn helpers_tracked() -> bool {
    cfg!(filters) & FILTER_TRACK_BPF_HELPERS != 0
}

/// Adds one to a per-CPU counter that userspace sums and reports (`LOST`, `TRACK_FULL`).
#[inline(always)]
pub fn count(counter: &PerCpuArray<u64>) {
    if let Some(p) = counter.get_ptr_mut(0) {
        unsafe { *p += 1 };
    }
}

/// The kprobe-multi function table's size (`Config::func_slot_bits`).
#[inline(always)]
pub fn func_slot_bits() -> u32 {
    cfg!(func_slot_bits)
}

/// `--filter-track-skb-by-stackid` (a load-time constant).
#[inline(always)]
pub fn tracking_by_stack() -> bool {
    cfg!(filters) & FILTER_TRACK_SKB_BY_STACKID != 0
}

/// One hit of a hook on an skb.
pub struct Hit<H, C, R, K> {
    pub ctx: *mut core::ffi::c_void,
    pub skb: u64,
    /// A `record::HOOK_*` kind, and what names the hook for userspace (asked only for events:
    /// it is a helper call).
    pub hook_kind: u8,
    pub hook: H,
    /// The return address into the caller where the hook kind has one (0 else).
    pub caller: C,
    /// The drop reason when the hook carries one (asked only for events: on the hook's
    /// arguments, it need not be read for the skbs filtered out).
    pub reason: R,
    /// A BPF program's return value, at its exit (`--filter-trace-tc`).
    pub verdict: Option<u32>,
    /// Which kernel stack the hook runs on (`track::stack_key`), where the hook kind tells (0
    /// else): `--filter-track-skb-by-stackid` goes by it (asked only with it).
    pub stack_key: K,
    /// The skb was found by the hook, not passed to it: traced without the filters, as this
    /// `TRACKED_*` (`--filter-non-skb-funcs` by its stack, `--filter-track-bpf-helpers` by the
    /// traced BPF program running it).
    pub given: Option<u8>,
    /// The netfilter base chain the hook ran (`nft_do_chain`'s exit), or `NfChain::NONE`.
    pub netfilter: NfChain,
    /// A map operation's hit (`--output-bpfmap`): [`note_bpf_map`] built its section.
    pub bpf_map: bool,
}

/// An nftables base chain run on the packet: `nft_do_chain(pkt, priv)`'s `priv` (the base
/// chain's `struct nft_chain`) and `pkt->state`.
#[derive(Clone, Copy)]
pub struct NfChain {
    pub chain: u64,
    pub state: u64,
    /// At the chain's entry: the record is kept for its exit ([`nft_exit`]).
    pub entry: bool,
}

impl NfChain {
    pub const NONE: NfChain = NfChain {
        chain: 0,
        state: 0,
        entry: false,
    };
}

/// Entry point of every hook: filter, then build one record and send it. True when the skb is
/// traced (the record may still have been lost to a full ring buffer, and counted).
#[inline(always)]
pub fn handle_skb(
    hit: Hit<
        impl FnOnce() -> u64,
        impl FnOnce() -> u64,
        impl FnOnce() -> Option<u32>,
        impl Fn() -> u64 + Copy,
    >,
) -> bool {
    let Hit {
        ctx,
        skb,
        hook_kind,
        hook,
        caller,
        reason,
        verdict,
        stack_key,
        given,
        netfilter,
        bpf_map,
    } = hit;
    if skb == 0 {
        return false;
    }
    let Some((tracked_by, parent_skb, meta, headers)) = why_traced(skb, stack_key, given) else {
        return false;
    };
    // pwru's rule: an skb traced for itself marks the stack it runs on.
    if tracking_by_stack() && tracked_by != TRACKED_BY_STACKID {
        track::remember_stack(skb, stack_key());
    }
    let reason = reason();
    let meta = if meta.is_unread() {
        read_meta(skb)
    } else {
        meta
    };
    // A drop inside a base chain (nftables frees what it drops on current kernels): the drop
    // names the chain. A load-time constant: no lookup without the option.
    let netfilter =
        if cfg!(outputs) & OUTPUT_NETFILTER != 0 && netfilter.chain == 0 && reason.is_some() {
            match unsafe { NF_ACTIVE.get(&skb) } {
                Some(p) => NfChain {
                    chain: p.chain,
                    state: p.state,
                    entry: false,
                },
                None => netfilter,
            }
        } else {
            netfilter
        };
    let protocol = u16::from_be(read::<u16>(skb + off!(skb_protocol)));
    let common = Common {
        ctx,
        hook_kind,
        hook,
        caller,
        reason,
        verdict,
        tracked_by,
        parent_skb,
    };
    let packet = Packet {
        addr: skb,
        dev: meta.dev,
        netns: meta.netns,
        ifindex: meta.ifindex,
        mark: read(skb + off!(skb_mark)),
        len: read(skb + off!(skb_len)),
        protocol,
    };
    let l3 = if headers.head == 0 || headers.network == 0 || headers.network == HEADER_UNSET {
        0
    } else {
        headers.head + headers.network as u64
    };
    // The record is never built on the stack: 512 bytes are for the program and the filters it
    // calls together, too few for a record besides. Every byte is written once, field by field:
    // zero-filling it first would make LLVM call a byte-at-a-time `memset` subprogram, costly
    // per hit and for the verifier.
    // Load-time constant: without optional sections the record is built in place in the ring
    // buffer (its size is fixed; without a tuple, the tuple's place is a padding section).
    if cfg!(outputs)
        & (OUTPUT_SKB_CB
            | OUTPUT_SKB
            | OUTPUT_SHINFO
            | OUTPUT_PACKET
            | OUTPUT_SKB_METADATA
            | OUTPUT_TUNNEL
            | OUTPUT_NETFILTER
            | OUTPUT_BPF_MAP)
        == 0
    {
        let Some(mut entry) = EVENTS.reserve::<SkbRecord>(0) else {
            count(&LOST);
            return true;
        };
        let r = entry.as_mut_ptr();
        unsafe {
            write_meta(
                &raw mut (*r).meta_header,
                &raw mut (*r).meta,
                common,
                packet,
            );
            let tuple_header = &raw mut (*r).tuple_header;
            if !tuple_section(l3, protocol, tuple_header) {
                tuple_header.write(SectionHeader {
                    kind: SECTION_PADDING,
                    _reserved: 0,
                    len: size_of::<Tuple>() as u32,
                });
            }
            (&raw mut (*r).header).write(RecordHeader {
                kind: KIND_SKB,
                version: VERSION,
                len: size_of::<SkbRecord>() as u32,
            });
        }
        entry.submit(wakeup_flag());
        return true;
    }
    // With sections, in this nesting level's per-CPU buffer, then copied into a reservation of
    // the whole length.
    let Some((level, r)) = claim_buffer(&RECORDS) else {
        return true;
    };
    unsafe {
        write_meta(
            &raw mut (*r).meta_header,
            &raw mut (*r).meta,
            common,
            packet,
        )
    };
    let len = if tuple_section(l3, protocol, unsafe { &raw mut (*r).tuple_header }) {
        size_of::<SkbRecord>()
    } else {
        SKB_RECORD_NO_TUPLE
    };
    if netfilter.entry {
        keep_for_exit(level, skb, r, len, netfilter);
    }
    send_with_sections(level, r, len, skb, &headers, netfilter, bpf_map);
    leave_dump_level();
    true
}

/// Sends the first `len` bytes of the record at `r` (all written but its header) in one copy.
///
/// # Safety
/// `r` points at a record whose first `len` bytes after the header are written.
#[inline(always)]
unsafe fn send_whole(r: *mut RecordHeader, len: usize) {
    unsafe {
        r.write(RecordHeader {
            kind: KIND_SKB,
            version: VERSION,
            len: len as u32,
        });
    }
    let bytes = unsafe { core::slice::from_raw_parts(r.cast::<u8>(), len) };
    if EVENTS.output::<[u8]>(bytes, wakeup_flag()).is_err() {
        count(&LOST);
    }
}

/// What every event says about the hook and why it was traced.
struct Common<H, C> {
    ctx: *mut core::ffi::c_void,
    hook_kind: u8,
    hook: H,
    caller: C,
    reason: Option<u32>,
    verdict: Option<u32>,
    tracked_by: u8,
    parent_skb: u64,
}

/// What every event says about the packet (an skb, or an XDP packet).
struct Packet {
    addr: u64,
    /// Its `struct net_device`, or 0.
    dev: u64,
    netns: u32,
    ifindex: u32,
    mark: u32,
    len: u32,
    protocol: u16,
}

/// Writes the meta section: its header at `header`, the payload at `m`.
///
/// # Safety
/// Both point into a record being built.
#[inline(always)]
unsafe fn write_meta(
    header: *mut SectionHeader,
    m: *mut MetaSection,
    c: Common<impl FnOnce() -> u64, impl FnOnce() -> u64>,
    p: Packet,
) {
    unsafe {
        header.write(SectionHeader {
            kind: SECTION_META,
            _reserved: 0,
            len: size_of::<MetaSection>() as u32,
        });
        (&raw mut (*m).ts_ns).write(timestamp());
        (&raw mut (*m).skb).write(p.addr);
        (&raw mut (*m).hook).write((c.hook)());
        (&raw mut (*m).parent_skb).write(c.parent_skb);
        // Load-time constants: nothing of this without the options.
        let outputs = cfg!(outputs);
        (&raw mut (*m).caller).write(if outputs & OUTPUT_CALLER != 0 {
            (c.caller)()
        } else {
            0
        });
        // Only kprobes have a return address: elsewhere the caller is found in the stack.
        let (stack_id, stack_flags) = if outputs & OUTPUT_STACK != 0
            || (outputs & OUTPUT_CALLER != 0 && c.hook_kind != HOOK_FUNC_IP)
        {
            let id = generated::bpf_get_stackid(
                c.ctx,
                (&raw const STACKS).cast_mut().cast(),
                BPF_F_FAST_STACK_CMP,
            );
            if id >= 0 {
                (id as u32, META_HAS_STACK)
            } else {
                ((-id) as u32, META_STACK_FAILED)
            }
        } else {
            (0, 0)
        };
        (&raw mut (*m).stack_id).write(stack_id);
        (&raw mut (*m).pid).write((bpf_get_current_pid_tgid() >> 32) as u32);
        (&raw mut (*m).cpu).write(generated::bpf_get_smp_processor_id());
        (&raw mut (*m).netns).write(p.netns);
        (&raw mut (*m).mark).write(p.mark);
        (&raw mut (*m).ifindex).write(p.ifindex);
        (&raw mut (*m).len).write(p.len);
        (&raw mut (*m).protocol).write(p.protocol);
        (&raw mut (*m).hook_kind).write(c.hook_kind);
        (&raw mut (*m).tracked_by).write(c.tracked_by);
        let mut flags = stack_flags;
        (&raw mut (*m).reason).write(match c.reason {
            Some(r) => {
                flags |= META_HAS_REASON;
                r
            }
            None => 0,
        });
        (&raw mut (*m).verdict).write(match c.verdict {
            Some(v) => {
                flags |= META_HAS_VERDICT;
                v
            }
            None => 0,
        });
        // Fills all 16 bytes, NUL-padded.
        generated::bpf_get_current_comm((&raw mut (*m).comm).cast(), TASK_COMM_LEN as u32);
        let ifname = &raw mut (*m).ifname;
        if p.dev != 0 {
            flags |= META_HAS_DEV;
            (&raw mut (*m).mtu).write(read(p.dev + off!(dev_mtu)));
            // Fills all 16 bytes (zeros if the read fails).
            probe_read_into(p.dev + off!(dev_name), ifname);
        } else {
            (&raw mut (*m).mtu).write(0);
            write_zeros(ifname);
        }
        (&raw mut (*m).flags).write(flags);
    }
}

/// Whether the skb is traced, and why: `(TRACKED_*, parent skb, meta read by the filters
/// (`Meta::UNREAD` if they did not), headers)`; `None` when it is not.
#[inline(always)]
fn why_traced(
    skb: u64,
    stack_key: impl Fn() -> u64,
    given: Option<u8>,
) -> Option<(u8, u64, Meta, Headers)> {
    if let Some(tracked_by) = given {
        return Some((tracked_by, 0, Meta::UNREAD, read_headers(skb)));
    }
    // Load-time constants: without tracking, no map lookup.
    if !(tracking() || tracking_by_stack()) {
        let (meta, headers) = passes_filters(skb, Headers::UNREAD)?;
        return Some((TRACKED_NONE, 0, meta, headers));
    }
    if tracking() {
        // Traced whatever it has become (NATed, decapsulated, rewritten).
        if let Some(t) = track::lookup(skb) {
            let headers = read_headers(skb);
            // An XDP packet passed on this (already tracked) skb's buffer is this packet: its
            // note must not make a later skb on the recycled buffer look like it.
            if cfg!(filters) & FILTER_TRACK_XDP != 0 {
                track::xdp_seen(headers.head);
            }
            return Some((TRACKED_BY_SKB, t.parent, Meta::UNREAD, headers));
        }
    }
    if tracking_by_stack() && track::skb_on_stack(stack_key()).is_some() {
        return Some((TRACKED_BY_STACKID, 0, Meta::UNREAD, read_headers(skb)));
    }
    // Built on a packet that a traced XDP program passed (a load-time constant). No `Option`
    // of the headers: LLVM may spill the undefined fields of a `None`, which the verifier
    // refuses as reads of uninitialised registers.
    let headers = if cfg!(filters) & FILTER_TRACK_XDP != 0 {
        let headers = read_headers(skb);
        if let Some(xdp) = track::xdp_passed(headers.head) {
            track::track(skb, xdp);
            return Some((TRACKED_BY_XDP, xdp, Meta::UNREAD, headers));
        }
        headers
    } else {
        Headers::UNREAD
    };
    let (meta, headers) = passes_filters(skb, headers)?;
    if tracking() {
        track::track(skb, 0);
    }
    Some((TRACKED_BY_FILTER, 0, meta, headers))
}

/// The meta filters, the expression, the pcap and tunnel filters. `None` when the skb does not
/// pass; else what the meta filters read of its device and netns (`Meta::UNREAD` if they did
/// not), and its headers (read here unless `headers` were).
#[inline(always)]
fn passes_filters(skb: u64, headers: Headers) -> Option<(Meta, Headers)> {
    // Read only what the configured filters need before deciding: most skbs are not the ones
    // wanted. The filter bits are load-time constants, so the verifier drops unused branches.
    let filters = cfg!(filters);
    if filters & FILTER_MARK != 0 {
        let mark: u32 = read(skb + off!(skb_mark));
        if mark & cfg!(mark_mask) != cfg!(mark) {
            return None;
        }
    }
    let meta = if filters & (FILTER_NETNS | FILTER_IFINDEX) != 0 {
        meta_filters(read_meta(skb))?
    } else {
        Meta::UNREAD
    };
    // A load-time constant: without an expression the call is pruned.
    if filters & FILTER_SKB_EXPR != 0 && pwru_filter_skb_expr(skb) == 0 {
        return None;
    }
    let headers = if headers.is_unread() {
        read_headers(skb)
    } else {
        headers
    };
    // A load-time constant: without an expression the verifier prunes the call, so no cost.
    if filters & FILTER_PCAP != 0 && !pcap_matches(skb, &headers) {
        return None;
    }
    if filters & (FILTER_TUNNEL_L2 | FILTER_TUNNEL_L3) != 0 && !tunnel_matches(skb, &headers) {
        return None;
    }
    Some((meta, headers))
}

/// `--filter-netns` and `--filter-ifname` on what was read of the device: `None` when they
/// reject it.
#[inline(always)]
fn meta_filters(meta: Meta) -> Option<Meta> {
    let filters = cfg!(filters);
    if filters & FILTER_NETNS != 0 && meta.netns != cfg!(netns) {
        return None;
    }
    if filters & FILTER_IFINDEX != 0 && meta.ifindex != cfg!(ifindex) {
        return None;
    }
    Some(meta)
}

/// `skb->cb` as a section (header and payload: 32 bytes).
#[repr(C)]
struct CbSection {
    header: SectionHeader,
    cb: Cb,
}

/// [`Netfilter`] as a section (header and payload: 80 bytes).
/// `--output-bpfmap`: the section of the map operation being traced, built by
/// [`note_bpf_map`] just before its event.
#[map]
static BPF_MAP_SCRATCH: PerCpuArray<BpfMapSection> = PerCpuArray::with_max_entries(1, 0);
assert_contract_name!(BPF_MAP_SCRATCH, contract::BPF_MAP_SCRATCH_MAP);

#[repr(C)]
pub struct BpfMapSection {
    header: SectionHeader,
    map: BpfMap,
}

/// Notes a map operation on `map` (a `struct bpf_map *`) with `key`, and `value` (0: none), for
/// the event that follows on this CPU. False when there is nowhere to build it.
#[inline(always)]
pub fn note_bpf_map(map: u64, key: u64, value: u64, op: u8, ret: i32) -> bool {
    let Some(s) = BPF_MAP_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let key_size: u32 = read(map + off!(bpf_map_key_size));
    let value_size: u32 = read(map + off!(bpf_map_value_size));
    unsafe {
        (&raw mut (*s).header).write(SectionHeader {
            kind: SECTION_BPF_MAP,
            _reserved: 0,
            len: size_of::<BpfMap>() as u32,
        });
        let m = &raw mut (*s).map;
        (&raw mut (*m).id).write(read(map + off!(bpf_map_id)));
        (&raw mut (*m).key_size).write(key_size);
        (&raw mut (*m).value_size).write(value_size);
        (&raw mut (*m).op).write(op);
        (&raw mut (*m).has_value).write((value != 0) as u8);
        (&raw mut (*m)._pad).write(0);
        (&raw mut (*m).ret).write(ret);
        (&raw mut (*m)._pad2).write(0);
        probe_read_into(map + off!(bpf_map_name), &raw mut (*m).name);
        read_up_to(key, key_size, (&raw mut (*m).key).cast());
        if value != 0 {
            read_up_to(value, value_size, (&raw mut (*m).value).cast());
        }
    }
    true
}

#[map]
static OWN_MAPS: Array<u32> = Array::with_max_entries(contract::MAX_OWN_MAPS, 0);
assert_contract_name!(OWN_MAPS, contract::OWN_MAPS_MAP);

/// Whether `map` (a `struct bpf_map *`) is one of pwru-rs's own. Array lookups are inlined: no
/// call that a traced map operation could be.
#[inline(always)]
pub fn is_own_map(map: u64) -> bool {
    let id: u32 = read(map + off!(bpf_map_id));
    for i in 0..contract::MAX_OWN_MAPS {
        match OWN_MAPS.get(i) {
            Some(&own) if own == id => return true,
            Some(&0) | None => return false,
            Some(_) => {}
        }
    }
    false
}

/// Where the value of hash map `map`'s element `elem` is: after the key, 8-byte aligned.
#[inline(always)]
pub fn htab_elem_value(map: u64, elem: u64) -> u64 {
    let key_size: u32 = read(map + off!(bpf_map_key_size));
    elem + off!(htab_elem_key) + (key_size as u64).next_multiple_of(8)
}

/// Reads `len` bytes at `src`, at most `BPF_MAP_BYTES`, into `dst`: no more than the object
/// has (one byte past a map value may be another page, unmapped, and fail the whole read).
#[inline(always)]
fn read_up_to(src: u64, len: u32, dst: *mut u8) {
    let n = if len > BPF_MAP_BYTES as u32 {
        BPF_MAP_BYTES as u32
    } else {
        len
    };
    unsafe {
        generated::bpf_probe_read_kernel(dst.cast(), n, src as *const core::ffi::c_void);
    }
}

/// The map operation's section for this event, when it is one (`--output-bpfmap`), and its
/// length.
#[inline(always)]
fn bpf_map_section(bpf_map: bool) -> (*mut BpfMapSection, u32) {
    if cfg!(outputs) & OUTPUT_BPF_MAP == 0 || !bpf_map {
        return (core::ptr::null_mut(), 0);
    }
    match BPF_MAP_SCRATCH.get_ptr_mut(0) {
        Some(p) => (p, size_of::<BpfMapSection>() as u32),
        None => (core::ptr::null_mut(), 0),
    }
}

#[repr(C)]
pub struct NetfilterSection {
    header: SectionHeader,
    nf: Netfilter,
}

/// A tuple as a section (header and payload: 48 bytes), for the tunnel's inner tuple.
#[repr(C)]
pub struct TupleSection {
    header: SectionHeader,
    tuple: Tuple,
}

/// A dump written into a per-CPU buffer: where, how much of it, and how much there was.
struct Dump {
    text: *const u8,
    len: u32,
    full_len: u32,
}

impl Dump {
    const NONE: Dump = Dump {
        text: core::ptr::null(),
        len: 0,
        full_len: 0,
    };

    /// Bytes of its section: header, dump header, text padded to 8; 0 for none.
    #[inline(always)]
    fn section_len(&self) -> u32 {
        if self.text.is_null() {
            return 0;
        }
        8 + ((8 + self.len + 7) & !7)
    }
}

/// The record with its optional sections (`--output-skb-cb`, `--output-skb`,
/// `--output-skb-shared-info`). Their length is only known here, so the record is reserved at
/// that length as a dynptr and written piece by piece.
#[inline(always)]
fn send_with_sections(
    level: u32,
    r: *mut SkbRecord,
    base_len: usize,
    skb: u64,
    headers: &Headers,
    netfilter: NfChain,
    bpf_map: bool,
) {
    let outputs = cfg!(outputs);
    let mut cb = MaybeUninit::<CbSection>::uninit();
    let cb_len = if outputs & OUTPUT_SKB_CB != 0 {
        let c = cb.as_mut_ptr();
        unsafe {
            (&raw mut (*c).header).write(SectionHeader {
                kind: SECTION_CB,
                _reserved: 0,
                len: size_of::<Cb>() as u32,
            });
            (&raw mut (*c).cb._pad).write(0);
            probe_read_into(
                skb + off!(skb_cb),
                (&raw mut (*c).cb.words).cast::<[u8; 20]>(),
            );
        }
        size_of::<CbSection>() as u32
    } else {
        0
    };
    // Every value below is defined on every path (no `Option`s of structs): LLVM may spill an
    // undefined one, which the verifier refuses as a read of an uninitialised register.
    let packet = if outputs & OUTPUT_PACKET != 0 {
        packet_bytes(level, skb, headers).unwrap_or(Captured::NONE)
    } else {
        Captured::NONE
    };
    let skb_dump = if outputs & OUTPUT_SKB != 0 {
        dump(level, 0, skb, cfg!(skb_btf_id)).unwrap_or(Dump::NONE)
    } else {
        Dump::NONE
    };
    let shinfo_dump = if outputs & OUTPUT_SHINFO != 0 {
        // skb_shinfo(skb) = skb->head + skb->end (an offset on 64-bit kernels).
        let head: u64 = read(skb + off!(skb_head));
        let end: u32 = read(skb + off!(skb_end));
        dump(level, 1, head + end as u64, cfg!(shinfo_btf_id)).unwrap_or(Dump::NONE)
    } else {
        Dump::NONE
    };
    // In a per-CPU buffer, not on the stack, which the programs and the filters share.
    let tunnel = if outputs & OUTPUT_TUNNEL != 0 {
        tunnel_tuple(level, skb, headers)
    } else {
        core::ptr::null_mut()
    };
    let tunnel_len = if tunnel.is_null() {
        0
    } else {
        size_of::<TupleSection>() as u32
    };
    let nf = if outputs & OUTPUT_NETFILTER != 0 && netfilter.chain != 0 {
        netfilter_section(level, netfilter)
    } else {
        core::ptr::null_mut()
    };
    let nf_len = if nf.is_null() {
        0
    } else {
        size_of::<NetfilterSection>() as u32
    };
    let metadata = if outputs & OUTPUT_SKB_METADATA != 0 {
        skb_metadata(level, skb)
    } else {
        core::ptr::null_mut()
    };
    let metadata_len = if metadata.is_null() {
        0
    } else {
        8 + 8 * metadata_words()
    };
    let (map, map_len) = bpf_map_section(bpf_map);
    let dumps_len =
        packet.section_len() + skb_dump.section_len() + shinfo_dump.section_len() + metadata_len;
    let total = base_len as u32 + cb_len + tunnel_len + nf_len + map_len + dumps_len;
    let mut record = MaybeUninit::<aya_ebpf::bindings::bpf_dynptr>::uninit();
    let d = record.as_mut_ptr();
    if reserve_record(unsafe { &raw mut (*r).header }, total, d) {
        let mut at = 0u32;
        write_at(d, &mut at, r.cast(), base_len as u32);
        if cb_len != 0 {
            write_at(d, &mut at, cb.as_mut_ptr().cast(), cb_len);
        }
        if !tunnel.is_null() {
            write_at(d, &mut at, tunnel.cast(), tunnel_len);
        }
        if !nf.is_null() {
            write_at(d, &mut at, nf.cast(), nf_len);
        }
        if !map.is_null() {
            write_at(d, &mut at, map.cast(), map_len);
        }
        if !metadata.is_null() {
            write_metadata_section(d, &mut at, metadata, metadata_len);
        }
        write_packet_section(d, &mut at, &packet);
        for (kind, dump) in [
            (SECTION_SKB_DUMP, &skb_dump),
            (SECTION_SHINFO_DUMP, &shinfo_dump),
        ] {
            if !dump.text.is_null() {
                let mut head = [
                    SectionHeader {
                        kind,
                        _reserved: 0,
                        len: 8 + dump.len,
                    },
                    // Same size as SectionHeader: written as one 16-byte piece.
                    unsafe {
                        core::mem::transmute::<DumpHeader, SectionHeader>(DumpHeader {
                            len: dump.len,
                            full_len: dump.full_len,
                        })
                    },
                ];
                write_at(d, &mut at, head.as_mut_ptr().cast(), 16);
                write_at(d, &mut at, dump.text.cast_mut(), dump.len);
                // The padding after the text keeps the next section aligned; its bytes are
                // whatever the ring buffer held (the reader skips them).
                at = (at + 7) & !7;
            }
        }
        unsafe { generated::bpf_ringbuf_submit_dynptr(d, wakeup_flag()) };
    }
}

/// Writes the record's header for `total` bytes and reserves them as the dynptr `d`; false
/// (counted as lost) when the ring buffer is full.
#[inline(always)]
fn reserve_record(
    header: *mut RecordHeader,
    total: u32,
    d: *mut aya_ebpf::bindings::bpf_dynptr,
) -> bool {
    unsafe {
        header.write(RecordHeader {
            kind: KIND_SKB,
            version: VERSION,
            len: total,
        });
    }
    let events = (&raw const EVENTS).cast_mut().cast();
    if unsafe { generated::bpf_ringbuf_reserve_dynptr(events, total, 0, d) } != 0 {
        // A failed reservation must still be released.
        unsafe { generated::bpf_ringbuf_discard_dynptr(d, 0) };
        count(&LOST);
        return false;
    }
    true
}

/// The packet's bytes as a section (none when there are none), padded to 8 bytes.
#[inline(always)]
fn write_packet_section(d: *mut aya_ebpf::bindings::bpf_dynptr, at: &mut u32, p: &Captured) {
    if p.bytes.is_null() {
        return;
    }
    let mut head = [
        SectionHeader {
            kind: SECTION_PACKET,
            _reserved: 0,
            len: size_of::<PacketHeader>() as u32 + p.header.len,
        },
        // PacketHeader is two SectionHeaders long: written as one 24-byte piece.
        unsafe {
            core::mem::transmute::<[u32; 2], SectionHeader>([p.header.len, p.header.orig_len])
        },
        unsafe { core::mem::transmute::<[u32; 2], SectionHeader>([p.header.link, 0]) },
    ];
    write_at(d, at, head.as_mut_ptr().cast(), 24);
    write_at(d, at, p.bytes.cast_mut(), p.header.len);
    *at = (*at + 7) & !7;
}

/// The metadata words at `words` as a section of `len` bytes (header included).
#[inline(always)]
fn write_metadata_section(
    d: *mut aya_ebpf::bindings::bpf_dynptr,
    at: &mut u32,
    words: *mut [u64; MAX_SKB_METADATA_WORDS as usize],
    len: u32,
) {
    let mut head = SectionHeader {
        kind: SECTION_SKB_METADATA,
        _reserved: 0,
        len: len - 8,
    };
    write_at(d, at, (&raw mut head).cast(), 8);
    write_at(d, at, words.cast(), len - 8);
}

#[inline(always)]
fn write_at(d: *mut aya_ebpf::bindings::bpf_dynptr, at: &mut u32, src: *mut u8, len: u32) {
    unsafe { generated::bpf_dynptr_write(d, *at, src.cast(), len, 0) };
    *at += len;
}

/// The tunnel packet's inner tuple as a section in buffer `level`; null when the skb is no
/// tunnel packet or its inner packet has no IP tuple.
#[inline(always)]
fn tunnel_tuple(level: u32, skb: u64, headers: &Headers) -> *mut TupleSection {
    let Some(inner) = inner_packet(skb, headers) else {
        return core::ptr::null_mut();
    };
    let Some(buf) = TUNNEL_TUPLES.get_ptr_mut(level) else {
        return core::ptr::null_mut();
    };
    if !tuple_section_of(SECTION_TUNNEL_TUPLE, inner.l3, inner.protocol, unsafe {
        &raw mut (*buf).header
    }) {
        return core::ptr::null_mut();
    }
    buf
}

/// The base chain's table, name, family, priority and hook as a section in buffer `level`;
/// null when the buffer is missing. Names the kernel cannot read come out empty.
#[inline(always)]
fn netfilter_section(level: u32, hit: NfChain) -> *mut NetfilterSection {
    let Some(buf) = NETFILTER.get_ptr_mut(level) else {
        return core::ptr::null_mut();
    };
    let table: u64 = read(hit.chain + off!(nft_chain_table));
    let (table_name, family_word) = if table != 0 {
        (
            read::<u64>(table + off!(nft_table_name)),
            read::<u32>(table + off!(nft_table_family)),
        )
    } else {
        (0, 0)
    };
    let chain_name: u64 = read(hit.chain + off!(nft_chain_name));
    // A negative offset: the priority is in the base chain, before the chain.
    let priority_at = hit
        .chain
        .wrapping_add(cfg_signed(&raw const OFFSETS.nft_chain_priority));
    let (pf, hook) = if hit.state != 0 {
        (
            read::<u8>(hit.state + off!(hook_state_pf)),
            read::<u8>(hit.state + off!(hook_state_hook)),
        )
    } else {
        (0, 0)
    };
    unsafe {
        (&raw mut (*buf).header).write(SectionHeader {
            kind: SECTION_NETFILTER,
            _reserved: 0,
            len: size_of::<Netfilter>() as u32,
        });
        let nf = &raw mut (*buf).nf;
        // On failure (a null name) the helper zeroes the buffer: an empty name, never a stale one.
        generated::bpf_probe_read_kernel_str(
            (&raw mut (*nf).table).cast(),
            NF_NAME_LEN as u32,
            table_name as *const core::ffi::c_void,
        );
        generated::bpf_probe_read_kernel_str(
            (&raw mut (*nf).chain).cast(),
            NF_NAME_LEN as u32,
            chain_name as *const core::ffi::c_void,
        );
        (&raw mut (*nf).priority).write(read::<i32>(priority_at));
        let family = (family_word >> (off!(nft_table_family_shift) & 31)) as u32
            & load_time_u32(&raw const OFFSETS.nft_table_family_mask);
        (&raw mut (*nf).family).write(family as u8);
        (&raw mut (*nf).pf).write(pf);
        (&raw mut (*nf).hook).write(hook);
        (&raw mut (*nf)._pad).write(0);
    }
    buf
}

/// Keeps the record built at a base chain's entry for the chain's exit.
#[inline(always)]
fn keep_for_exit(level: u32, skb: u64, r: *const SkbRecord, len: usize, nf: NfChain) {
    let Some(p) = NF_SCRATCH.get_ptr_mut(level) else {
        return;
    };
    unsafe {
        (&raw mut (*p).record).write(*r);
        (&raw mut (*p).len).write(len as u32);
        (&raw mut (*p)._pad).write(0);
        (&raw mut (*p).chain).write(nf.chain);
        (&raw mut (*p).state).write(nf.state);
        // A full map forgets its oldest packet (LRU).
        let _ = NF_ACTIVE.insert(&skb, &*p, 0);
    }
}

/// A base chain's exit with its verdict, for a packet traced at its entry: the entry's record
/// sent again with the verdict and the time, never read from the skb, which the chain may have
/// freed (a drop) or handed on (stolen).
#[inline(always)]
pub fn nft_exit(skb: u64, verdict: u32) {
    let Some(p) = NF_ACTIVE.get_ptr_mut(&skb) else {
        return;
    };
    let Some(level) = enter_dump_level() else {
        count(&LOST);
        let _ = NF_ACTIVE.remove(&skb);
        return;
    };
    let nf = netfilter_section(
        level,
        NfChain {
            chain: unsafe { (*p).chain },
            state: unsafe { (*p).state },
            entry: false,
        },
    );
    if !nf.is_null() {
        let full = unsafe { (*p).len } as usize == size_of::<SkbRecord>();
        let len = if full {
            size_of::<SkbRecord>() as u32
        } else {
            SKB_RECORD_NO_TUPLE as u32
        };
        unsafe {
            let m = &raw mut (*p).record.meta;
            (&raw mut (*m).ts_ns).write(timestamp());
            (&raw mut (*m).verdict).write(verdict);
            (&raw mut (*m).flags).write((*m).flags | META_HAS_VERDICT);
        }
        let total = len + size_of::<NetfilterSection>() as u32;
        let mut record = MaybeUninit::<aya_ebpf::bindings::bpf_dynptr>::uninit();
        let d = record.as_mut_ptr();
        if reserve_record(unsafe { &raw mut (*p).record.header }, total, d) {
            let mut at = 0u32;
            write_at(d, &mut at, p.cast(), len);
            write_at(d, &mut at, nf.cast(), size_of::<NetfilterSection>() as u32);
            unsafe { generated::bpf_ringbuf_submit_dynptr(d, wakeup_flag()) };
        }
    }
    leave_dump_level();
    let _ = NF_ACTIVE.remove(&skb);
}

/// A load-time offset that may be negative, sign-extended.
#[inline(always)]
fn cfg_signed(p: *const u32) -> u64 {
    load_time_u32(p) as i32 as i64 as u64
}

/// A count of metadata words from the configuration, bounded for the verifier.
#[inline(always)]
fn bounded_words(words: u32) -> u32 {
    if words > MAX_SKB_METADATA_WORDS {
        MAX_SKB_METADATA_WORDS
    } else {
        words
    }
}

/// Words of `--output-skb-metadata` per event.
#[inline(always)]
fn metadata_words() -> u32 {
    bounded_words(cfg!(skb_metadata_words))
}

/// `buf[w] = word(w)` for the first `words` words.
#[inline(always)]
fn gather_words(
    buf: *mut [u64; MAX_SKB_METADATA_WORDS as usize],
    words: u32,
    word: impl Fn(u64) -> u64,
) {
    let mut w = 0;
    while w < MAX_SKB_METADATA_WORDS {
        if w < words {
            unsafe { (*buf)[w as usize] = word(w as u64) };
        }
        w += 1;
    }
}

/// The `--output-skb-metadata` words of the skb, gathered from the injected stub into buffer
/// `level`; null when the buffer is missing.
#[inline(always)]
fn skb_metadata(level: u32, skb: u64) -> *mut [u64; MAX_SKB_METADATA_WORDS as usize] {
    let Some(buf) = SKB_METADATA.get_ptr_mut(level) else {
        return core::ptr::null_mut();
    };
    gather_words(buf, metadata_words(), |w| pwru_skb_metadata(skb, w));
    buf
}

/// Packet bytes copied into a per-CPU buffer (`--output-pcap`).
struct Captured {
    bytes: *const u8,
    header: PacketHeader,
}

impl Captured {
    const NONE: Captured = Captured {
        bytes: core::ptr::null(),
        header: PacketHeader {
            len: 0,
            orig_len: 0,
            link: 0,
            _pad: 0,
        },
    };

    /// Bytes of its section: header, packet header, bytes padded to 8; 0 for none.
    #[inline(always)]
    fn section_len(&self) -> u32 {
        if self.bytes.is_null() {
            return 0;
        }
        8 + ((size_of::<PacketHeader>() as u32 + self.header.len + 7) & !7)
    }
}

/// The skb's first `snaplen` bytes from its MAC header (an Ethernet frame) when it has one, else
/// from its network header, into packet buffer `level`. Only the linear data can be read; the
/// original length counts the paged part too.
#[inline(always)]
fn packet_bytes(level: u32, skb: u64, h: &Headers) -> Option<Captured> {
    if h.head == 0 {
        return None;
    }
    let (start, link) = if h.mac != HEADER_UNSET && read::<u16>(skb + off!(skb_mac_len)) != 0 {
        (h.head + h.mac as u64, LINK_ETHERNET)
    } else if h.network != 0 && h.network != HEADER_UNSET {
        (h.head + h.network as u64, LINK_RAW)
    } else {
        return None;
    };
    let end = h.head + h.tail as u64;
    if end <= start {
        return None;
    }
    let data: u64 = read(skb + off!(skb_data));
    let len: u32 = read(skb + off!(skb_len));
    // skb->len counts from skb->data, which may be past the start (an Ethernet header pulled).
    let orig_len = (len as u64 + data.saturating_sub(start)) as u32;
    copy_packet(level, start, end, orig_len, link)
}

/// Copies the packet's bytes from `start` (up to `end`, the linear data's, and the snap
/// length) into buffer `level`.
#[inline(always)]
fn copy_packet(level: u32, start: u64, end: u64, orig_len: u32, link: u32) -> Option<Captured> {
    let buf = PACKETS.get_ptr_mut(level)?;
    let snaplen = cfg!(snaplen);
    let mut caplen = orig_len;
    if end - start < caplen as u64 {
        caplen = (end - start) as u32;
    }
    // Against the constant last: older verifiers (6.1) learn nothing from comparing two
    // unknown values, and the copy's length must be bounded by the buffer.
    if caplen > snaplen {
        caplen = snaplen;
    }
    if unsafe {
        generated::bpf_probe_read_kernel(buf.cast(), caplen, start as *const core::ffi::c_void)
    } != 0
    {
        return None;
    }
    Some(Captured {
        bytes: buf.cast(),
        header: PacketHeader {
            len: caplen,
            orig_len,
            link,
            _pad: 0,
        },
    })
}

/// Claims this CPU's next nesting level and its buffer in `buffers`; `None` (the event counted
/// as lost, the level released) when there is none. The caller leaves the level when done.
#[inline(always)]
fn claim_buffer<T>(buffers: &PerCpuArray<T>) -> Option<(u32, *mut T)> {
    let Some(level) = enter_dump_level() else {
        count(&LOST);
        return None;
    };
    match buffers.get_ptr_mut(level) {
        Some(buf) => Some((level, buf)),
        None => {
            leave_dump_level();
            None
        }
    }
}

/// Claims this CPU's next nesting level (its record, dump, packet, metadata and tunnel
/// buffers); `None` when every level is in use (the event is then counted as lost).
#[inline(always)]
fn enter_dump_level() -> Option<u32> {
    let nest = DUMP_NEST.get_ptr_mut(0)?;
    let level = unsafe { *nest };
    if level >= DUMP_LEVELS {
        return None;
    }
    unsafe { *nest = level + 1 };
    Some(level)
}

#[inline(always)]
fn leave_dump_level() {
    if let Some(nest) = DUMP_NEST.get_ptr_mut(0) {
        unsafe { *nest = (*nest).saturating_sub(1) };
    }
}

/// `bpf_snprintf_btf` of the object at `ptr` (BTF type `type_id`) into dump buffer `which` of
/// `level`. `None` when the kernel could not print it.
#[inline(always)]
fn dump(level: u32, which: u32, ptr: u64, type_id: u32) -> Option<Dump> {
    let buf = DUMPS.get_ptr_mut(level * DUMPS_PER_LEVEL + which)?;
    let size = cfg!(dump_buf);
    let mut target = aya_ebpf::bindings::btf_ptr {
        ptr: ptr as *mut core::ffi::c_void,
        type_id,
        flags: 0,
    };
    let written = unsafe {
        generated::bpf_snprintf_btf(
            buf.cast(),
            size,
            &mut target,
            size_of::<aya_ebpf::bindings::btf_ptr>() as u32,
            0,
        )
    };
    if written < 0 {
        return None;
    }
    // Like snprintf: the whole length is returned; the text kept is one byte short of the
    // buffer (its NUL).
    let full_len = written as u32;
    let max = size - 1;
    let len = if full_len > max { max } else { full_len };
    Some(Dump {
        text: buf.cast(),
        len,
        full_len,
    })
}

/// Zeroes `dst` in place with 8-byte volatile stores: plain zeroing becomes a call to a
/// byte-at-a-time `memset` subprogram. `N` is a multiple of 8.
#[inline(always)]
fn write_zeros<const N: usize>(dst: *mut [u8; N]) {
    const { assert!(N % 8 == 0) };
    let words = dst.cast::<u64>();
    let mut i = 0;
    while i < N / 8 {
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Up to how many bytes [`probe_read_into`] copies by direct loads (an IPv6 header's 40).
const DIRECT_COPY_MAX: usize = 40;

/// Fills the whole `[u8; N]` at `dst` with the bytes at `src`, zeros where they cannot be read:
/// by direct loads, 8 bytes a turn, where the kernel allows them ([`read`]; a load-time
/// constant), else with one `bpf_probe_read_kernel` (which zero-fills on failure).
#[inline(always)]
fn probe_read_into<const N: usize>(src: u64, dst: *mut [u8; N]) {
    if N <= DIRECT_COPY_MAX && cfg!(cast_btf_id) != 0 {
        let dst = dst.cast::<u8>();
        let mut i = 0;
        // SAFETY: every store is within the N bytes of `dst`.
        unsafe {
            while i + 8 <= N {
                dst.add(i)
                    .cast::<u64>()
                    .write_unaligned(read(src + i as u64));
                i += 8;
            }
            if i + 4 <= N {
                dst.add(i)
                    .cast::<u32>()
                    .write_unaligned(read(src + i as u64));
                i += 4;
            }
            if i + 2 <= N {
                dst.add(i)
                    .cast::<u16>()
                    .write_unaligned(read(src + i as u64));
                i += 2;
            }
            if i < N {
                dst.add(i).write(read(src + i as u64));
            }
        }
        return;
    }
    unsafe {
        generated::bpf_probe_read_kernel(dst.cast(), N as u32, src as *const core::ffi::c_void);
    }
}

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// The event's time, when the output uses it (a load-time constant): else 0, no clock read.
#[inline(always)]
fn timestamp() -> u64 {
    if cfg!(outputs) & OUTPUT_TIMESTAMP != 0 {
        unsafe { bpf_ktime_get_ns() }
    } else {
        0
    }
}

/// Wakes the reader once `wakeup_bytes` are waiting; below that it drains on its timer.
#[inline(always)]
fn wakeup_flag() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= cfg!(wakeup_bytes) as u64 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Runs the injected pcap filter: on the frame from its MAC header when the skb has one
/// (`mac_len != 0`), else on the packet from its network header. The end is `head + tail`.
#[inline(always)]
fn pcap_matches(skb: u64, h: &Headers) -> bool {
    if h.head == 0 {
        return false;
    }
    let end = h.head + h.tail as u64;
    // `mac_len` only when there is a MAC header: the early transmit path (a good part of the
    // hits) has none, and one helper call less.
    if h.mac != HEADER_UNSET && read::<u16>(skb + off!(skb_mac_len)) != 0 {
        return pwru_filter_l2(h.head + h.mac as u64, end) != 0;
    }
    if h.network == 0 || h.network == HEADER_UNSET {
        return false;
    }
    pwru_filter_l3(h.head + h.network as u64, end) != 0
}

/// The inner packet of the skb, when it is a tunnel packet.
#[inline(always)]
fn inner_packet(skb: u64, h: &Headers) -> Option<tunnel::Inner> {
    if h.head == 0 {
        return None;
    }
    let mac = (h.mac != HEADER_UNSET && read::<u16>(skb + off!(skb_mac_len)) != 0)
        .then_some(h.mac as u64);
    let network = (h.network != 0 && h.network != HEADER_UNSET).then_some(h.network as u64);
    let l3 = tunnel::outer_l3(h.head, mac, network);
    let mut inner = MaybeUninit::<tunnel::Inner>::uninit();
    if !tunnel::find_inner(l3, h.head + h.tail as u64, inner.as_mut_ptr()) {
        return None;
    }
    Some(unsafe { inner.assume_init() })
}

/// `--filter-tunnel-pcap-l2/-l3` on a tunnel packet's inner frame / IP packet; true for any
/// other packet (as in pwru). The bits are load-time constants.
#[inline(always)]
fn tunnel_matches(skb: u64, h: &Headers) -> bool {
    let Some(inner) = inner_packet(skb, h) else {
        return true;
    };
    let end = h.head + h.tail as u64;
    let filters = cfg!(filters);
    if filters & FILTER_TUNNEL_L2 != 0
        && (inner.l2 == 0 || pwru_tunnel_filter_l2(inner.l2, end) == 0)
    {
        return false;
    }
    if filters & FILTER_TUNNEL_L3 != 0
        && (inner.l3 == 0 || pwru_tunnel_filter_l3(inner.l3, end) == 0)
    {
        return false;
    }
    true
}

/// Where the packet is: `skb->head` and the offsets from it.
struct Headers {
    head: u64,
    tail: u32,
    mac: u16,
    network: u16,
}

impl Headers {
    /// Not read yet (every field defined: see `why_traced`). `tail` is never `u32::MAX` in an
    /// skb that was read (it is an offset into a buffer of at most a few hundred KiB).
    const UNREAD: Headers = Headers {
        head: 0,
        tail: u32::MAX,
        mac: HEADER_UNSET,
        network: HEADER_UNSET,
    };

    #[inline(always)]
    fn is_unread(&self) -> bool {
        self.tail == u32::MAX
    }
}

/// Bytes of `struct sk_buff` read at once for [`Headers`].
const HEADERS_WINDOW: usize = 32;

/// Reads [`Headers`]: the fields sit side by side near the end of `struct sk_buff` (24 bytes on
/// x86-64), so one read replaces four helper calls on the hot path (the pcap filter runs on every
/// hit), without copying more than needed (the copy runs 8 bytes a turn). The offsets are
/// load-time constants the verifier sees: it keeps one of the two paths.
#[inline(always)]
fn read_headers(skb: u64) -> Headers {
    let (head, tail, mac, network) = (
        off!(skb_head),
        off!(skb_tail),
        off!(skb_mac_header),
        off!(skb_network_header),
    );
    // A function, not a closure: a closure called twice is not inlined.
    #[inline(always)]
    fn each(skb: u64, [head, tail, mac, network]: [u64; 4]) -> Headers {
        Headers {
            head: read(skb + head),
            tail: read(skb + tail),
            mac: read(skb + mac),
            network: read(skb + network),
        }
    }
    // Direct loads (a load-time constant) cost less than one helper call. Asked before the
    // window's arithmetic, which then is in the branch the verifier drops.
    if cfg!(cast_btf_id) != 0 {
        return each(skb, [head, tail, mac, network]);
    }
    // 8-aligned, so every field keeps its natural alignment in the buffer (the verifier wants
    // aligned stack reads).
    let base = head.min(tail).min(mac).min(network) & !7;
    let len = (head + 8).max(tail + 4).max(mac + 2).max(network + 2) - base;
    if len > HEADERS_WINDOW as u64 {
        return each(skb, [head, tail, mac, network]);
    }
    // Filled by the helper (no zeroing first: that would be a `memset` call).
    let mut window = MaybeUninit::<[u64; HEADERS_WINDOW / 8]>::uninit();
    // `len` is a constant to the verifier too; reading only that much saves a turn or two.
    let filled = unsafe {
        generated::bpf_probe_read_kernel(
            window.as_mut_ptr().cast(),
            len as u32,
            (skb + base) as *const core::ffi::c_void,
        )
    };
    if filled != 0 {
        return Headers {
            head: 0,
            tail: 0,
            mac: HEADER_UNSET,
            network: HEADER_UNSET,
        };
    }
    let at = |offset: u64| unsafe { window.as_ptr().cast::<u8>().add((offset - base) as usize) };
    unsafe {
        Headers {
            head: *at(head).cast::<u64>(),
            tail: *at(tail).cast::<u32>(),
            mac: *at(mac).cast::<u16>(),
            network: *at(network).cast::<u16>(),
        }
    }
}

/// The tuple section whose header is at `header` (its payload follows it): written, with its
/// header, when the network header at `l3` holds IPv4 or IPv6; false when there is no tuple.
#[inline(always)]
fn tuple_section(l3: u64, protocol: u16, header: *mut SectionHeader) -> bool {
    tuple_section_of(SECTION_TUPLE, l3, protocol, header)
}

/// [`tuple_section`] as a section of kind `kind` (the tunnel's inner tuple).
#[inline(always)]
fn tuple_section_of(kind: u16, l3: u64, protocol: u16, header: *mut SectionHeader) -> bool {
    let tuple = unsafe { header.add(1).cast::<Tuple>() };
    if !read_tuple(l3, protocol, tuple) {
        return false;
    }
    unsafe {
        header.write(SectionHeader {
            kind,
            _reserved: 0,
            len: size_of::<Tuple>() as u32,
        });
    }
    true
}

/// Writes the IP addresses and ports from the network header at `l3` (0: none) into `t`, when
/// it holds IPv4 or IPv6; false (and `t` left unwritten) when there is no tuple.
#[inline(always)]
fn read_tuple(l3: u64, protocol: u16, t: *mut Tuple) -> bool {
    if l3 == 0 {
        return false;
    }
    let first: u8 = read(l3);
    // skb->protocol is still 0 on the early transmit path: trust the IP version nibble then.
    let (version, l4_proto, l4) = match (first >> 4, protocol) {
        (4, ETH_P_IP | 0) => {
            let hdr: [u8; 20] = read_bytes(l3);
            unsafe {
                let (saddr, daddr) = (&raw mut (*t).saddr, &raw mut (*t).daddr);
                write_zeros(saddr);
                write_zeros(daddr);
                saddr
                    .cast::<[u8; 4]>()
                    .write([hdr[12], hdr[13], hdr[14], hdr[15]]);
                daddr
                    .cast::<[u8; 4]>()
                    .write([hdr[16], hdr[17], hdr[18], hdr[19]]);
            }
            // Only the first fragment carries the ports.
            let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
            let l4 = (frag_off == 0).then_some(l3 + ((first & 0x0f) as u64) * 4);
            (IP_V4, hdr[9], l4)
        }
        (6, ETH_P_IPV6 | 0) => {
            // The IPv6 header's first 40 bytes have the addresses at bytes 8..40, where `Tuple`
            // has them: read it straight into the tuple (no copy on the stack, whose 512 bytes
            // the program and the pcap filter share), then take the next header (byte 6) before
            // the tuple's own first 8 bytes are written below.
            probe_read_into(l3, t.cast::<[u8; 40]>());
            let next_header = unsafe { *t.cast::<u8>().add(6) };
            (IP_V6, next_header, Some(l3 + 40))
        }
        _ => return false,
    };
    let (sport, dport, tcp_flags) = match l4 {
        // Load-time constant: the flags byte (offset 13) only when asked for.
        Some(l4) if l4_proto == IPPROTO_TCP && cfg!(outputs) & OUTPUT_TCP_FLAGS != 0 => {
            let tcp: [u8; 14] = read_bytes(l4);
            (
                u16::from_be_bytes([tcp[0], tcp[1]]),
                u16::from_be_bytes([tcp[2], tcp[3]]),
                tcp[13],
            )
        }
        Some(l4) if matches!(l4_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) => {
            let ports: [u8; 4] = read_bytes(l4);
            (
                u16::from_be_bytes([ports[0], ports[1]]),
                u16::from_be_bytes([ports[2], ports[3]]),
                0,
            )
        }
        _ => (0, 0, 0),
    };
    unsafe {
        (&raw mut (*t).ip_version).write(version);
        (&raw mut (*t).l4_proto).write(l4_proto);
        (&raw mut (*t).sport).write(sport);
        (&raw mut (*t).dport).write(dport);
        (&raw mut (*t).tcp_flags).write(tcp_flags);
        (&raw mut (*t)._pad).write(0);
    }
    true
}

// `tuple_section` finds the tuple right after its header, in both record layouts.
const _: () = assert!(
    core::mem::offset_of!(SkbRecord, tuple) == core::mem::offset_of!(SkbRecord, tuple_header) + 8
        && core::mem::offset_of!(XdpRecord, tuple)
            == core::mem::offset_of!(XdpRecord, tuple_header) + 8
);

// `read_tuple` reads an IPv6 header straight into a `Tuple`: its addresses must sit where the
// header has them.
const _: () =
    assert!(core::mem::offset_of!(Tuple, saddr) == 8 && core::mem::offset_of!(Tuple, daddr) == 24);

/// `N` bytes at `addr`, zeros if they cannot be read.
#[inline(always)]
pub(crate) fn read_bytes<const N: usize>(addr: u64) -> [u8; N] {
    let mut buf = MaybeUninit::<[u8; N]>::uninit();
    probe_read_into(addr, buf.as_mut_ptr());
    // SAFETY: all N bytes were written (zeros where unreadable).
    unsafe { buf.assume_init() }
}

/// A hit of a traced XDP program (`--filter-trace-xdp`) on its packet, an `xdp_buff`.
pub struct XdpHit<H> {
    pub ctx: *mut core::ffi::c_void,
    pub xdp: u64,
    /// `HOOK_BPF_PROG` (the program's address), or `HOOK_FUNC_IP` for a BPF helper it runs.
    pub hook_kind: u8,
    pub hook: H,
    /// Its return value, at its exit.
    pub verdict: Option<u32>,
    /// A helper's hit (`--filter-track-bpf-helpers`): the packet was traced at the program's
    /// entry; no filter again, and the tracking is left as it is.
    pub given: bool,
    /// A map operation's hit (`--output-bpfmap`): [`note_bpf_map`] built its section.
    pub bpf_map: bool,
}

const XDP_PASS: u32 = 2;
const ETH_HLEN: u64 = 14;

/// An XDP packet: the meta filters on its device (it has no mark: `--filter-mark` does not
/// apply, as in pwru), the pcap filter on its frame, and with `--filter-track-skb` tracked from
/// the program's entry to its exit (which may see it rewritten) and on into the skb built on it
/// when the program passes it. True when the packet is traced.
#[inline(always)]
pub fn handle_xdp(hit: XdpHit<impl FnOnce() -> u64>) -> bool {
    let XdpHit {
        ctx,
        xdp,
        hook_kind,
        hook,
        verdict,
        given,
        bpf_map,
    } = hit;
    if xdp == 0 {
        return false;
    }
    let data: u64 = read(xdp + off!(xdp_data));
    let data_end: u64 = read(xdp + off!(xdp_data_end));
    let rxq: u64 = read(xdp + off!(xdp_rxq));
    let dev: u64 = if rxq != 0 {
        read(rxq + off!(rxq_dev))
    } else {
        0
    };
    let passes = || {
        let filters = cfg!(filters);
        if filters & (FILTER_NETNS | FILTER_IFINDEX) != 0 && meta_filters(dev_meta(dev)).is_none() {
            return false;
        }
        if filters & FILTER_XDP_EXPR != 0 && pwru_filter_xdp_expr(xdp) == 0 {
            return false;
        }
        filters & FILTER_PCAP == 0 || pwru_filter_l2(data, data_end) != 0
    };
    let tracked_by = if given {
        TRACKED_NONE
    } else if !tracking() {
        if !passes() {
            return false;
        }
        TRACKED_NONE
    } else if track::lookup(xdp).is_some() {
        TRACKED_BY_SKB
    } else {
        if !passes() {
            return false;
        }
        if verdict.is_none() {
            track::track(xdp, 0);
        }
        TRACKED_BY_FILTER
    };
    if tracking() && verdict.is_some() && !given {
        track::forget(xdp);
        if verdict == Some(XDP_PASS) {
            track::xdp_pass(read(xdp + off!(xdp_data_hard_start)), xdp);
        }
    }
    let meta = dev_meta(dev);
    let len = data_end.saturating_sub(data);
    let (mut ethertype, l3) = tunnel::ethernet_payload(data);
    if len < ETH_HLEN {
        ethertype = 0;
    }
    // In this nesting level's per-CPU buffer, not on the stack (see `handle_skb`).
    let Some((level, r)) = claim_buffer(&XDP_RECORDS) else {
        return true;
    };
    unsafe {
        write_meta(
            &raw mut (*r).meta_header,
            &raw mut (*r).meta,
            Common {
                ctx,
                hook_kind,
                hook,
                caller: || 0,
                reason: None,
                verdict,
                tracked_by,
                parent_skb: 0,
            },
            Packet {
                addr: xdp,
                dev: meta.dev,
                netns: meta.netns,
                ifindex: meta.ifindex,
                mark: 0,
                len: len as u32,
                protocol: ethertype,
            },
        );
        (&raw mut (*r).xdp_header).write(SectionHeader {
            kind: SECTION_XDP,
            _reserved: 0,
            len: size_of::<Xdp>() as u32,
        });
        (&raw mut (*r).xdp).write(Xdp {
            rx_queue: if rxq != 0 {
                read(rxq + off!(rxq_queue_index))
            } else {
                0
            },
            _pad: 0,
        });
    }
    // Only a whole IPv4 header (the shortest) is read for the tuple.
    let in_frame = l3 + 20 <= data_end && matches!(ethertype, ETH_P_IP | ETH_P_IPV6);
    let len = if in_frame && tuple_section(l3, ethertype, unsafe { &raw mut (*r).tuple_header }) {
        size_of::<XdpRecord>()
    } else {
        XDP_RECORD_NO_TUPLE
    };
    // Load-time constants.
    let outputs = cfg!(outputs);
    let (map, map_len) = bpf_map_section(bpf_map);
    if outputs & (OUTPUT_XDP_METADATA | OUTPUT_PACKET) == 0 && map.is_null() {
        unsafe { send_whole(r.cast(), len) };
        leave_dump_level();
        return true;
    }
    let metadata = if outputs & OUTPUT_XDP_METADATA != 0 {
        match SKB_METADATA.get_ptr_mut(level) {
            Some(buf) => {
                gather_words(buf, bounded_words(cfg!(xdp_metadata_words)), |w| {
                    pwru_xdp_metadata(xdp, w)
                });
                buf
            }
            None => core::ptr::null_mut(),
        }
    } else {
        core::ptr::null_mut()
    };
    let metadata_len = if metadata.is_null() {
        0
    } else {
        8 + 8 * bounded_words(cfg!(xdp_metadata_words))
    };
    // The frame from its Ethernet header, as the program sees it.
    let packet = if outputs & OUTPUT_PACKET != 0 && data_end > data {
        copy_packet(
            level,
            data,
            data_end,
            (data_end - data) as u32,
            LINK_ETHERNET,
        )
        .unwrap_or(Captured::NONE)
    } else {
        Captured::NONE
    };
    let mut record = MaybeUninit::<aya_ebpf::bindings::bpf_dynptr>::uninit();
    let d = record.as_mut_ptr();
    if reserve_record(
        unsafe { &raw mut (*r).header },
        len as u32 + map_len + metadata_len + packet.section_len(),
        d,
    ) {
        let mut at = 0u32;
        write_at(d, &mut at, r.cast(), len as u32);
        if !map.is_null() {
            write_at(d, &mut at, map.cast(), map_len);
        }
        if !metadata.is_null() {
            write_metadata_section(d, &mut at, metadata, metadata_len);
        }
        write_packet_section(d, &mut at, &packet);
        unsafe { generated::bpf_ringbuf_submit_dynptr(d, wakeup_flag()) };
    }
    leave_dump_level();
    true
}
