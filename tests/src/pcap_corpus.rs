//! A deterministic corpus for differential tests of packet filters: Ethernet frames covering the
//! protocols and corner cases tcpdump expressions look at, a list of tcpdump expressions, and a
//! generator of random (but syntactically valid) expressions.
//!
//! The frames use a small fixed pool of MAC addresses, IP addresses and ports so that host, net
//! and port expressions actually match some of them. Everything is derived from a seed: a failing
//! case can be replayed from the seed and the index the test prints.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// A deterministic PRNG (splitmix64), seeded: the same seed always yields the same corpus.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; the modulo bias is irrelevant for the small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next_u64() % n
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Packets

/// One test frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// A short summary, e.g. `v4 tcp 10.0.0.1:443->10.0.0.2:51000 SYN vlan100 trunc@33`.
    pub desc: String,
    /// The full Ethernet frame, starting at the destination MAC (no FCS).
    pub frame: Vec<u8>,
}

impl Packet {
    /// The same packet seen from its network header (what a RAW/L3 filter sees): the frame minus the
    /// Ethernet header and any 802.1Q tags; None for non-IP (ARP) or when the frame is too short to have one.
    pub fn l3(&self) -> Option<&[u8]> {
        let off = l3_offset(&self.frame)?;
        self.frame.get(off..).filter(|l3| !l3.is_empty())
    }
}

/// At least 200 packets, deterministic for a given seed: hand-made ones for every case the tests
/// must cover, random combinations of the same building blocks, and truncated copies of both.
pub fn packets(seed: u64) -> Vec<Packet> {
    let mut rng = Rng::new(seed);
    let mut all = handcrafted(&mut rng);
    for _ in 0..RANDOM_PACKETS {
        all.push(random_packet(&mut rng));
    }
    let cut = truncations(&mut rng, &all);
    all.extend(cut);
    all
}

const RANDOM_PACKETS: usize = 150;
const TRUNCATED_PACKETS: usize = 32;

type Mac = [u8; 6];

/// The two lab hosts (10.0.0.1 / fd00::1 and 10.0.0.2 / fd00::2), and a router that is the
/// Ethernet neighbour for every other address.
const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x01];
const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x02];
const MAC_R: Mac = [0x02, 0, 0, 0, 0, 0x03];
const MAC_BROADCAST: Mac = [0xff; 6];

const V4_POOL: [Ipv4Addr; 5] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(192, 168, 1, 10),
    Ipv4Addr::new(172, 16, 5, 4),
    Ipv4Addr::new(8, 8, 8, 8),
];
const V6_POOL: [Ipv6Addr; 4] = [
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
];
const V4_GROUPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(224, 0, 0, 1),
    Ipv4Addr::new(224, 0, 0, 251),
    Ipv4Addr::BROADCAST,
];
const V6_ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const WELL_KNOWN_PORTS: [u16; 5] = [22, 53, 80, 443, 8080];
const TTLS: [u8; 10] = [1, 2, 32, 63, 64, 65, 127, 128, 200, 255];
const TOS: [u8; 8] = [0, 0, 0, 0x02, 0x10, 0x28, 0xb8, 0xc0];

const ETH_IP: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IP6: u16 = 0x86dd;
/// 802.1Q customer tag, and the 802.1ad service tag that is the outer tag of QinQ.
const TPID_1Q: u16 = 0x8100;
const TPID_1AD: u16 = 0x88a8;

const ICMP: u8 = 1;
const IGMP: u8 = 2;
const TCP: u8 = 6;
const UDP: u8 = 17;
const GRE: u8 = 47;
const ICMP6: u8 = 58;
const SCTP: u8 = 132;
const HOP_BY_HOP: u8 = 0;
const ROUTING6: u8 = 43;
const FRAGMENT6: u8 = 44;
const DEST_OPTS6: u8 = 60;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// IPv4 "more fragments" and "don't fragment" bits of the flags/offset word.
const MF: u16 = 0x2000;
const DF: u16 = 0x4000;

/// What Linux puts in a SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale 7. It makes
/// the TCP header 40 bytes long, so payload offsets must be computed from the data offset.
const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// NOP, NOP, timestamps: the usual options of an established Linux connection (32-byte header).
const TS_OPTIONS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0x12, 0x35, 0, 0, 0x56, 0x78];
const HTTP_GET: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: 10.0.0.1\r\nUser-Agent: pwru-test\r\nAccept: */*\r\n\r\n";

/// The frames every corpus contains, one or more per case the corpus must cover; only some
/// payloads depend on the seed.
fn handcrafted(rng: &mut Rng) -> Vec<Packet> {
    let [a, b, lan, far, dns] = V4_POOL;
    let [s1, s2, doc, ll] = V6_POOL;
    let echo = |seq: u16| [0x12, 0x34, (seq >> 8) as u8, seq as u8];
    let mut frames: Vec<Vec<u8>> = Vec::new();

    // A TCP connection between the lab hosts: handshake, data both ways (up to a full 1500-byte
    // datagram), teardown. Ethernet pads short frames to 60 bytes, and then `len` is no longer
    // the IP total length + 14.
    let (ab, ba) = (Ip4::new(a, b), Ip4::new(b, a));
    let (hello, full) = (rng.bytes(517), rng.bytes(1460));
    frames.extend([
        frame4(&ab, tcp(51000, 443, SYN, &SYN_OPTIONS, &[])),
        frame4(&ba, tcp(443, 51000, SYN | ACK, &SYN_OPTIONS, &[])),
        frame4(&ab, tcp(51000, 443, ACK, &TS_OPTIONS, &[])),
        frame4(&ab, tcp(51000, 443, PSH | ACK, &TS_OPTIONS, &hello)),
        frame4(&ba, tcp(443, 51000, ACK, &[], &full)),
        frame4(&ab, tcp(51000, 443, FIN | ACK, &[], &[])),
        frame4(&ba, tcp(443, 51000, RST, &[], &[])),
        pad60(frame4(&ba, tcp(443, 51000, RST | ACK, &[], &[]))),
    ]);

    // HTTP, whose payload offset depends on the TCP data offset (32 bytes for the GET), SSH and
    // 8080; scans with no flags at all and with FIN|PSH|URG ("xmas"); a SYN negotiating ECN.
    let get = tcp(50123, 80, PSH | ACK, &TS_OPTIONS, HTTP_GET);
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    reply.extend(rng.bytes(1000));
    let reply = tcp(80, 50123, PSH | ACK, &[], &reply);
    let ssh = tcp(22, 1050, PSH | ACK, &TS_OPTIONS, &rng.bytes(48));
    let ecn = Ip4::new(lan, b).tos(0x02);
    frames.extend([
        frame4(&Ip4::new(lan, a).tos(0x10), get),
        frame4(&Ip4::new(a, lan), reply),
        frame4(&Ip4::new(far, b).ttl(63), ssh),
        frame4(&Ip4::new(b, far), tcp(1100, 8080, SYN, &[], &[])),
        frame4(&Ip4::new(far, a), tcp(40000, 22, 0, &[], &[])),
        frame4(&Ip4::new(far, a), tcp(40001, 22, FIN | PSH | URG, &[], &[])),
        frame4(&ecn, tcp(1055, 80, SYN | ECE | CWR, &[], &[])),
    ]);

    // UDP: DNS query and answer, a query with id 0 (udp[8:2] = 0), an empty datagram (where
    // udp[8:2] is past the end), and other traffic.
    let query = dns_query(0x1a2b, "example.com");
    let answer = dns_response(0x1a2b, "example.com", lan);
    let zero_id = dns_query(0, "pwru.test");
    frames.extend([
        frame4(&Ip4::new(a, dns), udp(40000, 53, &query)),
        frame4(&Ip4::new(dns, a).ttl(117), udp(53, 40000, &answer)),
        frame4(&Ip4::new(b, dns), udp(1053, 53, &zero_id)),
        frame4(&Ip4::new(b, lan), udp(1024, 1100, &[])),
        frame4(&Ip4::new(lan, far), udp(60000, 8080, &rng.bytes(200))),
    ]);

    // ICMP: echo request and reply, and errors quoting the datagram that caused them.
    let offender = ipv4(&Ip4::new(a, b), udp(40000, 9999, b"hello"));
    let quote = &offender[..28];
    let data = rng.bytes(56);
    let hops = Ip4::new(far, a).ttl(255).tos(0xc0);
    frames.extend([
        frame4(&Ip4::new(a, dns), icmp(8, 0, echo(1), &data)),
        frame4(&Ip4::new(dns, a).ttl(117), icmp(0, 0, echo(1), &data)),
        frame4(&ba, icmp(3, 3, [0; 4], quote)),
        frame4(&hops, icmp(11, 0, [0; 4], quote)),
    ]);

    // ARP: request (broadcast, padded as on the wire), reply, gratuitous, and one in a VLAN.
    let request = arp(1, MAC_A, a, [0; 6], b);
    let reply = arp(2, MAC_B, b, MAC_A, a);
    let gratuitous = arp(1, MAC_R, lan, [0; 6], lan);
    let request_far = arp(1, MAC_A, a, [0; 6], far);
    let v10 = [vlan(TPID_1Q, 0, 10)];
    frames.extend([
        pad60(eth(MAC_BROADCAST, MAC_A, ETH_ARP, &request)),
        eth(MAC_A, MAC_B, ETH_ARP, &reply),
        pad60(eth(MAC_BROADCAST, MAC_R, ETH_ARP, &gratuitous)),
        tagged(&v10, eth(MAC_BROADCAST, MAC_A, ETH_ARP, &request_far)),
    ]);

    // 802.1Q tags with the interesting ids, QinQ (802.1ad outer tag) and two 802.1Q tags.
    let v100 = [vlan(TPID_1Q, 3, 100)];
    let v4094 = [vlan(TPID_1Q, 7, 4094)];
    let qinq = [vlan(TPID_1AD, 0, 100), vlan(TPID_1Q, 0, 10)];
    let double = [vlan(TPID_1Q, 0, 100), vlan(TPID_1Q, 0, 10)];
    let (s12, s21) = (Ip6::new(s1, s2), Ip6::new(s2, s1));
    let web = Ip4::new(lan, a);
    let query = udp(40001, 53, &dns_query(7, "vlan.test"));
    let query6 = udp(40002, 53, &dns_query(9, "qinq.test"));
    let vlan_query6 = udp(40005, 53, &dns_query(10, "vlan6.test"));
    let data = rng.bytes(100);
    frames.extend([
        tagged(&v10, frame4(&ab, tcp(51001, 80, SYN, &SYN_OPTIONS, &[]))),
        tagged(&v10, frame4(&web, tcp(50125, 80, PSH | ACK, &[], HTTP_GET))),
        tagged(&v100, frame4(&Ip4::new(a, dns), query)),
        tagged(&v100, frame4(&ba, tcp(443, 51002, SYN | ACK, &[], &[]))),
        tagged(&v100, frame6(&s12, &[], tcp(51002, 443, SYN, &[], &[]))),
        tagged(&v100, frame6(&Ip6::new(s1, doc), &[], vlan_query6)),
        tagged(&v4094, frame4(&web, icmp(8, 0, echo(2), &rng.bytes(32)))),
        tagged(&v4094, frame6(&s21, &[], icmp6(128, 0, &echo_body(3, 40)))),
        tagged(&qinq, frame4(&ab, tcp(51003, 443, PSH | ACK, &[], &data))),
        tagged(&qinq, frame6(&Ip6::new(s1, doc), &[], query6)),
        tagged(&double, frame4(&ba, udp(53, 1050, &rng.bytes(40)))),
    ]);

    // IPv4 fragments. A UDP datagram in two: only the first fragment carries the UDP header; the
    // second has an offset and no transport header, so port filters must not read its payload.
    // Then a TCP segment in three tiny fragments: the first one cuts the TCP header after 16
    // bytes, so the flags byte tcp[13] lies in the second fragment.
    let mut datagram = udp(5000, 53, &rng.bytes(1800));
    fill_transport_checksum(&a.octets(), &b.octets(), &mut datagram);
    let (head, tail) = datagram.bytes.split_at(1480);
    let mut segment = tcp(40002, 80, PSH | ACK, &[], HTTP_GET);
    fill_transport_checksum(&far.octets(), &b.octets(), &mut segment);
    let tcp_bytes = &segment.bytes;
    let (big, tiny) = (ab.clone().id(0x4242), Ip4::new(far, b).id(0x4343));
    frames.extend([
        frame4_raw(&big.clone().frag(MF), UDP, head),
        frame4_raw(&big.frag(1480 / 8), UDP, tail),
        frame4_raw(&tiny.clone().frag(MF), TCP, &tcp_bytes[..16]),
        frame4_raw(&tiny.clone().frag(MF | 2), TCP, &tcp_bytes[16..48]),
        frame4_raw(&tiny.frag(6), TCP, &tcp_bytes[48..]),
    ]);

    // IPv4 options: NOP NOP NOP EOL (IHL 6), record route (IHL 15 and 8), timestamp (IHL 8),
    // router alert on an IGMP report as Linux sends it. Last, a malformed header on purpose: an
    // IHL of 4 is shorter than the fixed header.
    let group = Ipv4Addr::new(224, 0, 0, 251);
    let nops = ab.clone().options(vec![1, 1, 1, 0]);
    let route = Ip4::new(lan, a).options(record_route(9));
    let short_route = Ip4::new(a, dns).options(record_route(2));
    let stamps = Ip4::new(b, far).options(timestamp_option());
    let alert = Ip4::new(a, group)
        .options(vec![0x94, 4, 0, 0])
        .ttl(1)
        .tos(0xc0);
    let query = udp(40003, 53, &dns_query(11, "rr.test"));
    let mut malformed = frame4(&ab, tcp(51005, 80, SYN, &[], &[]));
    malformed[14] = 0x44;
    frames.extend([
        frame4(&nops, tcp(51004, 443, SYN, &SYN_OPTIONS, &[])),
        frame4(&route, tcp(50126, 80, PSH | ACK, &[], HTTP_GET)),
        frame4(&short_route, query),
        frame4(&stamps, icmp(8, 0, echo(4), &rng.bytes(20))),
        frame4(&alert, igmp_report(group)),
        malformed,
    ]);

    // IPv6: TCP, UDP/DNS, ICMPv6 echo and error, neighbour discovery (hop limit 255, the
    // solicitation to the solicited-node group), a ping of all nodes, a router advertisement.
    let (to_doc, from_doc) = (Ip6::new(s1, doc), Ip6::new(doc, s1));
    let (data, full) = (rng.bytes(700), rng.bytes(1440));
    let query = udp(40000, 53, &dns_query(0x77, "example.com"));
    let answer = udp(53, 40000, &dns_response(0x77, "example.com", far));
    let solicit = Ip6::new(ll, solicited_node(s2)).hlim(255);
    let solicitation = icmp6(135, 0, &neighbour_body(s2, 1, MAC_A));
    let advertisement = icmp6(136, 0, &neighbour_body(s2, 2, MAC_B));
    let mut router = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    router.extend(MAC_R);
    let to_all = Ip6::new(ll, V6_ALL_NODES).hlim(255);
    let ping_all = Ip6::new(s1, V6_ALL_NODES).hlim(1);
    frames.extend([
        frame6(&s12, &[], tcp(51000, 443, SYN, &SYN_OPTIONS, &[])),
        frame6(&s21, &[], tcp(443, 51000, SYN | ACK, &SYN_OPTIONS, &[])),
        frame6(&s12, &[], tcp(51000, 443, PSH | ACK, &TS_OPTIONS, &data)),
        frame6(&s21, &[], tcp(443, 51000, ACK, &[], &full)),
        frame6(&from_doc, &[], tcp(80, 1080, FIN | ACK, &[], &[])),
        frame6(&from_doc, &[], tcp(22, 1081, RST, &[], &[])),
        frame6(&to_doc, &[], query),
        frame6(&from_doc.clone().hlim(57), &[], answer),
        frame6(&s12, &[], icmp6(128, 0, &echo_body(1, 56))),
        frame6(&s21, &[], icmp6(129, 0, &echo_body(1, 56))),
        frame6(&from_doc, &[], icmp6(1, 4, &[0; 4])),
        frame6(&solicit, &[], solicitation),
        frame6(&Ip6::new(s2, ll).hlim(255), &[], advertisement),
        frame6(&ping_all, &[], icmp6(128, 0, &echo_body(5, 16))),
        frame6(&to_all, &[], icmp6(134, 0, &router)),
    ]);

    // IPv6 extension headers: hop-by-hop before TCP, router alert before an MLDv2 report,
    // fragment headers before UDP (atomic, then the first and second of two), and hop-by-hop
    // followed by a fragment header.
    let mld = Ip6::new(ll, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16)).hlim(1);
    let mut report = vec![0, 0, 0, 1, 4, 0, 0, 0];
    report.extend(V6_ALL_NODES.octets());
    let query = udp(40004, 53, &dns_query(12, "frag.test"));
    let mut datagram = udp(5001, 5002, &rng.bytes(1600));
    fill_transport_checksum(&s1.octets(), &s2.octets(), &mut datagram);
    let (head, tail) = datagram.bytes.split_at(1440);
    let fragment = |offset, more, id| Ext::Fragment { offset, more, id };
    let hop_by_hop = [Ext::HopByHop(vec![])];
    let alert = [Ext::HopByHop(vec![5, 2, 0, 0])];
    let both = [Ext::HopByHop(vec![]), fragment(0, false, 9)];
    frames.extend([
        frame6(&s12, &hop_by_hop, tcp(51006, 80, SYN, &[], &[])),
        frame6(&mld, &alert, icmp6(143, 0, &report)),
        frame6(&to_doc, &[fragment(0, false, 7)], query),
        frame6_raw(&s12, &[fragment(0, true, 8)], UDP, head),
        frame6_raw(&s12, &[fragment(1440 / 8, false, 8)], UDP, tail),
        frame6(&s12, &both, tcp(51007, 22, SYN, &[], &[])),
    ]);

    // SCTP and GRE, over both IP versions.
    let inner = ipv4(&Ip4::new(lan, far), icmp(8, 0, echo(6), &rng.bytes(24)));
    let query6 = udp(4000, 53, &dns_query(13, "gre.test"));
    let inner6 = ipv6(&Ip6::new(doc, s2), &[], query6);
    frames.extend([
        frame4(&ab, sctp(36412, 80, &sctp_init())),
        frame4(&ba, sctp(80, 36412, &sctp_data(b"sctp payload"))),
        frame6(&s12, &[], sctp(2905, 2905, &sctp_init())),
        frame4(&Ip4::new(a, far), gre(ETH_IP, &inner)),
        frame6(&to_doc, &[], gre(ETH_IP6, &inner6)),
    ]);

    // Multicast and broadcast destinations: all hosts, mDNS, DHCP discover, directed broadcast.
    let [all_hosts, mdns, _] = V4_GROUPS;
    let mdns6 = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
    let dhcp = Ip4::new(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    let directed = Ip4::new(lan, Ipv4Addr::new(192, 168, 1, 255));
    let query = udp(5353, 5353, &dns_query(0, "_http._tcp.local"));
    let query6 = udp(5353, 5353, &dns_query(0, "host.local"));
    let all_hosts = Ip4::new(a, all_hosts).ttl(1);
    frames.extend([
        frame4(&all_hosts, udp(5353, 5353, &rng.bytes(30))),
        frame4(&Ip4::new(b, mdns).ttl(255), query),
        frame4(&dhcp, udp(68, 67, &rng.bytes(300))),
        frame4(&directed, udp(137, 137, &rng.bytes(50))),
        frame6(&Ip6::new(s1, mdns6).hlim(255), &[], query6),
    ]);

    // Not IP at all: LLDP, and an 802.3 frame (a length instead of an ethertype) with a BPDU.
    let lldp = [2, 7, 4, 2, 0, 0, 0, 0, 3, 4, 2, 7, 0x31, 6, 2, 0, 120, 0, 0];
    let mut bpdu = vec![0x42, 0x42, 0x03];
    bpdu.extend([0; 35]);
    frames.extend([
        pad60(eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], MAC_R, 0x88cc, &lldp)),
        eth([0x01, 0x80, 0xc2, 0, 0, 0], MAC_R, bpdu.len() as u16, &bpdu),
    ]);

    frames
        .into_iter()
        .map(|frame| Packet {
            desc: describe(&frame),
            frame,
        })
        .collect()
}

/// A random combination of the building blocks: IP version, transport, addresses and ports from
/// the pools, TTL/TOS, and now and then IP options, extension headers, VLAN tags and padding.
fn random_packet(rng: &mut Rng) -> Packet {
    let v6 = rng.chance(30);
    let proto = *rng.pick(&[TCP, TCP, TCP, UDP, UDP, ICMP, ICMP, SCTP, GRE]);
    // Only datagrams go to groups; TCP is unicast.
    let to_group = matches!(proto, UDP | ICMP) && rng.chance(15);
    let seg = random_segment(rng, proto, v6);
    let tags: Vec<[u8; 4]> = match rng.below(100) {
        0..=69 => vec![],
        70..=89 => vec![vlan(TPID_1Q, rng.below(8) as u8, random_vid(rng))],
        90..=94 => vec![
            vlan(TPID_1AD, 0, random_vid(rng)),
            vlan(TPID_1Q, 0, random_vid(rng)),
        ],
        _ => vec![
            vlan(TPID_1Q, 0, random_vid(rng)),
            vlan(TPID_1Q, 0, random_vid(rng)),
        ],
    };
    let frame = if v6 {
        let src = *rng.pick(&V6_POOL);
        let dst = if to_group {
            V6_ALL_NODES
        } else {
            other(rng, &V6_POOL, src)
        };
        let h = Ip6 {
            hlim: *rng.pick(&TTLS),
            tclass: *rng.pick(&TOS),
            flow: rng.below(1 << 20) as u32,
            ..Ip6::new(src, dst)
        };
        let exts = if rng.chance(10) {
            vec![Ext::HopByHop(vec![])]
        } else {
            vec![]
        };
        frame6(&h, &exts, seg)
    } else {
        let src = *rng.pick(&V4_POOL);
        let dst = if to_group {
            *rng.pick(&V4_GROUPS)
        } else {
            other(rng, &V4_POOL, src)
        };
        let options = match rng.below(100) {
            0..=84 => vec![],
            85..=89 => vec![1, 1, 1, 0],
            90..=94 => record_route(rng.range(1, 9) as usize),
            _ => timestamp_option(),
        };
        let h = Ip4 {
            ttl: *rng.pick(&TTLS),
            tos: *rng.pick(&TOS),
            id: rng.below(0x10000) as u16,
            frag: if rng.chance(70) { DF } else { 0 },
            options,
            ..Ip4::new(src, dst)
        };
        frame4(&h, seg)
    };
    let mut frame = tagged(&tags, frame);
    if rng.chance(30) {
        frame = pad60(frame);
    }
    Packet {
        desc: describe(&frame),
        frame,
    }
}

/// An element of `pool` other than `not`; the pool must hold another one.
fn other<T: Copy + PartialEq>(rng: &mut Rng, pool: &[T], not: T) -> T {
    loop {
        let item = *rng.pick(pool);
        if item != not {
            return item;
        }
    }
}

fn random_vid(rng: &mut Rng) -> u16 {
    match rng.below(4) {
        0 => 10,
        1 => 100,
        2 => 4094,
        _ => rng.range(1, 4094) as u16,
    }
}

/// A port from the pool: well known, in the 1024-1100 range the expressions use, or ephemeral.
fn random_port(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0..=4 => *rng.pick(&WELL_KNOWN_PORTS),
        5 | 6 => rng.range(1024, 1100) as u16,
        _ => rng.range(49152, 65535) as u16,
    }
}

/// Mostly small payloads, sometimes close to a full MTU (the headers leave room for 1400 bytes).
fn random_payload(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0..=3 => 0,
        4..=6 => rng.range(1, 64),
        7 | 8 => rng.range(65, 600),
        _ => rng.range(601, 1400),
    };
    rng.bytes(len as usize)
}

fn random_segment(rng: &mut Rng, proto: u8, v6: bool) -> Segment {
    // A client port talking to a server port, in either direction.
    let (mut sport, mut dport) = (rng.range(1024, 65535) as u16, random_port(rng));
    if rng.chance(40) {
        (sport, dport) = (dport, sport);
    }
    match proto {
        TCP => {
            const COMBOS: [u8; 11] = [
                SYN,
                SYN | ACK,
                ACK,
                ACK,
                PSH | ACK,
                PSH | ACK,
                FIN | ACK,
                RST,
                RST | ACK,
                URG | ACK,
                SYN | ECE | CWR,
            ];
            let flags = *rng.pick(&COMBOS);
            let options: &[u8] = if flags & SYN != 0 {
                &SYN_OPTIONS
            } else if rng.chance(50) {
                &TS_OPTIONS
            } else {
                &[]
            };
            // Handshake and reset segments carry no data.
            let payload = if flags & (SYN | RST) != 0 {
                vec![]
            } else if dport == 80 && rng.chance(40) {
                HTTP_GET.to_vec()
            } else {
                random_payload(rng)
            };
            tcp(sport, dport, flags, options, &payload)
        }
        UDP if dport == 53 => {
            let id = if rng.chance(20) {
                0
            } else {
                rng.below(0x10000) as u16
            };
            udp(sport, dport, &dns_query(id, "random.test"))
        }
        UDP => udp(sport, dport, &random_payload(rng)),
        ICMP if v6 => {
            let typ = *rng.pick(&[128, 128, 129, 129, 1, 3, 135, 136]);
            icmp6(
                typ,
                0,
                &echo_body(rng.below(100) as u16, rng.below(64) as usize),
            )
        }
        ICMP => {
            let typ = *rng.pick(&[8, 8, 0, 0, 3, 11, 5, 13]);
            let code = if typ == 3 { rng.below(16) as u8 } else { 0 };
            let seq = rng.below(256) as u8;
            let len = rng.below(64) as usize;
            icmp(typ, code, [0, 1, 0, seq], &rng.bytes(len))
        }
        SCTP if rng.chance(50) => sctp(sport, dport, &sctp_init()),
        SCTP => sctp(sport, dport, &sctp_data(&random_payload(rng))),
        _ => {
            let src = *rng.pick(&V4_POOL);
            let inner = Ip4::new(src, other(rng, &V4_POOL, src));
            gre(ETH_IP, &ipv4(&inner, udp(sport, dport, &rng.bytes(20))))
        }
    }
}

/// Copies of some frames cut short, as a small snaplen or a broken sender produces them: any
/// load past the end must make the filter reject, in libpcap and in the kernel alike.
fn truncations(rng: &mut Rng, whole: &[Packet]) -> Vec<Packet> {
    // The interesting boundaries come first so that every seed has them: empty, one byte, inside
    // and at the end of the MAC header, and, for an untagged IPv4 frame, inside the IP header,
    // one byte short of a full one, and a complete IP header without any transport header.
    const BOUNDARIES: [usize; 8] = [0, 1, 13, 14, 15, 20, 33, 34];
    let candidates: Vec<&Packet> = whole.iter().filter(|p| p.frame.len() >= 42).collect();
    (0..TRUNCATED_PACKETS)
        .map(|i| {
            let p = *rng.pick(&candidates);
            let len = p.frame.len();
            let l3 = l3_offset(&p.frame);
            let l4 = l4_offset(&p.frame);
            let cut = match (BOUNDARIES.get(i), rng.below(4), l3, l4) {
                (Some(&boundary), ..) => boundary,
                // Inside the transport header.
                (None, 0, _, Some(l4)) => l4 + rng.range(1, 19) as usize,
                // Inside the network header.
                (None, 1, Some(l3), _) => l3 + rng.range(1, 19) as usize,
                (None, 2, ..) => len - 1,
                _ => rng.range(1, len as u64 - 1) as usize,
            };
            let cut = cut.min(len - 1);
            Packet {
                desc: format!("{} trunc@{cut}", p.desc),
                frame: p.frame[..cut].to_vec(),
            }
        })
        .collect()
}

/// Where the IP header starts, after the MAC header and any VLAN tags; None for other ethertypes
/// and for frames too short to tell.
fn l3_offset(frame: &[u8]) -> Option<usize> {
    let mut off = 12;
    loop {
        match be16(frame, off)? {
            TPID_1Q | TPID_1AD => off += 4,
            ETH_IP | ETH_IP6 => return Some(off + 2),
            _ => return None,
        }
    }
}

/// Where the transport header starts, for unfragmented IP without IPv6 extension headers.
fn l4_offset(frame: &[u8]) -> Option<usize> {
    let l3 = l3_offset(frame)?;
    match frame.get(l3)? >> 4 {
        4 => Some(l3 + usize::from(frame[l3] & 0x0f) * 4),
        6 => Some(l3 + 40),
        _ => None,
    }
}

fn be16(bytes: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(off)?, *bytes.get(off + 1)?]))
}

// ---------------------------------------------------------------------------------------------
// Builders. The transport builders leave the checksum to the IP builders, which know the
// pseudo-header; all lengths are those of the untruncated packet.

/// A transport-layer message and the IP protocol number announcing it.
struct Segment {
    proto: u8,
    bytes: Vec<u8>,
}

/// An untagged Ethernet frame without FCS; `ethertype` may also be an 802.3 length.
fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend(dst);
    f.extend(src);
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

/// A VLAN tag: TPID, then priority and VLAN id in the TCI.
fn vlan(tpid: u16, pcp: u8, vid: u16) -> [u8; 4] {
    let [t0, t1] = tpid.to_be_bytes();
    let [c0, c1] = ((u16::from(pcp) << 13) | (vid & 0x0fff)).to_be_bytes();
    [t0, t1, c0, c1]
}

/// Inserts VLAN tags, outermost first, between the MAC addresses and the ethertype.
fn tagged(tags: &[[u8; 4]], frame: Vec<u8>) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for tag in tags {
        f.extend(tag);
    }
    f.extend(&frame[12..]);
    f
}

/// Pads a frame to the 60-byte Ethernet minimum, as a NIC does on the wire.
fn pad60(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}

/// An IPv4-over-Ethernet ARP message (1 = request, 2 = reply).
fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![0, 1, 0x08, 0x00, 6, 4];
    m.extend(op.to_be_bytes());
    m.extend(sha);
    m.extend(spa.octets());
    m.extend(tha);
    m.extend(tpa.octets());
    m
}

/// The MAC an IPv4 destination resolves to: group mapping, broadcast, a lab host or the router.
fn mac_of_v4(ip: Ipv4Addr) -> Mac {
    let o = ip.octets();
    if ip.is_multicast() {
        [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
    } else if ip.is_broadcast() || o[3] == 255 {
        MAC_BROADCAST
    } else if ip == V4_POOL[0] {
        MAC_A
    } else if ip == V4_POOL[1] {
        MAC_B
    } else {
        MAC_R
    }
}

fn mac_of_v6(ip: Ipv6Addr) -> Mac {
    let o = ip.octets();
    if ip.is_multicast() {
        [0x33, 0x33, o[12], o[13], o[14], o[15]]
    } else if ip == V6_POOL[0] || ip == V6_POOL[3] {
        MAC_A
    } else if ip == V6_POOL[1] {
        MAC_B
    } else {
        MAC_R
    }
}

#[derive(Clone)]
struct Ip4 {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    tos: u8,
    id: u16,
    /// Flags and fragment offset (in 8-byte units).
    frag: u16,
    /// Padded with EOL to a multiple of 4 bytes; at most 40.
    options: Vec<u8>,
}

/// A typical header (TTL 64, DF set); the setters below change one field each.
impl Ip4 {
    fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ip4 {
            src,
            dst,
            ttl: 64,
            tos: 0,
            id: 0x1c46,
            frag: DF,
            options: vec![],
        }
    }

    fn ttl(self, ttl: u8) -> Self {
        Ip4 { ttl, ..self }
    }

    fn tos(self, tos: u8) -> Self {
        Ip4 { tos, ..self }
    }

    fn id(self, id: u16) -> Self {
        Ip4 { id, ..self }
    }

    fn frag(self, frag: u16) -> Self {
        Ip4 { frag, ..self }
    }

    fn options(self, options: Vec<u8>) -> Self {
        Ip4 { options, ..self }
    }
}

/// An IPv4 header (with its checksum) followed by `payload` as is.
fn ipv4_raw(h: &Ip4, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut options = h.options.clone();
    options.resize(options.len().next_multiple_of(4), 0);
    assert!(options.len() <= 40, "IPv4 options are at most 40 bytes");
    let header_len = 20 + options.len();
    let total = u16::try_from(header_len + payload.len()).expect("IPv4 datagram too long");
    let mut p = vec![0x40 | (header_len / 4) as u8, h.tos];
    p.extend(total.to_be_bytes());
    p.extend(h.id.to_be_bytes());
    p.extend(h.frag.to_be_bytes());
    p.extend([h.ttl, proto, 0, 0]);
    p.extend(h.src.octets());
    p.extend(h.dst.octets());
    p.extend(options);
    let sum = inet_checksum(&[&p]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend(payload);
    p
}

/// A whole (unfragmented) IPv4 datagram carrying `seg`, with the transport checksum filled in.
fn ipv4(h: &Ip4, mut seg: Segment) -> Vec<u8> {
    fill_transport_checksum(&h.src.octets(), &h.dst.octets(), &mut seg);
    ipv4_raw(h, seg.proto, &seg.bytes)
}

/// An untagged frame carrying a whole IPv4 datagram.
fn frame4(h: &Ip4, seg: Segment) -> Vec<u8> {
    let (dst, src) = (mac_of_v4(h.dst), mac_of_v4(h.src));
    eth(dst, src, ETH_IP, &ipv4(h, seg))
}

/// An untagged frame with a hand-made IPv4 payload, e.g. one fragment.
fn frame4_raw(h: &Ip4, proto: u8, payload: &[u8]) -> Vec<u8> {
    let (dst, src) = (mac_of_v4(h.dst), mac_of_v4(h.src));
    eth(dst, src, ETH_IP, &ipv4_raw(h, proto, payload))
}

/// IPv4 options: record route with `slots` empty addresses (IHL 7..=15 for 1..=9 slots).
fn record_route(slots: usize) -> Vec<u8> {
    let mut o = vec![7, (3 + 4 * slots) as u8, 4];
    o.resize(3 + 4 * slots, 0);
    o
}

/// IPv4 options: a timestamp option with two timestamps (IHL 8).
fn timestamp_option() -> Vec<u8> {
    vec![0x44, 12, 13, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0]
}

#[derive(Clone)]
struct Ip6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hlim: u8,
    tclass: u8,
    flow: u32,
}

impl Ip6 {
    fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Ip6 {
            src,
            dst,
            hlim: 64,
            tclass: 0,
            flow: 0,
        }
    }

    fn hlim(self, hlim: u8) -> Self {
        Ip6 { hlim, ..self }
    }
}

/// IPv6 extension headers; each one's "next header" is filled in by the IPv6 builder.
enum Ext {
    /// Hop-by-hop options (padded with PadN to a multiple of 8 bytes).
    HopByHop(Vec<u8>),
    /// Fragment header; `offset` in 8-byte units.
    Fragment { offset: u16, more: bool, id: u32 },
}

impl Ext {
    fn number(&self) -> u8 {
        match self {
            Ext::HopByHop(_) => HOP_BY_HOP,
            Ext::Fragment { .. } => FRAGMENT6,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match self {
            Ext::HopByHop(options) => {
                let mut h = vec![next, 0];
                h.extend(options);
                match h.len().next_multiple_of(8) - h.len() {
                    0 => {}
                    1 => h.push(0), // Pad1
                    pad => {
                        // PadN
                        h.extend([1, pad as u8 - 2]);
                        h.resize(h.len() + pad - 2, 0);
                    }
                }
                h[1] = (h.len() / 8 - 1) as u8;
                h
            }
            Ext::Fragment { offset, more, id } => {
                let mut h = vec![next, 0];
                h.extend(((offset << 3) | u16::from(*more)).to_be_bytes());
                h.extend(id.to_be_bytes());
                h
            }
        }
    }
}

/// An IPv6 header, the extension headers chained in order, then `payload` as is.
fn ipv6_raw(h: &Ip6, exts: &[Ext], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, ext) in exts.iter().enumerate() {
        chain.extend(ext.bytes(exts.get(i + 1).map_or(proto, Ext::number)));
    }
    let payload_len = u16::try_from(chain.len() + payload.len()).expect("IPv6 payload too long");
    let first = exts.first().map_or(proto, Ext::number);
    let word = (6 << 28) | (u32::from(h.tclass) << 20) | (h.flow & 0xf_ffff);
    let mut p = word.to_be_bytes().to_vec();
    p.extend(payload_len.to_be_bytes());
    p.extend([first, h.hlim]);
    p.extend(h.src.octets());
    p.extend(h.dst.octets());
    p.extend(chain);
    p.extend(payload);
    p
}

/// A whole IPv6 packet carrying `seg`, with the transport checksum filled in.
fn ipv6(h: &Ip6, exts: &[Ext], mut seg: Segment) -> Vec<u8> {
    fill_transport_checksum(&h.src.octets(), &h.dst.octets(), &mut seg);
    ipv6_raw(h, exts, seg.proto, &seg.bytes)
}

/// An untagged frame carrying a whole IPv6 packet.
fn frame6(h: &Ip6, exts: &[Ext], seg: Segment) -> Vec<u8> {
    let (dst, src) = (mac_of_v6(h.dst), mac_of_v6(h.src));
    eth(dst, src, ETH_IP6, &ipv6(h, exts, seg))
}

/// An untagged frame with a hand-made IPv6 payload, e.g. one fragment.
fn frame6_raw(h: &Ip6, exts: &[Ext], proto: u8, payload: &[u8]) -> Vec<u8> {
    let (dst, src) = (mac_of_v6(h.dst), mac_of_v6(h.src));
    eth(dst, src, ETH_IP6, &ipv6_raw(h, exts, proto, payload))
}

/// ff02::1:ffXX:XXXX, the group a neighbour solicitation for `target` goes to.
fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    let mut group = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    group[13..].copy_from_slice(&o[13..]);
    Ipv6Addr::from(group)
}

/// A TCP segment; `options` are padded with EOL to a multiple of 4 bytes.
fn tcp(sport: u16, dport: u16, flags: u8, options: &[u8], payload: &[u8]) -> Segment {
    let mut options = options.to_vec();
    options.resize(options.len().next_multiple_of(4), 0);
    let data_offset = (20 + options.len()) / 4;
    let mut s = Vec::with_capacity(20 + options.len() + payload.len());
    s.extend(sport.to_be_bytes());
    s.extend(dport.to_be_bytes());
    s.extend(0x6b8b_4567_u32.to_be_bytes());
    let ack = if flags & ACK != 0 { 0x327b_23c6_u32 } else { 0 };
    s.extend(ack.to_be_bytes());
    s.extend([(data_offset as u8) << 4, flags]);
    s.extend(64240_u16.to_be_bytes());
    s.extend([0, 0, 0, 0]); // checksum, urgent pointer
    s.extend(options);
    s.extend(payload);
    Segment {
        proto: TCP,
        bytes: s,
    }
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Segment {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend(sport.to_be_bytes());
    s.extend(dport.to_be_bytes());
    s.extend(((8 + payload.len()) as u16).to_be_bytes());
    s.extend([0, 0]);
    s.extend(payload);
    Segment {
        proto: UDP,
        bytes: s,
    }
}

/// An ICMPv4 message; `rest` is the second header word (echo id/sequence, unused for errors).
/// Its checksum covers the message alone, so it is computed here.
fn icmp(typ: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Segment {
    let mut m = vec![typ, code, 0, 0];
    m.extend(rest);
    m.extend(data);
    let sum = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    Segment {
        proto: ICMP,
        bytes: m,
    }
}

/// An ICMPv6 message; `body` follows type, code and checksum.
fn icmp6(typ: u8, code: u8, body: &[u8]) -> Segment {
    let mut m = vec![typ, code, 0, 0];
    m.extend(body);
    Segment {
        proto: ICMP6,
        bytes: m,
    }
}

/// Echo identifier, sequence number and `len` bytes of data.
fn echo_body(seq: u16, len: usize) -> Vec<u8> {
    let mut b = vec![0xbe, 0xef];
    b.extend(seq.to_be_bytes());
    b.extend((0..len).map(|i| i as u8));
    b
}

/// Neighbour solicitation (`option` 1, source link-layer address) or advertisement (`option` 2,
/// target link-layer address, solicited and override flags).
fn neighbour_body(target: Ipv6Addr, option: u8, mac: Mac) -> Vec<u8> {
    let flags = if option == 2 { 0x60 } else { 0 };
    let mut b = vec![flags, 0, 0, 0];
    b.extend(target.octets());
    b.extend([option, 1]);
    b.extend(mac);
    b
}

/// An IGMPv2 membership report; like ICMP its checksum covers the message only.
fn igmp_report(group: Ipv4Addr) -> Segment {
    let mut m = vec![0x16, 0, 0, 0];
    m.extend(group.octets());
    let sum = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    Segment {
        proto: IGMP,
        bytes: m,
    }
}

/// An SCTP packet with one chunk. Its CRC32c covers the packet alone, so it is computed here.
fn sctp(sport: u16, dport: u16, chunk: &[u8]) -> Segment {
    let mut s = Vec::with_capacity(12 + chunk.len());
    s.extend(sport.to_be_bytes());
    s.extend(dport.to_be_bytes());
    s.extend(0x5a5a_0001_u32.to_be_bytes()); // verification tag
    s.extend([0, 0, 0, 0]);
    s.extend(chunk);
    let crc = crc32c(&s);
    // RFC 4960 appendix B: the CRC goes on the wire least significant byte first.
    s[8..12].copy_from_slice(&crc.to_le_bytes());
    Segment {
        proto: SCTP,
        bytes: s,
    }
}

fn sctp_init() -> Vec<u8> {
    let mut c = vec![1, 0, 0, 20];
    c.extend(0x0102_0304_u32.to_be_bytes()); // initiate tag
    c.extend(0x0001_0000_u32.to_be_bytes()); // receiver window
    c.extend([0, 10, 0, 10]); // outbound and inbound streams
    c.extend(0x1000_u32.to_be_bytes()); // initial TSN
    c
}

fn sctp_data(data: &[u8]) -> Vec<u8> {
    let mut c = vec![0, 3];
    c.extend(((16 + data.len()) as u16).to_be_bytes());
    c.extend(0x1000_u32.to_be_bytes()); // TSN
    c.extend([0, 0, 0, 0]); // stream id and sequence
    c.extend(0_u32.to_be_bytes()); // payload protocol id
    c.extend(data);
    c.resize(c.len().next_multiple_of(4), 0);
    c
}

/// A GRE packet without options carrying `inner` (an IPv4 or IPv6 packet).
fn gre(ethertype: u16, inner: &[u8]) -> Segment {
    let mut s = vec![0, 0];
    s.extend(ethertype.to_be_bytes());
    s.extend(inner);
    Segment {
        proto: GRE,
        bytes: s,
    }
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut n = Vec::new();
    for label in name.split('.') {
        n.push(label.len() as u8);
        n.extend(label.as_bytes());
    }
    n.push(0);
    n
}

/// A recursive query for the A record of `name`.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend(dns_name(name));
    m.extend([0, 1, 0, 1]);
    m
}

/// The answer to [`dns_query`]: `name` has address `addr`.
fn dns_response(id: u16, name: &str, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend(dns_name(name));
    m.extend([0, 1, 0, 1]);
    m.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4]);
    m.extend(addr.octets());
    m
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`; all parts but the last must be
/// of even length, which holds for the headers and pseudo-headers used here.
fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fills the checksum of a TCP, UDP or ICMPv6 segment, which also covers a pseudo-header of the
/// IP addresses (4 or 16 bytes each), the protocol and the segment length. Other protocols are
/// left alone.
fn fill_transport_checksum(src: &[u8], dst: &[u8], seg: &mut Segment) {
    let at = match seg.proto {
        TCP => 16,
        UDP => 6,
        ICMP6 => 2,
        _ => return,
    };
    let len = seg.bytes.len();
    let mut pseudo = [src, dst].concat();
    if src.len() == 4 {
        pseudo.extend([0, seg.proto]);
        pseudo.extend((len as u16).to_be_bytes());
    } else {
        pseudo.extend((len as u32).to_be_bytes());
        pseudo.extend([0, 0, 0, seg.proto]);
    }
    seg.bytes[at..at + 2].fill(0);
    let mut sum = inet_checksum(&[&pseudo, &seg.bytes]);
    if seg.proto == UDP && sum == 0 {
        sum = 0xffff; // a zero UDP checksum means "none"
    }
    seg.bytes[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// CRC-32C (Castagnoli), the SCTP checksum; bitwise, slow but tiny.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------------------
// Descriptions, derived from the bytes so that they cannot disagree with them.

/// A one-line summary of a frame, e.g. `v4 tcp 10.0.0.1:443->10.0.0.2:51000 SYN|ACK vlan100`.
fn describe(frame: &[u8]) -> String {
    let mut off = 12;
    let mut tags = String::new();
    while let Some(tpid @ (TPID_1Q | TPID_1AD)) = be16(frame, off) {
        let vid = be16(frame, off + 2).unwrap_or(0) & 0x0fff;
        let kind = if tpid == TPID_1AD { "qinq" } else { "vlan" };
        let _ = write!(tags, " {kind}{vid}");
        off += 4;
    }
    let body = frame.get(off + 2..).unwrap_or(&[]);
    let ethertype = be16(frame, off);
    let what = match ethertype {
        Some(ETH_IP) => describe_v4(body),
        Some(ETH_IP6) => describe_v6(body),
        Some(ETH_ARP) if body.len() >= 28 => {
            let spa = Ipv4Addr::new(body[14], body[15], body[16], body[17]);
            let tpa = Ipv4Addr::new(body[24], body[25], body[26], body[27]);
            match body[7] {
                1 if spa == tpa => format!("arp gratuitous {spa}"),
                1 => format!("arp who-has {tpa} tell {spa}"),
                _ => format!("arp reply {spa} is-at {}", mac_string(&body[8..14])),
            }
        }
        Some(t) if t < 0x0600 => "802.3 llc".to_string(),
        Some(t) => format!("ethertype {t:#06x}"),
        None => "runt".to_string(),
    };
    // Bytes after the end the headers announce are Ethernet padding.
    let announced = match ethertype {
        Some(ETH_IP) => be16(body, 2).map(usize::from),
        Some(ETH_IP6) => be16(body, 4).map(|len| 40 + usize::from(len)),
        Some(ETH_ARP) => Some(28),
        _ => None,
    };
    let pad = if announced.is_some_and(|len| body.len() > len) {
        " pad"
    } else {
        ""
    };
    format!("{what}{tags}{pad}")
}

fn describe_v4(ip: &[u8]) -> String {
    if ip.len() < 20 {
        return "v4 runt".to_string();
    }
    // Leave out the Ethernet padding.
    let ip = &ip[..usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(20, ip.len())];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]).to_string();
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]).to_string();
    let mut notes = String::new();
    if header_len != 20 {
        let _ = write!(notes, " ihl={}", header_len / 4);
    }
    if ip[8] != 64 {
        let _ = write!(notes, " ttl={}", ip[8]);
    }
    if ip[1] != 0 {
        let _ = write!(notes, " tos={:#04x}", ip[1]);
    }
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let offset = usize::from(frag & 0x1fff) * 8;
    if frag & MF != 0 || offset != 0 {
        let more = if frag & MF != 0 { "+MF" } else { "" };
        let _ = write!(notes, " frag@{offset}{more}");
    }
    if header_len < 20 {
        return format!("v4 {src}->{dst}{notes} malformed");
    }
    let l4 = if offset == 0 {
        ip.get(header_len..)
    } else {
        None
    };
    format!("v4 {}{notes}", describe_l4(ip[9], &src, &dst, l4))
}

fn describe_v6(ip: &[u8]) -> String {
    if ip.len() < 40 {
        return "v6 runt".to_string();
    }
    let ip = &ip[..(40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len())];
    let octets = |at: usize| <[u8; 16]>::try_from(&ip[at..at + 16]).unwrap();
    let src = format!("[{}]", Ipv6Addr::from(octets(8)));
    let dst = format!("[{}]", Ipv6Addr::from(octets(24)));
    let mut notes = String::new();
    if ip[7] != 64 {
        let _ = write!(notes, " hlim={}", ip[7]);
    }
    let (mut next, mut off, mut fragment) = (ip[6], 40, false);
    while let (HOP_BY_HOP | ROUTING6 | DEST_OPTS6 | FRAGMENT6, Some(&[following, len])) =
        (next, ip.get(off..off + 2))
    {
        if next == FRAGMENT6 {
            let word = be16(ip, off + 2).unwrap_or(0);
            let more = if word & 1 != 0 { "+M" } else { "" };
            let _ = write!(notes, " frag@{}{more}", usize::from(word >> 3) * 8);
            fragment |= word >> 3 != 0;
            off += 8;
        } else {
            notes += if next == HOP_BY_HOP { " hbh" } else { " ext" };
            off += (usize::from(len) + 1) * 8;
        }
        next = following;
    }
    let l4 = if fragment { None } else { ip.get(off..) };
    format!("v6 {}{notes}", describe_l4(next, &src, &dst, l4))
}

/// The transport part of a description; `l4` is None for non-first fragments.
fn describe_l4(proto: u8, src: &str, dst: &str, l4: Option<&[u8]>) -> String {
    let ports = l4.and_then(|b| Some((be16(b, 0)?, be16(b, 2)?)));
    match (proto, l4, ports) {
        (TCP, Some(b), Some((sp, dp))) if b.len() >= 20 => {
            let payload = b.len().saturating_sub(usize::from(b[12] >> 4) * 4);
            let size = if payload > 0 {
                format!(" +{payload}B")
            } else {
                String::new()
            };
            format!("tcp {src}:{sp}->{dst}:{dp} {}{size}", flag_names(b[13]))
        }
        (UDP, Some(b), Some((sp, dp))) => {
            format!("udp {src}:{sp}->{dst}:{dp} +{}B", b.len().saturating_sub(8))
        }
        (SCTP, _, Some((sp, dp))) => format!("sctp {src}:{sp}->{dst}:{dp}"),
        (ICMP, Some(&[typ, code, ..]), _) => format!("icmp {src}->{dst} type {typ} code {code}"),
        (ICMP6, Some(&[typ, code, ..]), _) => format!("icmp6 {src}->{dst} type {typ} code {code}"),
        (GRE, _, _) => format!("gre {src}->{dst}"),
        (IGMP, _, _) => format!("igmp {src}->{dst}"),
        (_, Some(_), _) => format!("proto {proto} {src}->{dst}"),
        (_, None, _) => format!("proto {proto} {src}->{dst} (no l4 header)"),
    }
}

fn flag_names(flags: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (SYN, "SYN"),
        (FIN, "FIN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (ACK, "ACK"),
        (URG, "URG"),
        (ECE, "ECE"),
        (CWR, "CWR"),
    ];
    let set: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if set.is_empty() {
        "noflags".to_string()
    } else {
        set.join("|")
    }
}

fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---------------------------------------------------------------------------------------------
// Expressions

/// At least 70 tcpdump filter expressions that libpcap (1.10) compiles for both DLT_EN10MB, and most also for DLT_RAW.
///
/// The link-layer ones (`ether`, `vlan`, `arp`) only compile for Ethernet (`arp` and `ether proto`
/// fail for DLT_RAW with "expression rejects all packets"). `ip broadcast` is left out: without
/// a netmask libpcap refuses it.
pub const EXPRESSIONS: &[&str] = &[
    // Hosts and nets.
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst host 10.0.0.2",
    "host 192.168.1.10 or host 172.16.5.4",
    "ip6 host fd00::1",
    "src host fd00::2",
    "dst host 2001:db8::5",
    "host fe80::1",
    "dst host 255.255.255.255",
    "dst host ff02::1",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16",
    "dst net 172.16.0.0/12",
    "net 10.0.0.0 mask 255.255.255.0",
    "dst net 224.0.0.0/4",
    "net fd00::/16",
    "src net 2001:db8::/32",
    // Ports.
    "port 443",
    "src port 22",
    "dst port 53",
    "tcp port 80",
    "udp port 53",
    "port https",
    "port domain",
    "portrange 1024-1100",
    "tcp dst portrange 1-1023",
    "udp src portrange 1024-65535",
    "tcp src port 8080 or tcp dst port 8080",
    "sctp port 80",
    // Protocols.
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "igmp",
    "arp",
    "ip",
    "ip6",
    "sctp",
    "ip proto 47",
    "ip6 proto 58",
    "ip proto \\tcp",
    "ip6 proto 0",
    "ip[8] << ip[1] != 0",
    "ip[2:2] >> ip[8] = 0",
    "ip[9] << (ip[8] & 0x3f) > 1000",
    // Byte tests.
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0",
    "tcp[13] = 18",
    "tcp[12] & 0xf0 > 0x50",
    "ip[8] < 64",
    "ip[1] & 0xfc != 0",
    "ip[6:2] & 0x1fff != 0",
    "ip[0] & 0xf > 5",
    "ip[12:4] = 0x0a000001",
    "icmp[icmptype] = icmp-echo",
    "icmp[icmptype] = icmp-unreach or icmp[icmptype] = icmp-timxceed",
    "icmp[0] = 8",
    "icmp6[0] = 135",
    "icmp6[icmp6type] = icmp6-echo",
    "ip6[6] = 58",
    "ip6[7] = 255",
    "udp[8:2] = 0",
    "udp[4:2] > 100",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    // Loads at the edge of the 64-byte window the translation copies first (inside, straddling,
    // past it; indirect ones move with the IP header length).
    "ether[12:2] = 0x0800 and ether[60:4] != 0",
    "ether[12:2] = 0x0800 and ether[61:4] != 0",
    "ip and ether[63] != 0 and ether[64] != 0",
    "tcp[28:2] = 0 or tcp[29:2] = 1",
    "tcp[46:4] != 0x01020304 and tcp[12] > 0",
    "ip6[40:4] != 0 and ip6[48:4] != 0",
    "udp[0:4] != 0 and less 62",
    // Arithmetic.
    "ip[2:2] - ((ip[0]&0xf)<<2) > 100",
    "ip[2:2] * 2 > 200",
    "ip[2:2] / 4 > 10",
    "ip[2:2] % 7 = 3",
    "ip[8] ^ 0xff > 200",
    "ip[8] | 0x80 = 0xc0",
    "ip[2:2] + 14 = len",
    "ip[2:2] / ip[8] > 1",
    "-ip[8] < 0xffffff80",
    // Lengths.
    "len > 100",
    "len <= 64",
    "greater 200",
    "less 60",
    "len = 60",
    // VLAN.
    "vlan",
    "vlan 100",
    "vlan 4094",
    "vlan and ip",
    "vlan 10 and tcp",
    "vlan and vlan",
    "vlan and ip6 and udp port 53",
    // ARP and Ethernet.
    "arp host 10.0.0.1",
    "arp[6:2] = 1",
    "arp[6:2] = 2",
    "ether host ff:ff:ff:ff:ff:ff",
    "ether broadcast",
    "ether multicast",
    "ether proto 0x0806",
    "ether src 02:00:00:00:00:01",
    "ether dst 02:00:00:00:00:02 and ip",
    "ether[12:2] = 0x8100",
    // Multicast.
    "ip multicast",
    "ip6 multicast",
    // Fragments.
    "ip[6:2] & 0x3fff != 0",
    "ip[6] & 0x20 != 0",
    "ip6[6] = 44",
    // Combinations and negations.
    "ip6 and tcp",
    "ip6 and udp port 53",
    "not port 22",
    "not (tcp or udp)",
    "host 10.0.0.1 and (port 80 or port 443)",
    "(src net 10.0.0.0/8 and not dst host 10.0.0.2) or icmp6",
    "!arp && !ip6",
    "tcp and not tcp[tcpflags] & tcp-ack != 0",
    "udp and (port 53 or portrange 1024-1100) and not ip6",
    "ip and ip[6:2] & 0x1fff = 0 and tcp dst port 443",
    "(tcp or udp) and (src port 1024 or dst portrange 49152-65535)",
    // Always true / always false. Filters libpcap's optimizer proves false (`tcp and udp`,
    // `ip and ip6`) fail to compile with "expression rejects all packets", so these are false
    // only at run time.
    "ip or not ip",
    "len < 0",
    "tcp and ip[9] = 17",
    "ip[0] & 0x10 = 0x20",
];

// ---------------------------------------------------------------------------------------------
// Random expressions

const RELOPS: [&str; 7] = ["=", "==", "!=", "<", "<=", ">", ">="];
const NETS: [&str; 8] = [
    "10.0.0.0/8",
    "10.0.0.0/24",
    "192.168.1.0/24",
    "172.16.0.0/12",
    "8.8.8.0/24",
    "fd00::/16",
    "2001:db8::/32",
    "fe80::/10",
];

/// A random but valid-syntax tcpdump expression, combining atoms with and/or/not and parentheses (depth ≤ 3).
///
/// Atoms draw addresses, ports and numbers from the packet pools so that they match some packets.
/// A few atoms (`vlan`, `ether`, `arp`) only compile for Ethernet; callers skip what libpcap refuses.
pub fn random_expression(rng: &mut Rng) -> String {
    expression(rng, 3)
}

fn expression(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.chance(25) {
        return atom(rng);
    }
    // Both spellings of each operator, since libpcap's lexer has both.
    let and = *rng.pick(&["and", "&&"]);
    let or = *rng.pick(&["or", "||"]);
    let not = *rng.pick(&["not", "!"]);
    match rng.below(5) {
        0 => format!(
            "({}) {and} ({})",
            expression(rng, depth - 1),
            expression(rng, depth - 1)
        ),
        1 => format!(
            "({}) {or} ({})",
            expression(rng, depth - 1),
            expression(rng, depth - 1)
        ),
        2 => format!("{not} ({})", expression(rng, depth - 1)),
        // Without parentheses, relying on libpcap's precedence: `not` binds tightest, `and` and
        // `or` bind equally and associate to the left.
        3 => format!("{} {and} {not} {}", atom(rng), atom(rng)),
        _ => format!("{} {or} {} {and} {}", atom(rng), atom(rng), atom(rng)),
    }
}

fn atom(rng: &mut Rng) -> String {
    let op = *rng.pick(&RELOPS);
    // Most arithmetic atoms start from a packet load; constants are sized to what the
    // arithmetic can produce from it, so that comparisons go either way.
    let (x, bits) = load(rng);
    // Qualifiers of host, net and port atoms; the unqualified forms are the most common.
    let dir = *rng.pick(&["", "", "src ", "dst "]);
    let via = *rng.pick(&["", "", "tcp ", "udp "]);
    match rng.below(31) {
        0 | 1 => format!("{dir}host {}", address(rng)),
        2 => format!("{dir}net {}", rng.pick(&NETS)),
        3 | 4 => format!("{via}{dir}port {}", random_port(rng)),
        5 => {
            let low = random_port(rng);
            let high = low.saturating_add(rng.below(300) as u16);
            format!("{via}{dir}portrange {low}-{high}")
        }
        6 | 7 => rng.pick(&PROTOCOLS).to_string(),
        8 => match rng.below(6) {
            0 => "vlan".to_string(),
            1 => format!("vlan {}", random_vid(rng)),
            2 => "arp".to_string(),
            3 => "ether broadcast".to_string(),
            4 => "ether multicast".to_string(),
            _ => {
                let mac = *rng.pick(&[MAC_A, MAC_B, MAC_R]);
                format!("ether host {}", mac_string(&mac))
            }
        },
        9 | 10 => format!("ip[{}] {op} {}", rng.below(25), number(rng, 8)),
        11 => format!("ip[{}:2] & {} != 0", rng.below(23), mask(rng, 16)),
        12 | 13 => {
            let size = *rng.pick(&[1, 2, 4]);
            let proto = *rng.pick(&["tcp", "tcp", "udp", "icmp", "ip6"]);
            let n = number(rng, 8 * size);
            format!("{proto}[{}:{size}] {op} {n}", rng.below(21))
        }
        14 => {
            const LENGTHS: [u32; 12] = [0, 14, 34, 54, 60, 64, 100, 128, 200, 576, 1000, 1514];
            format!("len {op} {}", rng.pick(&LENGTHS))
        }
        15 => format!("{} {}", rng.pick(&["greater", "less"]), rng.range(0, 1600)),
        16 => {
            let (y, y_bits) = load(rng);
            format!("{x} + {y} {op} {}", number(rng, bits.max(y_bits) + 1))
        }
        // Differences and negations mostly wrap around below zero.
        17 => format!("{x} - {} {op} {}", load(rng).0, number(rng, 32)),
        18 => format!("{x} * {} {op} {}", rng.range(0, 16), number(rng, bits + 4)),
        // Division and modulo by a literal 0 are compile errors, so the literal is never 0 ...
        19 => format!("{x} / {} {op} {}", rng.range(1, 16), number(rng, bits)),
        20 => format!("{x} % {} {op} {}", rng.range(1, 16), number(rng, 4)),
        // ... but a divisor read from the packet may be 0 at run time, and the filter must reject.
        21 => format!("ip[2:2] / {} > 1", divisor(rng)),
        22 => format!("{x} % {} {op} {}", divisor(rng), number(rng, bits)),
        23 => {
            let shift = rng.range(0, 8) as u32;
            format!("{x} << {shift} {op} {}", number(rng, bits + shift))
        }
        24 => {
            let shift = rng.range(0, 8) as u32;
            format!(
                "{x} >> {shift} {op} {}",
                number(rng, bits.saturating_sub(shift))
            )
        }
        25 => {
            let m = mask(rng, bits);
            format!("{x} & {m} = {m}")
        }
        26 => format!("{x} | {} {op} {}", mask(rng, bits), number(rng, bits)),
        27 => format!("{x} ^ {} {op} {}", mask(rng, bits), number(rng, bits)),
        28 => format!("-{x} {op} {}", number(rng, 32)),
        // A shift count read from the packet may be 32 or more: libpcap then gives 0.
        29 => {
            let dir = rng.pick(&["<<", ">>"]);
            format!("{x} {dir} {} {op} {}", load(rng).0, number(rng, 32))
        }
        _ => format!("({x} & 0xf) << 2 {op} {}", number(rng, 6)),
    }
}

const PROTOCOLS: [&str; 12] = [
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "sctp",
    "igmp",
    "ip proto 47",
    "ip6 proto 58",
    "ip proto 132",
    "ip6 proto 0",
];

/// A packet load for arithmetic, mostly from the IP header, with one of the widths libpcap
/// allows; and that width in bits.
fn load(rng: &mut Rng) -> (String, u32) {
    let size = *rng.pick(&[1, 1, 2, 4]);
    let proto = *rng.pick(&["ip", "ip", "ip", "tcp", "udp"]);
    let offset = rng.below(25);
    let text = if size == 1 && rng.chance(50) {
        format!("{proto}[{offset}]")
    } else {
        format!("{proto}[{offset}:{size}]")
    };
    (text, 8 * size)
}

/// A load to divide by. Never at offset 0: libpcap 1.10 mistakes the constant 0 index for a
/// zero divisor and refuses to compile (`ip[2:2] / ip[0] > 1` is a "division by zero").
fn divisor(rng: &mut Rng) -> String {
    let size = *rng.pick(&[1, 1, 2]);
    let proto = *rng.pick(&["ip", "ip", "tcp", "udp"]);
    format!("{proto}[{}:{size}]", rng.range(1, 24))
}

fn address(rng: &mut Rng) -> String {
    if rng.chance(60) {
        rng.pick(&V4_POOL).to_string()
    } else {
        rng.pick(&V6_POOL).to_string()
    }
}

/// A comparison constant below 2^`bits` (at most 32 bits): mostly values that occur in the
/// corpus headers, otherwise anything; in decimal or hexadecimal.
fn number(rng: &mut Rng, bits: u32) -> String {
    const INTERESTING: [u64; 20] = [
        0, 1, 2, 5, 6, 8, 17, 18, 20, 40, 0x45, 58, 60, 64, 0x80, 128, 255, 443, 1500, 0x4000,
    ];
    let limit = 1u64 << bits.clamp(1, 32);
    let n = if rng.chance(60) {
        let fitting: Vec<u64> = INTERESTING.into_iter().filter(|&n| n < limit).collect();
        *rng.pick(&fitting)
    } else {
        rng.below(limit)
    };
    if rng.chance(30) {
        format!("{n:#x}")
    } else {
        n.to_string()
    }
}

/// A bit mask below 2^`bits`.
fn mask(rng: &mut Rng, bits: u32) -> String {
    const MASKS: [u64; 11] = [
        0x1,
        0x2,
        0x0f,
        0xf0,
        0x3f,
        0xff,
        0x1fff,
        0x3fff,
        0xe000,
        0xffff,
        0x00ff_0000,
    ];
    let limit = 1u64 << bits.clamp(1, 32);
    let fitting: Vec<u64> = MASKS.into_iter().filter(|&m| m < limit).collect();
    format!("{:#x}", rng.pick(&fitting))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_large_deterministic_and_covers_the_cases() {
        let corpus = packets(42);
        assert!(corpus.len() >= 200, "only {} packets", corpus.len());
        assert_eq!(corpus, packets(42));
        assert_ne!(corpus, packets(43));
        let outer_type = |p: &Packet| be16(&p.frame, 12);
        for (ethertype, what) in [
            (TPID_1Q, "VLAN"),
            (TPID_1AD, "QinQ"),
            (ETH_ARP, "ARP"),
            (ETH_IP6, "IPv6"),
        ] {
            let found = corpus.iter().any(|p| outer_type(p) == Some(ethertype));
            assert!(found, "no {what} frame");
        }
        let truncated = |p: &&Packet| p.desc.contains("trunc@");
        assert!(corpus.iter().filter(truncated).any(|p| p.frame.len() < 34));
        assert!(corpus.iter().any(|p| p.frame.is_empty()), "no empty frame");
        assert!(
            corpus.iter().all(|p| p.frame.len() <= 1522),
            "frame longer than a tagged MTU"
        );
    }

    #[test]
    fn l3_strips_ethernet_and_tags() {
        let corpus = packets(42);
        let tcp4 = corpus
            .iter()
            .find(|p| p.desc.starts_with("v4 tcp") && !p.desc.contains("vlan"))
            .unwrap();
        assert_eq!(tcp4.l3().unwrap()[0], 0x45);
        assert_eq!(tcp4.l3().unwrap().len(), tcp4.frame.len() - 14);
        let tagged = corpus
            .iter()
            .find(|p| p.desc.starts_with("v4") && p.desc.ends_with("vlan100"))
            .unwrap();
        assert_eq!(tagged.l3().unwrap()[0] >> 4, 4);
        let v6 = corpus
            .iter()
            .find(|p| p.desc.starts_with("v6 tcp"))
            .unwrap();
        assert_eq!(v6.l3().unwrap()[0] >> 4, 6);
        let arp = corpus.iter().find(|p| p.desc.starts_with("arp")).unwrap();
        assert_eq!(arp.l3(), None);
        let short = Packet {
            desc: String::new(),
            frame: tcp4.frame[..14].to_vec(),
        };
        assert_eq!(short.l3(), None);
    }

    #[test]
    fn ipv4_headers_have_valid_checksums_and_lengths() {
        for p in packets(7)
            .iter()
            .filter(|p| !p.desc.contains("trunc@") && !p.desc.contains("malformed"))
        {
            let Some(ip) = p.l3().filter(|ip| ip[0] >> 4 == 4) else {
                continue;
            };
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            assert_eq!(inet_checksum(&[&ip[..header_len]]), 0, "{}", p.desc);
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let padded = p.desc.ends_with(" pad") && ip.len() > total;
            assert!(
                total == ip.len() || padded,
                "{}: total {total}, have {}",
                p.desc,
                ip.len()
            );
        }
    }

    #[test]
    fn expressions_are_many_and_distinct() {
        assert!(EXPRESSIONS.len() >= 70);
        let mut sorted = EXPRESSIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), EXPRESSIONS.len(), "duplicate expression");
    }

    #[test]
    fn random_expressions_are_deterministic_and_never_divide_by_literal_zero() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..500)
                .map(|_| random_expression(&mut rng))
                .collect::<Vec<_>>()
        };
        let exprs = draw(1);
        assert_eq!(exprs, draw(1));
        assert_ne!(exprs, draw(2));
        for e in &exprs {
            assert!(!e.contains("/ 0 ") && !e.contains("% 0 "), "{e}");
            assert_eq!(e.matches('(').count(), e.matches(')').count(), "{e}");
        }
    }
}
