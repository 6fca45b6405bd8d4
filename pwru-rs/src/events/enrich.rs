//! Decoded record → [`Event`]: hook and drop-reason names, the wall clock, per-skb relative
//! times. The only stage that keeps state across events.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use pwru_rs_common::record::{
    HOOK_BPF_PROG, HOOK_COOKIE, HOOK_FUNC_IP, HOOK_NFT_DO_CHAIN, IP_V4, IP_V6, META_HAS_DEV,
    META_HAS_REASON, META_HAS_STACK, META_HAS_VERDICT, META_STACK_FAILED, TRACKED_BY_FILTER,
    TRACKED_BY_SKB, TRACKED_BY_STACKID, TRACKED_BY_XDP,
};

use super::{
    decode::Record,
    stacks::{self, Stacks},
    BpfMapAccess, Event, Hook, MetadataField, NetfilterChain, Reason, SkbMetadata, Stack, Stamp,
    TrackedBy, Tuple, Verdict, XdpPacket,
};
use crate::{btf::DropReasons, cli::TimestampChoice, netns_names::NetnsNames, output::WallClock};

/// Names of the hooks a backend attached, by what the kernel side reports (`Meta::hook_kind`).
#[derive(Debug, Clone, Default)]
pub struct HookTable {
    /// By BPF cookie: the index of the attachment.
    by_cookie: Vec<String>,
    /// By probed function address, sorted.
    by_address: Vec<(u64, String)>,
}

/// `bpf_get_func_ip` may point a few bytes past the symbol (e.g. after an `endbr64`).
const MAX_IP_OFFSET: u64 = 16;

impl HookTable {
    /// Hooks named by their attachment's cookie, `names[cookie]`.
    pub fn by_cookie(names: Vec<String>) -> Self {
        Self {
            by_cookie: names,
            by_address: Vec::new(),
        }
    }

    /// Hooks named by the address of the function they probe.
    pub fn by_address(mut functions: Vec<(u64, String)>) -> Self {
        functions.sort_unstable();
        Self {
            by_cookie: Vec::new(),
            by_address: functions,
        }
    }

    #[inline]
    pub fn name(&self, kind: u8, hook: u64) -> Option<&str> {
        match kind {
            HOOK_COOKIE => self.by_cookie.get(hook as usize).map(String::as_str),
            HOOK_NFT_DO_CHAIN => Some("nft_do_chain"),
            HOOK_FUNC_IP | HOOK_BPF_PROG => {
                let at = self
                    .by_address
                    .partition_point(|(addr, _)| *addr <= hook)
                    .checked_sub(1)?;
                let (addr, name) = &self.by_address[at];
                (hook - addr <= MAX_IP_OFFSET).then_some(name.as_str())
            }
            _ => None,
        }
    }

    /// Adds hooks named by address (traced BPF programs) to the table.
    pub fn add_addresses(&mut self, functions: impl IntoIterator<Item = (u64, String)>) {
        self.by_address.extend(functions);
        self.by_address.sort_unstable();
    }

    /// Whether a hook of this name is attached.
    pub fn contains(&self, name: &str) -> bool {
        self.by_cookie
            .iter()
            .chain(self.by_address.iter().map(|(_, n)| n))
            .any(|n| n == name)
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.by_cookie.len() + self.by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Enricher {
    hooks: HookTable,
    drop_reasons: DropReasons,
    timestamp: TimestampChoice,
    clock: WallClock,
    /// `--timestamp relative`: the previous event's time per skb address.
    last_seen: HashMap<u64, u64>,
    /// `--output-tcp-flags`: tuples of TCP packets carry their flags.
    tcp_flags: bool,
    /// `--output-netns-names`.
    netns_names: Option<NetnsNames>,
    pods: Option<crate::pod::PodNames>,
    /// `--output-stack` / `--output-caller`.
    stacks: Option<Stacks>,
    show_stack: bool,
    show_caller: bool,
    /// `--output-skb-metadata` / `--output-xdp-metadata`: how to read the values' section of an
    /// skb's / an XDP packet's record.
    metadata: Vec<MetadataField>,
    xdp_metadata: Vec<MetadataField>,
}

/// A record's tuple, resolved; `None` for an IP version it does not know.
fn tuple_of(t: &pwru_rs_common::record::Tuple, tcp_flags: bool) -> Option<Tuple> {
    let (saddr, daddr) = match t.ip_version {
        IP_V4 => (v4(&t.saddr), v4(&t.daddr)),
        IP_V6 => (
            IpAddr::V6(Ipv6Addr::from(t.saddr)),
            IpAddr::V6(Ipv6Addr::from(t.daddr)),
        ),
        _ => return None,
    };
    Some(Tuple {
        saddr,
        daddr,
        sport: t.sport,
        dport: t.dport,
        proto: t.l4_proto,
        tcp_flags: (tcp_flags && t.l4_proto == IPPROTO_TCP).then_some(t.tcp_flags),
    })
}

/// Bounds the relative-timestamp table: skb addresses are recycled, so old entries only cost memory.
const LAST_SEEN_MAX: usize = 1 << 20;

impl Enricher {
    pub fn new(
        hooks: HookTable,
        drop_reasons: DropReasons,
        timestamp: TimestampChoice,
        clock: WallClock,
    ) -> Self {
        Self {
            hooks,
            drop_reasons,
            timestamp,
            clock,
            last_seen: HashMap::new(),
            tcp_flags: false,
            netns_names: None,
            pods: None,
            stacks: None,
            show_stack: false,
            show_caller: false,
            metadata: Vec::new(),
            xdp_metadata: Vec::new(),
        }
    }

    /// With `--output-skb-metadata` / `--output-xdp-metadata`: the fields of the values'
    /// section, for skbs and for XDP packets.
    pub fn with_skb_metadata(mut self, skb: Vec<MetadataField>, xdp: Vec<MetadataField>) -> Self {
        self.metadata = skb;
        self.xdp_metadata = xdp;
        self
    }

    /// With `--output-netns-names`: events carry their netns's name from this cache.
    /// JSON `pod` / `k8s_namespace` (on a Kubernetes node).
    pub fn with_pods(mut self, pods: Option<crate::pod::PodNames>) -> Self {
        self.pods = pods;
        self
    }

    pub fn with_netns_names(mut self, names: Option<NetnsNames>) -> Self {
        self.netns_names = names;
        self
    }

    /// With `--output-stack` / `--output-caller`: stacks and callers resolved through `stacks`.
    pub fn with_stacks(
        mut self,
        stacks: Option<Stacks>,
        show_stack: bool,
        show_caller: bool,
    ) -> Self {
        self.stacks = stacks;
        self.show_stack = show_stack;
        self.show_caller = show_caller;
        self
    }

    /// With `--output-tcp-flags`: the kernel side reads them, the tuple shows them.
    pub fn with_tcp_flags(mut self, on: bool) -> Self {
        self.tcp_flags = on;
        self
    }

    #[inline]
    pub fn enrich<'a>(&'a mut self, record: &Record<'a>) -> Event<'a> {
        let m = record.meta;
        let stack_id = (m.flags & META_HAS_STACK != 0).then_some(m.stack_id);
        if let (Some(stacks), Some(id)) = (&mut self.stacks, stack_id) {
            stacks.load(id);
        }
        let time = self.stamp(m.skb, m.ts_ns);
        let netns_name = match &mut self.netns_names {
            Some(names) => names.lookup(m.netns),
            None => None,
        };
        let pod = match &mut self.pods {
            Some(pods) => pods.lookup(m.netns),
            None => None,
        };
        let hook = match self.hooks.name(m.hook_kind, m.hook) {
            Some(name) => Hook::Known(name),
            None => Hook::Unknown(m.hook),
        };
        let reason = (m.flags & META_HAS_REASON != 0).then(|| Reason {
            code: m.reason,
            name: self.drop_reasons.name(m.reason),
        });
        let xdp = record.xdp.map(|x| XdpPacket {
            rx_queue: x.rx_queue,
        });
        let netfilter = record.netfilter.map(|nf| NetfilterChain {
            family: NetfilterChain::family_name(nf.family),
            table: before_nul(&nf.table),
            chain: before_nul(&nf.chain),
            hook: NetfilterChain::hook_name(nf.pf, nf.hook),
            priority: nf.priority,
        });
        let verdict = (m.flags & META_HAS_VERDICT != 0).then(|| {
            let code = m.verdict as i32;
            if netfilter.is_some() {
                Verdict::netfilter(code)
            } else if xdp.is_some() {
                Verdict::xdp(code)
            } else {
                Verdict::tc(code)
            }
        });
        let ifname = if m.flags & META_HAS_DEV != 0 {
            until_nul(&m.ifname)
        } else {
            b""
        };
        let mut event = Event {
            skb: m.skb,
            cpu: m.cpu,
            pid: m.pid,
            comm: until_nul(&m.comm),
            hook,
            reason,
            verdict,
            xdp,
            ts_ns: m.ts_ns,
            time,
            netns: m.netns,
            netns_name,
            mark: m.mark,
            ifindex: m.ifindex,
            ifname,
            mtu: m.mtu,
            len: m.len,
            protocol: m.protocol,
            tuple: record.tuple.and_then(|t| tuple_of(t, self.tcp_flags)),
            cb: record.cb.map(|cb| cb.words),
            skb_dump: record.skb_dump,
            shinfo_dump: record.shinfo_dump,
            tracked_by: match m.tracked_by {
                TRACKED_BY_FILTER => Some(TrackedBy::Filter),
                TRACKED_BY_SKB => Some(TrackedBy::Skb),
                TRACKED_BY_STACKID => Some(TrackedBy::Stackid),
                TRACKED_BY_XDP => Some(TrackedBy::Xdp),
                _ => None,
            },
            parent_skb: (m.parent_skb != 0).then_some(m.parent_skb),
            stack: None,
            caller: None,
            packet: record.packet,
            tunnel_tuple: record
                .tunnel_tuple
                .and_then(|t| tuple_of(t, self.tcp_flags)),
            netfilter,
            pod,
            bpf_map: record.bpf_map.map(|m| {
                let cut = |bytes: &'a [u8; pwru_rs_common::record::BPF_MAP_BYTES], size: u32| {
                    &bytes[..(size as usize).min(bytes.len())]
                };
                BpfMapAccess {
                    op: BpfMapAccess::op_name(m.op),
                    id: m.id,
                    name: before_nul(&m.name),
                    key_size: m.key_size,
                    value_size: m.value_size,
                    key: cut(&m.key, m.key_size),
                    value: (m.has_value != 0).then(|| cut(&m.value, m.value_size)),
                    ret: m.ret,
                }
            }),
            skb_metadata: record.skb_metadata.map(|words| SkbMetadata::Words {
                fields: if record.xdp.is_some() {
                    &self.xdp_metadata
                } else {
                    &self.metadata
                },
                words,
            }),
        };
        if let Some(stacks) = &self.stacks {
            let stack = match stack_id {
                Some(id) => Some(stacks.get(id)),
                None if m.flags & META_STACK_FAILED != 0 => {
                    Some(Stack::Failed(Stacks::failure(m.stack_id)))
                }
                None => None,
            };
            if self.show_caller {
                event.caller = match (m.caller, stack) {
                    (0, Some(Stack::Frames(frames))) => stacks::tracepoint_caller(frames),
                    (0, _) => None,
                    (addr, _) => stacks.function_at(addr),
                };
            }
            if self.show_stack {
                event.stack = stack;
            }
        }
        event
    }

    fn stamp(&mut self, skb: u64, ts_ns: u64) -> Stamp {
        match self.timestamp {
            TimestampChoice::None => Stamp::None,
            TimestampChoice::Current => Stamp::Nanos(ts_ns),
            TimestampChoice::Absolute => Stamp::Wall(self.clock.wall_ns(ts_ns)),
            TimestampChoice::Relative => {
                if self.last_seen.len() >= LAST_SEEN_MAX {
                    self.last_seen.clear();
                }
                let previous = self.last_seen.insert(skb, ts_ns);
                Stamp::Nanos(previous.map_or(0, |p| ts_ns.saturating_sub(p)))
            }
        }
    }
}

const IPPROTO_TCP: u8 = 6;

fn v4(addr: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
}

/// The bytes before the first NUL (all 16 without one), found in one 128-bit word: this runs
/// twice per event.
#[inline]
/// The bytes before the first NUL (all of them without one).
fn before_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

fn until_nul(bytes: &[u8; 16]) -> &[u8] {
    const ONES: u128 = u128::from_le_bytes([0x01; 16]);
    const HIGHS: u128 = u128::from_le_bytes([0x80; 16]);
    let v = u128::from_le_bytes(*bytes);
    // The lowest set high bit marks the first zero byte (bits above it may be false positives).
    let zeros = v.wrapping_sub(ONES) & !v & HIGHS;
    let len = (zeros.trailing_zeros() / 8) as usize;
    &bytes[..len.min(16)]
}

#[cfg(test)]
mod tests {
    use pwru_rs_common::record::{Meta, Tuple as WireTuple};

    use super::*;

    fn enricher(timestamp: TimestampChoice) -> Enricher {
        Enricher::new(
            HookTable::by_cookie(vec!["net_dev_queue".into(), "kfree_skb".into()]),
            [(3, "SKB_DROP_REASON_NO_SOCKET".to_string())]
                .into_iter()
                .collect(),
            timestamp,
            WallClock::fixed(1_000, 0),
        )
    }

    fn meta(skb: u64, ts_ns: u64) -> Meta {
        let mut comm = [0; 16];
        comm[..3].copy_from_slice(b"dig");
        let mut ifname = [0; 16];
        ifname[..5].copy_from_slice(b"veth0");
        Meta {
            skb,
            ts_ns,
            hook_kind: HOOK_COOKIE,
            comm,
            ifname,
            flags: META_HAS_DEV,
            ..Default::default()
        }
    }

    fn record<'a>(meta: &'a Meta, tuple: Option<&'a WireTuple>) -> Record<'a> {
        Record {
            meta,
            tuple,
            cb: None,
            skb_dump: None,
            shinfo_dump: None,
            xdp: None,
            packet: None,
            skb_metadata: None,
            tunnel_tuple: None,
            netfilter: None,
            bpf_map: None,
        }
    }

    #[test]
    fn names_hooks_by_cookie_or_address() {
        let hooks = HookTable::by_address(vec![(0x2000, "b".into()), (0x1000, "a".into())]);
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0x1000), Some("a"));
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0x1004), Some("a"));
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0x1100), None);
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0x0fff), None);
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0x2000), Some("b"));
        assert_eq!(hooks.name(HOOK_COOKIE, 0), None, "no cookie table");
        let hooks = HookTable::by_cookie(vec!["x".into()]);
        assert_eq!(hooks.name(HOOK_COOKIE, 0), Some("x"));
        // Traced BPF programs join a table of either kind, named by address.
        let mut hooks = hooks;
        hooks.add_addresses([(0x5000, "cil_from_container".into())]);
        assert_eq!(
            hooks.name(HOOK_BPF_PROG, 0x5000),
            Some("cil_from_container")
        );
        assert_eq!(hooks.name(HOOK_COOKIE, 0), Some("x"));
        assert!(hooks.contains("cil_from_container"));
        assert_eq!(hooks.name(HOOK_FUNC_IP, 0), None);
        assert_eq!(hooks.name(0, 0), None, "unknown hook kind");
    }

    #[test]
    fn resolves_names_reasons_devices_and_tuples() {
        let mut e = enricher(TimestampChoice::None);
        let mut m = meta(0xffff_0001, 5);
        m.hook = 1;
        m.flags |= META_HAS_REASON;
        m.reason = 3;
        let mut t = WireTuple {
            ip_version: IP_V4,
            l4_proto: 17,
            sport: 4242,
            dport: 53,
            saddr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        let ev = e.enrich(&record(&m, Some(&t)));
        assert_eq!(ev.hook, Hook::Known("kfree_skb"));
        assert_eq!(
            ev.reason,
            Some(Reason {
                code: 3,
                name: Some("SKB_DROP_REASON_NO_SOCKET")
            })
        );
        assert_eq!((ev.comm, ev.ifname), (&b"dig"[..], &b"veth0"[..]));
        let resolved = ev.tuple.unwrap();
        assert_eq!(
            (
                resolved.saddr.to_string(),
                resolved.daddr.to_string(),
                resolved.sport,
                resolved.dport,
                resolved.proto
            ),
            ("10.0.0.1".into(), "10.0.0.2".into(), 4242, 53, 17)
        );

        m.flags = META_HAS_REASON; // no device: its name is not shown
        m.hook = 77;
        m.reason = 999;
        t.ip_version = 0;
        let ev = e.enrich(&record(&m, Some(&t)));
        assert_eq!(ev.hook, Hook::Unknown(77));
        assert_eq!(ev.reason.unwrap().name, None);
        assert_eq!(ev.ifname, b"");
        assert_eq!(ev.tuple, None);
    }

    #[test]
    fn names_end_at_the_first_nul() {
        let name = |s: &[u8]| {
            let mut b = [0u8; 16];
            b[..s.len()].copy_from_slice(s);
            b
        };
        assert_eq!(until_nul(&name(b"")), b"");
        assert_eq!(until_nul(&name(b"dig")), b"dig");
        assert_eq!(until_nul(&[b'x'; 16]), [b'x'; 16]);
        let mut odd = name(b"a\x01\x80b");
        odd[6] = 0xff; // after the NUL: ignored
        assert_eq!(until_nul(&odd), b"a\x01\x80b");
        for len in 0..16 {
            let mut b = [0xffu8; 16];
            b[len] = 0;
            assert_eq!(until_nul(&b).len(), len);
        }
    }

    #[test]
    fn relative_timestamps_are_per_skb() {
        let mut e = enricher(TimestampChoice::Relative);
        let (a, b) = (0xffff_0100, 0xffff_0200);
        let times: Vec<_> = [(a, 1_000), (b, 1_500), (a, 1_700), (b, 2_000), (a, 2_900)]
            .into_iter()
            .map(|(skb, ts)| e.enrich(&record(&meta(skb, ts), None)).time)
            .collect();
        let ns = Stamp::Nanos;
        assert_eq!(times, [ns(0), ns(0), ns(700), ns(500), ns(1_200)]);
    }

    #[test]
    fn current_and_absolute_timestamps() {
        let m = meta(1, 5_000);
        let r = record(&m, None);
        assert_eq!(
            enricher(TimestampChoice::Current).enrich(&r).time,
            Stamp::Nanos(5_000)
        );
        assert_eq!(
            enricher(TimestampChoice::Absolute).enrich(&r).time,
            Stamp::Wall(6_000)
        );
        assert_eq!(enricher(TimestampChoice::None).enrich(&r).time, Stamp::None);
    }
}
