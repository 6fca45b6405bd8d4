//! Reading an `sk_buff`, the meta filters and writing the event: shared by every hook kind.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_buf, generated,
    },
    macros::map,
    maps::{PerCpuArray, RingBuf},
};
use pwru_rs_common::{
    Config, Event, Offsets, EVENT_HAS_DEV, EVENT_HAS_REASON, FILTER_IFINDEX, FILTER_MARK,
    FILTER_NETNS, FILTER_PCAP, IP_V4, IP_V6, TASK_COMM_LEN,
};

use crate::filter::{pwru_filter_l2, pwru_filter_l3};

/// Kernel struct offsets, written by userspace before load (read-only global).
#[unsafe(no_mangle)]
static OFFSETS: Offsets = unsafe { core::mem::zeroed() };

/// Filters, written by userspace before load (read-only global).
#[unsafe(no_mangle)]
static CONFIG: Config = unsafe { core::mem::zeroed() };

/// Userspace resizes it at load time (`--ringbuf-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Events that matched but found the ring buffer full: userspace reports them, nothing is lost
/// silently.
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

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

#[inline(always)]
fn read<T>(addr: u64) -> T
where
    T: Default,
{
    unsafe { bpf_probe_read_kernel(addr as *const T) }.unwrap_or_default()
}

/// The fields the filters need, read once.
struct Meta {
    dev: u64,
    netns: u32,
    mark: u32,
    ifindex: u32,
}

#[inline(always)]
fn read_meta(skb: u64) -> Meta {
    let dev: u64 = read(skb + off!(skb_dev));
    let (ifindex, net) = if dev != 0 {
        (
            read::<u32>(dev + off!(dev_ifindex)),
            read::<u64>(dev + off!(dev_net)),
        )
    } else {
        // Before the skb has a device (early transmit path), its socket tells the netns.
        let sk: u64 = read(skb + off!(skb_sk));
        (
            0,
            if sk != 0 {
                read::<u64>(sk + off!(sk_net))
            } else {
                0
            },
        )
    };
    let netns = if net != 0 {
        read::<u32>(net + off!(net_inum))
    } else {
        0
    };
    Meta {
        dev,
        netns,
        mark: read(skb + off!(skb_mark)),
        ifindex,
    }
}

#[inline(always)]
fn meta_matches(m: &Meta) -> bool {
    let filters: u32 = cfg!(filters);
    if filters & FILTER_NETNS != 0 && m.netns != cfg!(netns) {
        return false;
    }
    if filters & FILTER_MARK != 0 && m.mark & cfg!(mark_mask) != cfg!(mark) {
        return false;
    }
    if filters & FILTER_IFINDEX != 0 && m.ifindex != cfg!(ifindex) {
        return false;
    }
    true
}

#[inline(always)]
fn count_lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        unsafe { *p += 1 };
    }
}

/// Entry point of every hook: filter, then reserve and fill one event.
///
/// `reason` is the drop reason when the hook carries one.
#[inline(always)]
pub fn handle_skb(skb: u64, hook: u64, reason: Option<u32>) {
    if skb == 0 {
        return;
    }
    let meta = read_meta(skb);
    if !meta_matches(&meta) {
        return;
    }
    // A load-time constant: without an expression the verifier prunes the call, so no cost.
    if cfg!(filters) & FILTER_PCAP != 0 && !pcap_matches(skb) {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_lost();
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        ev.write(Event::zeroed());
        let ev = &mut *ev;
        ev.ts_ns = bpf_ktime_get_ns();
        ev.skb = skb;
        ev.hook = hook;
        ev.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        ev.cpu = generated::bpf_get_smp_processor_id();
        ev.netns = meta.netns;
        ev.mark = meta.mark;
        ev.ifindex = meta.ifindex;
        if let Some(r) = reason {
            ev.reason = r;
            ev.flags |= EVENT_HAS_REASON;
        }
        generated::bpf_get_current_comm(ev.comm.as_mut_ptr().cast(), TASK_COMM_LEN as u32);
        if meta.dev != 0 {
            ev.flags |= EVENT_HAS_DEV;
            ev.mtu = read(meta.dev + off!(dev_mtu));
            let _ =
                bpf_probe_read_kernel_buf((meta.dev + off!(dev_name)) as *const u8, &mut ev.ifname);
        }
        ev.len = read(skb + off!(skb_len));
        ev.protocol = u16::from_be(read::<u16>(skb + off!(skb_protocol)));
        read_tuple(skb, ev);
    }
    entry.submit(0);
}

/// Runs the injected pcap filter: on the frame from its MAC header when the skb has one
/// (`mac_len != 0`), else on the packet from its network header. The end is `head + tail`.
#[inline(always)]
fn pcap_matches(skb: u64) -> bool {
    let head: u64 = read(skb + off!(skb_head));
    if head == 0 {
        return false;
    }
    let end = head + read::<u32>(skb + off!(skb_tail)) as u64;
    let mac_len: u16 = read(skb + off!(skb_mac_len));
    let mac: u16 = read(skb + off!(skb_mac_header));
    if mac_len != 0 && mac != HEADER_UNSET {
        return pwru_filter_l2(head + mac as u64, end) != 0;
    }
    let nh: u16 = read(skb + off!(skb_network_header));
    if nh == 0 || nh == HEADER_UNSET {
        return false;
    }
    pwru_filter_l3(head + nh as u64, end) != 0
}

/// Fills the IP addresses and ports from the packet headers, when the network header is set.
#[inline(always)]
fn read_tuple(skb: u64, ev: &mut Event) {
    let head: u64 = read(skb + off!(skb_head));
    let nh: u16 = read(skb + off!(skb_network_header));
    if head == 0 || nh == 0 || nh == HEADER_UNSET {
        return;
    }
    let l3 = head + nh as u64;
    let first: u8 = read(l3);
    // skb->protocol is still 0 on the early transmit path: trust the IP version nibble then.
    let l4 = match (first >> 4, ev.protocol) {
        (4, ETH_P_IP | 0) => {
            let hdr: [u8; 20] = read_bytes(l3);
            ev.ip_version = IP_V4;
            ev.l4_proto = hdr[9];
            ev.saddr[..4].copy_from_slice(&hdr[12..16]);
            ev.daddr[..4].copy_from_slice(&hdr[16..20]);
            // Only the first fragment carries the ports.
            let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
            if frag_off != 0 {
                return;
            }
            l3 + ((first & 0x0f) as u64) * 4
        }
        (6, ETH_P_IPV6 | 0) => {
            let hdr: [u8; 40] = read_bytes(l3);
            ev.ip_version = IP_V6;
            ev.l4_proto = hdr[6];
            ev.saddr.copy_from_slice(&hdr[8..24]);
            ev.daddr.copy_from_slice(&hdr[24..40]);
            l3 + 40
        }
        _ => return,
    };
    if matches!(ev.l4_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP) {
        let ports: [u8; 4] = read_bytes(l4);
        ev.sport = u16::from_be_bytes([ports[0], ports[1]]);
        ev.dport = u16::from_be_bytes([ports[2], ports[3]]);
    }
}

#[inline(always)]
fn read_bytes<const N: usize>(addr: u64) -> [u8; N] {
    let mut buf = [0u8; N];
    let _ = unsafe { bpf_probe_read_kernel_buf(addr as *const u8, &mut buf) };
    buf
}
