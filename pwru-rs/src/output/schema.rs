//! The `--output-json` schema, documented once: [`FIELDS`] names every key in the order the
//! writer puts them, with its type and meaning. Tests hold the writer, the [`JsonEvent`] type and
//! the README's table to it, so the three cannot drift apart.
//!
//! [`JsonEvent`]: super::JsonEvent

/// One key of an event line.
pub struct SchemaField {
    pub key: &'static str,
    pub json_type: &'static str,
    pub meaning: &'static str,
}

const fn field(key: &'static str, json_type: &'static str, meaning: &'static str) -> SchemaField {
    SchemaField {
        key,
        json_type,
        meaning,
    }
}

/// Every key of an event line, in the writer's order.
pub const FIELDS: &[SchemaField] = &[
    field(
        "skb",
        "string",
        "address of the `struct sk_buff` (of the `struct xdp_buff` for an XDP program's packet), `0x…` hex",
    ),
    field("cpu", "number", "CPU the hook ran on"),
    field("process", "string", "`comm:pid`"),
    field(
        "func",
        "string",
        "kernel function, tracepoint or traced BPF program, with `(SKB_DROP_REASON_…)` for drops and the verdict at a BPF program's exit, e.g. `cil_from_container(TC_ACT_SHOT)`; a module's function (`--kmods`) as kallsyms names it, `veth_xmit [veth]`",
    ),
    field(
        "time",
        "null / number / string",
        "`--timestamp`: `null` for none, ns for `current`/`relative`, RFC 3339 (ns, local offset) for `absolute`",
    ),
    field("netns", "number", "network namespace inode"),
    field(
        "netns_name",
        "string / null",
        "`--output-netns-names`: the netns's ip-netns name, else `comm:pid` of the lowest-numbered process in it; `null` when not asked for or unknown",
    ),
    field("mark", "number", "`skb->mark`"),
    field(
        "iface",
        "string",
        "`name:ifindex`, or the ifindex alone when the skb has no device",
    ),
    field(
        "proto",
        "number",
        "`skb->protocol` (2048 IPv4, 34525 IPv6, 2054 ARP)",
    ),
    field("mtu", "number", "device MTU"),
    field("len", "number", "`skb->len`"),
    field(
        "cb",
        "array / null",
        "`skb->cb` as the five u32 words BPF sees as `__sk_buff->cb` (`--output-skb-cb`)",
    ),
    field(
        "tuple",
        "object / null",
        "`{saddr, daddr: string, sport, dport: number, proto: number (IP protocol), flags: string / null}`; `null` when no IPv4/IPv6 header can be read at this point; `flags` is pwru's `SYN|ACK` form with `--output-tcp-flags` on TCP (`\"\"`: none set)",
    ),
    field("pid", "number", "task id"),
    field("comm", "string", "task name"),
    field("ifindex", "number", "device index (0: none)"),
    field("ifname", "string", "device name (`\"\"`: none)"),
    field(
        "reason",
        "string / null",
        "drop reason name, e.g. `SKB_DROP_REASON_NO_SOCKET`",
    ),
    field(
        "reason_code",
        "number / null",
        "drop reason value (set whenever the hook reports one)",
    ),
    field(
        "skb_dump",
        "string / null",
        "`struct sk_buff` as the kernel prints it (`bpf_snprintf_btf`, `--output-skb`); a last line `... cut at N of M bytes` when `--set-percpu-buf` was too small",
    ),
    field(
        "skb_shared_info",
        "string / null",
        "`struct skb_shared_info`, the same way (`--output-skb-shared-info`)",
    ),
    field(
        "tracked_by",
        "string / null",
        "`--filter-track-skb`: `\"filter\"` when the skb passed the filters at this hook, `\"skb\"` when its address was tracked (it passed them earlier, or is a clone or copy of one that did), `\"stackid\"` when it runs on the kernel stack a traced skb ran on (`--filter-track-skb-by-stackid`, `--filter-non-skb-funcs`), `\"xdp\"` when it was built on a packet a traced XDP program passed (`--filter-trace-xdp`); `null` without tracking",
    ),
    field(
        "parent_skb",
        "string / null",
        "`--filter-track-skb`: the skb this one was cloned or copied from (`skb_clone`, `skb_copy`, …), `0x…` hex, so that a packet's lineage can be rebuilt; `null` otherwise",
    ),
    field(
        "stack",
        "array / null",
        "`--output-stack`: the kernel stack at the hook, innermost frame first, each `func+0xoff` (module functions end in ` [module]`); `null` when not asked for or not captured",
    ),
    field(
        "stack_error",
        "string / null",
        "`--output-stack`: why the stack could not be captured (e.g. `stack map bucket taken by another stack (EEXIST)`); `null` otherwise",
    ),
    field(
        "caller_func",
        "string / null",
        "`--output-caller`: the function that called the traced one (kprobes: from the return address; tracepoints: the function the tracepoint is in, from the stack); `null` when not asked for or unknown",
    ),
    field(
        "verdict",
        "string / null",
        "`--filter-trace-tc`/`--filter-trace-xdp`: at a BPF program's exit, its return value's name (`TC_ACT_OK`, `TC_ACT_SHOT`, `TC_ACT_REDIRECT`, …; `XDP_PASS`, `XDP_DROP`, `XDP_TX`, `XDP_REDIRECT`, `XDP_ABORTED`); `--output-netfilter`: a base chain's verdict (`NF_ACCEPT`, `NF_DROP`, …; a drop the kernel already freed, `NF_STOLEN` with an errno, is `NF_DROP`); `null` at an entry, elsewhere, or for a value without a name",
    ),
    field(
        "verdict_code",
        "number / null",
        "that return value as a number (set at every BPF program exit)",
    ),
    field(
        "xdp",
        "object / null",
        "`--filter-trace-xdp`: `{\"rx_queue\": N}` for an XDP program's packet (then `skb` is the `xdp_buff`, `len` its frame length, `proto` its ethertype, `mark` 0); `null` for an skb",
    ),
    field(
        "skb_metadata",
        "object / null",
        "`--output-skb-metadata` (for an XDP program's packet `--output-xdp-metadata`): each expression as written and its value, in the order given, e.g. `{\"skb->mark\": 66, \"skb->dev->name\": \"eth0\"}`: numbers as numbers, `char` arrays as strings (to the NUL, 16 bytes at most), pointers and other bytes as `0x…` hex strings; 0 when a pointer on the way is NULL; `null` without the option",
    ),
    field(
        "tunnel_tuple",
        "object / null",
        "`--output-tunnel`: a tunnel packet's inner tuple, as `tuple` (VXLAN, Geneve, GRE, IPIP; the outer one is `tuple`); `null` for other packets or without the option",
    ),
    field(
        "packet_bytes",
        "object / null",
        "`--output-packet-bytes`: `{link: 1 (Ethernet, from the MAC header) or 101 (raw IP), orig_len: number, data: lowercase hex}`, the packet's first `--output-pcap-snaplen` bytes as the kernel held them at the hook, for a pcap expression at replay; `null` without the option or when no header could be read",
    ),
    field(
        "netfilter",
        "object / null",
        "`--output-netfilter`: `{family, table, chain, hook, priority}` of the nftables base chain (iptables-nft's too) at `nft_do_chain`'s entry (`func` `nft_do_chain`), at its exit (`nft_do_chain(NF_ACCEPT)`, the verdict in `verdict`/`verdict_code`: `NF_DROP`, `NF_ACCEPT`, `NF_STOLEN`, `NF_QUEUE`, `NF_REPEAT`, `NF_STOP`) and at a drop inside the chain; `family` and `hook` as nft names them (`inet`, `input`); `null` elsewhere",
    ),
    field(
        "bpf_map",
        "object / null",
        "`--output-bpfmap`: at a map operation a traced tc/XDP program made, in the operation's kernel function (`func` `htab_map_update_elem`, at its exit): `{op: lookup/update/delete, id, name, key_size, value_size, key: hex, value: hex or null, ret}`; key and value cut to 64 bytes (the sizes are the map's); `value` is the one given (update) or found (lookup), `null` for a delete or a lookup that found nothing; `null` elsewhere",
    ),
    field(
        "pod",
        "string / null",
        "on a Kubernetes node (the kubelet's `/var/log/pods` is there): the pod whose network namespace `netns` is, from the pod directories and the pods' processes' cgroups (rescanned at most once a second for an unknown netns); `null` elsewhere or for a netns of no pod",
    ),
    field(
        "k8s_namespace",
        "string / null",
        "that pod's Kubernetes namespace; `null` with `pod`",
    ),
];

/// The README's table of the schema.
pub fn markdown_table() -> String {
    let mut table = String::from("| key | type | meaning |\n|---|---|---|\n");
    for f in FIELDS {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            f.key, f.json_type, f.meaning
        ));
    }
    table
}

#[cfg(test)]
pub(super) mod tests {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

    use super::*;

    /// The keys of a JSON object, in order.
    struct Keys(Vec<String>);

    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }

    pub(in crate::output) fn keys_of(line: &[u8]) -> Vec<String> {
        serde_json::from_slice::<Keys>(line).unwrap().0
    }

    #[test]
    fn schema_type_serializes_the_documented_keys_in_order() {
        let sample = crate::output::tests::json_sample();
        let written = serde_json::to_vec(&sample).unwrap();
        let documented: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
        assert_eq!(keys_of(&written), documented);
    }

    #[test]
    fn readme_table_is_the_schema() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's JSON table differs from output::schema::FIELDS; it should read:\n{table}"
        );
    }
}
