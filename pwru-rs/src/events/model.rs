//! The resolved event: what one hit of a hook on an skb means, with names instead of numbers.
//! Built by the [`Enricher`](super::Enricher) from a decoded record; every output format (text,
//! JSON, and the ones to come) reads only this. It borrows from the record and from the
//! enricher's tables, so building one allocates nothing.

use std::net::IpAddr;

pub use super::stacks::{Frame, Stack};
pub use crate::expr::ValueKind;

/// One event, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Address of the `struct sk_buff`.
    pub skb: u64,
    pub cpu: u32,
    /// Task on the CPU (in softirq often not the sender), as in pwru.
    pub pid: u32,
    /// Its name, raw bytes up to the first NUL (kernel names may hold any byte).
    pub comm: &'a [u8],
    /// The kernel function or tracepoint that fired.
    pub hook: Hook<'a>,
    /// The drop reason, for hooks that report one.
    pub reason: Option<Reason<'a>>,
    /// A traced BPF program's return value, at its exit (`--filter-trace-tc`/`-xdp`).
    pub verdict: Option<Verdict>,
    /// What an XDP program's packet has besides the rest (`--filter-trace-xdp`); `skb` is then
    /// the `xdp_buff`'s address.
    pub xdp: Option<XdpPacket>,
    /// Kernel monotonic time of the hit (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// The time as `--timestamp` asks for it.
    pub time: Stamp,
    /// Network namespace inode.
    pub netns: u32,
    /// Its name (ip-netns name, else `comm:pid` of a process in it), with `--output-netns-names`.
    pub netns_name: Option<&'a str>,
    pub mark: u32,
    /// 0 when the skb has no device yet.
    pub ifindex: u32,
    /// Empty when the skb has no device.
    pub ifname: &'a [u8],
    pub mtu: u32,
    pub len: u32,
    /// `skb->protocol` (an ethertype).
    pub protocol: u16,
    /// `None` when no IPv4/IPv6 header could be read at this point.
    pub tuple: Option<Tuple>,
    /// `skb->cb` as `__sk_buff->cb[5]` (`--output-skb-cb`).
    pub cb: Option<[u32; 5]>,
    /// `struct sk_buff` as the kernel printed it (`--output-skb`).
    pub skb_dump: Option<Dump<'a>>,
    /// `struct skb_shared_info` as the kernel printed it (`--output-skb-shared-info`).
    pub shinfo_dump: Option<Dump<'a>>,
    /// Why the event was traced, with `--filter-track-skb`; `None` without.
    pub tracked_by: Option<TrackedBy>,
    /// The skb this one was cloned or copied from, when tracking followed the copy.
    pub parent_skb: Option<u64>,
    /// The kernel stack, with `--output-stack`.
    pub stack: Option<Stack<'a>>,
    /// The calling function, with `--output-caller` (when it could be found).
    pub caller: Option<&'a str>,
    /// The packet's first bytes, with `--output-pcap`.
    pub packet: Option<PacketBytes<'a>>,
    /// `--output-skb-metadata` values.
    pub skb_metadata: Option<SkbMetadata<'a>>,
    /// `--output-tunnel`: a tunnel packet's inner tuple; `None` for other packets.
    pub tunnel_tuple: Option<Tuple>,
    /// `--output-netfilter`: at `nft_do_chain`'s entry and exit, the base chain it runs (at
    /// the exit `verdict` is the chain's), and at a drop inside a chain, that chain; `None`
    /// elsewhere.
    pub netfilter: Option<NetfilterChain<'a>>,
    /// `--output-bpfmap`: the map operation a traced BPF program made (the event of its
    /// function's exit); `None` elsewhere.
    pub bpf_map: Option<BpfMapAccess<'a>>,
    /// On a Kubernetes node, the `(namespace, name)` of the pod whose netns this is.
    pub pod: Option<(&'a str, &'a str)>,
}

/// A map operation of a traced BPF program: the map, the key, and the value given (update) or
/// found (lookup). Key and value are cut to `record::BPF_MAP_BYTES`; the sizes are the map's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfMapAccess<'a> {
    /// `lookup`, `update` or `delete`.
    pub op: &'a str,
    pub id: u32,
    /// Raw bytes up to the first NUL.
    pub name: &'a [u8],
    pub key_size: u32,
    pub value_size: u32,
    pub key: &'a [u8],
    /// `None` for a delete, and a lookup that found nothing.
    pub value: Option<&'a [u8]>,
    /// The operation's return value (0 or `-errno`; a lookup's is 0).
    pub ret: i32,
}

impl BpfMapAccess<'_> {
    /// The name of `record::BPF_MAP_*`.
    pub fn op_name(op: u8) -> &'static str {
        match op {
            pwru_rs_common::record::BPF_MAP_LOOKUP => "lookup",
            pwru_rs_common::record::BPF_MAP_UPDATE => "update",
            pwru_rs_common::record::BPF_MAP_DELETE => "delete",
            _ => "unknown",
        }
    }
}

/// An nftables base chain a packet went through (iptables-nft's chains are nftables chains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetfilterChain<'a> {
    /// The table's family as nft names it: `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: &'a str,
    /// Raw bytes up to the first NUL (cut to 31 bytes by the kernel side).
    pub table: &'a [u8],
    pub chain: &'a [u8],
    /// The hook as nft names it: `prerouting`, `input`, `forward`, `output`, `postrouting`,
    /// `ingress`, `egress`.
    pub hook: &'a str,
    pub priority: i32,
}

impl NetfilterChain<'_> {
    /// As nft lists it: `inet filter input`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.family,
            String::from_utf8_lossy(self.table),
            String::from_utf8_lossy(self.chain)
        )
    }

    /// nft's name of an `NFPROTO_*` table family.
    pub fn family_name(family: u8) -> &'static str {
        match family {
            1 => "inet",
            2 => "ip",
            3 => "arp",
            5 => "netdev",
            7 => "bridge",
            10 => "ip6",
            _ => "unknown",
        }
    }

    /// nft's name of hook `hook` of protocol family `pf` (`nf_hook_state`'s).
    pub fn hook_name(pf: u8, hook: u8) -> &'static str {
        const INET: [&str; 6] = [
            "prerouting",
            "input",
            "forward",
            "output",
            "postrouting",
            "ingress",
        ];
        let names: &[&str] = match pf {
            // NFPROTO_NETDEV
            5 => &["ingress", "egress"],
            // NFPROTO_ARP
            3 => &["input", "output", "forward"],
            _ => &INET,
        };
        names.get(usize::from(hook)).copied().unwrap_or("unknown")
    }
}

/// An `--output-skb-metadata` expression as the output reads its value (from [`crate::expr`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataField {
    /// The expression: the JSON key.
    pub key: String,
    /// Its last member's name: the text label (pwru's).
    pub label: String,
    pub kind: ValueKind,
    /// Where its bytes start in the section, and how many.
    pub at: usize,
    pub bytes: usize,
}

impl From<&crate::expr::Metadata> for MetadataField {
    fn from(m: &crate::expr::Metadata) -> Self {
        MetadataField {
            key: m.access.text.clone(),
            label: m.access.label.clone(),
            kind: m.access.kind,
            at: m.first_word as usize * 8,
            bytes: m.bytes as usize,
        }
    }
}

/// The `--output-skb-metadata` values of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbMetadata<'a> {
    /// As the kernel sent them: the section's words, read per field.
    Words {
        fields: &'a [MetadataField],
        words: &'a [u8],
    },
    /// As a saved JSON trace has them (`--input-file`).
    Json(&'a serde_json::Map<String, serde_json::Value>),
}

/// One metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaValue<'a> {
    Unsigned(u64),
    Signed(i64),
    Bool(bool),
    /// An address: hex.
    Pointer(u64),
    /// A `char` array up to its NUL.
    Str(&'a [u8]),
    /// Other bytes: hex.
    Bytes(&'a [u8]),
    /// A JSON value of another kind, as read back.
    Json(&'a serde_json::Value),
}

impl<'a> SkbMetadata<'a> {
    /// Calls `f(key, label, value)` for each value, in the order given on the command line.
    pub fn for_each(&self, mut f: impl FnMut(&'a str, &'a str, MetaValue<'a>)) {
        match *self {
            SkbMetadata::Words { fields, words } => {
                for field in fields {
                    let Some(bytes) = words.get(field.at..field.at + field.bytes) else {
                        continue;
                    };
                    let word = || {
                        let mut w = [0u8; 8];
                        let n = bytes.len().min(8);
                        w[..n].copy_from_slice(&bytes[..n]);
                        u64::from_le_bytes(w)
                    };
                    let value = match field.kind {
                        ValueKind::Unsigned => MetaValue::Unsigned(word()),
                        ValueKind::Signed => MetaValue::Signed(word() as i64),
                        ValueKind::Bool => MetaValue::Bool(word() != 0),
                        ValueKind::Pointer => MetaValue::Pointer(word()),
                        ValueKind::Chars => MetaValue::Str(
                            &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())],
                        ),
                        ValueKind::Bytes => MetaValue::Bytes(bytes),
                    };
                    f(&field.key, &field.label, value);
                }
            }
            SkbMetadata::Json(map) => {
                for (key, value) in map {
                    let v = match value {
                        serde_json::Value::Bool(b) => MetaValue::Bool(*b),
                        serde_json::Value::String(s) => MetaValue::Str(s.as_bytes()),
                        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                            (Some(u), _) => MetaValue::Unsigned(u),
                            (None, Some(i)) => MetaValue::Signed(i),
                            _ => MetaValue::Json(value),
                        },
                        other => MetaValue::Json(other),
                    };
                    f(key, crate::expr::label_of(key), v);
                }
            }
        }
    }
}

/// A packet's first bytes as the kernel held them at the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketBytes<'a> {
    /// pcap link type: `LINK_ETHERNET` (from the MAC header) or `LINK_RAW` (from the network
    /// header).
    pub link: u32,
    /// Bytes the packet has from there (more than `bytes.len()` when cut).
    pub orig_len: u32,
    pub bytes: &'a [u8],
}

#[cfg(test)]
impl Event<'static> {
    /// For tests: `hook` on `skb` at kernel time `ts_ns`, a ping's on `lo` in netns 1, with
    /// nothing optional.
    pub(crate) fn sample(skb: u64, hook: &'static str, ts_ns: u64) -> Self {
        Event {
            skb,
            cpu: 0,
            pid: 1,
            comm: b"ping",
            hook: Hook::Known(hook),
            reason: None,
            verdict: None,
            xdp: None,
            ts_ns,
            time: Stamp::None,
            netns: 1,
            netns_name: None,
            mark: 0,
            ifindex: 1,
            ifname: b"lo",
            mtu: 1500,
            len: 84,
            protocol: 0x0800,
            tuple: None,
            cb: None,
            skb_dump: None,
            shinfo_dump: None,
            tracked_by: None,
            parent_skb: None,
            stack: None,
            caller: None,
            packet: None,
            skb_metadata: None,
            tunnel_tuple: None,
            netfilter: None,
            bpf_map: None,
            pod: None,
        }
    }
}

/// Why an event was traced with `--filter-track-skb` (JSON `tracked_by`, pwru's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackedBy {
    /// The skb passed the filters at this hook.
    Filter,
    /// Its address was tracked: it passed them earlier, or is a copy of one that did.
    Skb,
    /// It runs on the kernel stack a traced skb ran on (`--filter-track-skb-by-stackid`).
    Stackid,
    /// It was built on a packet that a traced XDP program passed (`--filter-trace-xdp`).
    Xdp,
}

impl TrackedBy {
    pub fn name(self) -> &'static str {
        match self {
            TrackedBy::Filter => "filter",
            TrackedBy::Skb => "skb",
            TrackedBy::Stackid => "stackid",
            TrackedBy::Xdp => "xdp",
        }
    }
}

/// Text the kernel printed with `bpf_snprintf_btf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dump<'a> {
    pub text: &'a [u8],
    /// Bytes of the whole dump: more than `text.len()` when the per-CPU buffer cut it.
    pub full_len: u32,
}

impl Dump<'_> {
    pub fn is_cut(&self) -> bool {
        self.full_len as usize > self.text.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook<'a> {
    Known(&'a str),
    /// Not in the table of attached hooks (should not happen): its raw id.
    Unknown(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason<'a> {
    /// `enum skb_drop_reason` value.
    pub code: u32,
    /// Its enumerator name, when the kernel's BTF has one.
    pub name: Option<&'a str>,
}

/// A BPF program's return value, named for its program type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub code: i32,
    /// `TC_ACT_*` or `XDP_*`; `None` for a value outside the type's enum.
    pub name: Option<&'static str>,
}

impl Verdict {
    /// A tc program's return value (`TC_ACT_*`, linux/pkt_cls.h).
    pub fn tc(code: i32) -> Self {
        const NAMES: [&str; 10] = [
            "TC_ACT_UNSPEC",
            "TC_ACT_OK",
            "TC_ACT_RECLASSIFY",
            "TC_ACT_SHOT",
            "TC_ACT_PIPE",
            "TC_ACT_STOLEN",
            "TC_ACT_QUEUED",
            "TC_ACT_REPEAT",
            "TC_ACT_REDIRECT",
            "TC_ACT_TRAP",
        ];
        // TC_ACT_UNSPEC is -1.
        let name = usize::try_from(code.wrapping_add(1))
            .ok()
            .and_then(|i| NAMES.get(i).copied());
        Self { code, name }
    }

    /// A netfilter verdict (`NF_*`, linux/netfilter.h): the low byte names it; the rest is an
    /// errno or a queue number (`NF_QUEUE_NR`), kept in `code`. `NF_STOLEN` with an errno is
    /// how current kernels return a drop they have already freed (`NF_DROP_REASON`): `NF_DROP`.
    pub fn netfilter(code: i32) -> Self {
        const NF_STOLEN: i32 = 2;
        if code & 0xff == NF_STOLEN && code >> 16 != 0 {
            return Self {
                code,
                name: Some("NF_DROP"),
            };
        }
        const NAMES: [&str; 6] = [
            "NF_DROP",
            "NF_ACCEPT",
            "NF_STOLEN",
            "NF_QUEUE",
            "NF_REPEAT",
            "NF_STOP",
        ];
        let name = NAMES.get((code & 0xff) as usize).copied();
        Self { code, name }
    }

    /// An XDP program's return value (`enum xdp_action`).
    pub fn xdp(code: i32) -> Self {
        const NAMES: [&str; 5] = [
            "XDP_ABORTED",
            "XDP_DROP",
            "XDP_PASS",
            "XDP_TX",
            "XDP_REDIRECT",
        ];
        let name = usize::try_from(code)
            .ok()
            .and_then(|i| NAMES.get(i).copied());
        Self { code, name }
    }
}

/// An XDP program's packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpPacket {
    /// The receive queue (`xdp_rxq_info.queue_index`).
    pub rx_queue: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// Zero when the L4 protocol has no ports.
    pub sport: u16,
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// TCP header flags (FIN 0x01 … CWR 0x80), with `--output-tcp-flags` on a TCP packet.
    pub tcp_flags: Option<u8>,
}

/// An event's time per `--timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    None,
    /// `current`: kernel ns; `relative`: ns since this skb's previous event.
    Nanos(u64),
    /// `absolute`: wall-clock ns since the Unix epoch.
    Wall(u64),
}
