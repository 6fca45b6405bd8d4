//! Tunnel packets: where the inner packet of a VXLAN, Geneve, GRE or IPIP packet is, found by
//! parsing the outer headers (the kernel sets `inner_*` offsets only on the encapsulating side,
//! and not yet when a tunnel packet arrives), for `--filter-tunnel-pcap-l2/-l3` and
//! `--output-tunnel`.

use pwru_rs_common::{GENEVE_PORT, VXLAN_PORT};

use crate::skb::read_bytes;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Transparent Ethernet bridging: an Ethernet frame inside GRE or Geneve.
const ETH_P_TEB: u16 = 0x6558;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_UDP: u8 = 17;
const ETH_HLEN: u64 = 14;

/// A tunnel packet's inner packet, in kernel memory.
#[derive(Clone, Copy)]
pub struct Inner {
    /// Its Ethernet frame (VXLAN, Geneve/GRE with TEB); 0 when it has none (IPIP).
    pub l2: u64,
    /// Its IP packet; 0 when it is not IPv4/IPv6.
    pub l3: u64,
    /// The inner IP packet's ethertype (`ETH_P_IP`, `ETH_P_IPV6`).
    pub protocol: u16,
}

/// The ethertype of the Ethernet frame at `frame` and where its payload starts, under one VLAN
/// tag (802.1Q or 802.1ad) if there is one. An unreadable frame reads as ethertype 0.
#[inline(always)]
pub fn ethernet_payload(frame: u64) -> (u16, u64) {
    let eth: [u8; 18] = read_bytes(frame);
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        (u16::from_be_bytes([eth[16], eth[17]]), frame + ETH_HLEN + 4)
    } else {
        (ethertype, frame + ETH_HLEN)
    }
}

/// The outer network header: after the MAC header when the skb has one (the network header is
/// not set yet where a packet arrives), else the network header; 0 when neither is known.
#[inline(always)]
pub fn outer_l3(head: u64, mac: Option<u64>, network: Option<u64>) -> u64 {
    if let Some(mac) = mac {
        let (ethertype, l3) = ethernet_payload(head + mac);
        return match ethertype {
            ETH_P_IP | ETH_P_IPV6 => l3,
            _ => 0,
        };
    }
    match network {
        Some(n) => head + n,
        None => 0,
    }
}

/// The inner packet of the packet whose outer IP header is at `l3` (the linear data ends at
/// `end`), written to `out`; false when it is not a tunnel packet (or the inner headers are not
/// in the linear data). A BPF subprogram of its own (not inlined): its header buffers then take
/// its own stack frame, not the calling program's, which shares 512 bytes with the filters.
#[inline(never)]
pub fn find_inner(l3: u64, end: u64, out: *mut Inner) -> bool {
    match parse(l3, end) {
        Some(inner) => {
            unsafe { out.write(inner) };
            true
        }
        None => false,
    }
}

#[inline(always)]
fn parse(l3: u64, end: u64) -> Option<Inner> {
    if l3 == 0 || l3 + 20 > end {
        return None;
    }
    let ip: [u8; 20] = read_bytes(l3);
    let (proto, l4) = match ip[0] >> 4 {
        4 => {
            // Only a first fragment starts with the tunnel header.
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
                return None;
            }
            (ip[9], l3 + ((ip[0] & 0x0f) as u64) * 4)
        }
        6 => {
            let next: [u8; 8] = read_bytes(l3);
            (next[6], l3 + 40)
        }
        _ => return None,
    };
    let (l2, mut inner_l3, mut protocol) = match proto {
        IPPROTO_UDP => {
            // UDP header, then the tunnel header's first 8 bytes.
            let udp: [u8; 16] = read_bytes(l4);
            match u16::from_be_bytes([udp[2], udp[3]]) {
                VXLAN_PORT => (l4 + 16, 0, 0),
                GENEVE_PORT => {
                    let inner = l4 + 16 + ((udp[8] & 0x3f) as u64) * 4;
                    match u16::from_be_bytes([udp[10], udp[11]]) {
                        ETH_P_TEB => (inner, 0, 0),
                        p @ (ETH_P_IP | ETH_P_IPV6) => (0, inner, p),
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        IPPROTO_IPIP => (0, l4, ETH_P_IP),
        IPPROTO_IPV6 => (0, l4, ETH_P_IPV6),
        IPPROTO_GRE => {
            let gre: [u8; 4] = read_bytes(l4);
            // Version 0 only (1 is PPTP); checksum, key and sequence number each add 4 bytes.
            if gre[1] & 0x07 != 0 {
                return None;
            }
            let flags = gre[0];
            let len = 4
                + 4 * (((flags >> 7) & 1) as u64)
                + 4 * (((flags >> 5) & 1) as u64)
                + 4 * (((flags >> 4) & 1) as u64);
            match u16::from_be_bytes([gre[2], gre[3]]) {
                ETH_P_TEB => (l4 + len, 0, 0),
                p @ (ETH_P_IP | ETH_P_IPV6) => (0, l4 + len, p),
                _ => return None,
            }
        }
        _ => return None,
    };
    if l2 != 0 {
        if l2 + ETH_HLEN > end {
            return None;
        }
        let (ethertype, at) = ethernet_payload(l2);
        if ethertype == ETH_P_IP || ethertype == ETH_P_IPV6 {
            inner_l3 = at;
            protocol = ethertype;
        }
    }
    if inner_l3 != 0 && inner_l3 >= end {
        inner_l3 = 0;
        protocol = 0;
    }
    Some(Inner {
        l2,
        l3: inner_l3,
        protocol,
    })
}
