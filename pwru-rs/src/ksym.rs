//! What the running kernel lets us probe: function addresses from /proc/kallsyms, the functions
//! ftrace can hook (`available_filter_functions`) and the kprobe blacklist.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

/// Function symbols of the kernel image and modules, by name (first address wins for names that
/// several static functions share, as the kernel's own `kallsyms_lookup_name` does).
#[derive(Debug, Default)]
pub struct Kallsyms {
    by_name: HashMap<String, u64>,
}

impl Kallsyms {
    pub fn read() -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/kallsyms")?))
    }

    pub fn parse(text: &str) -> Self {
        let mut by_name = HashMap::new();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(addr), Some(kind), Some(name)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            by_name.entry(name.to_owned()).or_insert(addr);
        }
        Self { by_name }
    }

    pub fn address(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied().filter(|&a| a != 0)
    }

    /// False when addresses are hidden (kptr_restrict, or not root): all read as zero.
    pub fn has_addresses(&self) -> bool {
        self.by_name.values().any(|&a| a != 0)
    }
}

/// Where tracefs may be mounted.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Names ftrace can attach to (what kprobe-multi needs, and what kprobes accept at function
/// entry). `None` when tracefs is not available. Module suffixes (`[veth]`) are dropped.
pub fn available_filter_functions() -> Option<HashSet<String>> {
    TRACEFS.iter().find_map(|dir| {
        let text =
            std::fs::read_to_string(Path::new(dir).join("available_filter_functions")).ok()?;
        Some(parse_available_filter_functions(&text))
    })
}

pub fn parse_available_filter_functions(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.split_ascii_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Functions kprobes refuse (`/sys/kernel/debug/kprobes/blacklist`: "0xstart-0xend\tname").
pub fn kprobe_blacklist() -> HashSet<String> {
    std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist")
        .map(|t| parse_blacklist(&t))
        .unwrap_or_default()
}

pub fn parse_blacklist(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.split_ascii_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_keeps_text_symbols_and_first_duplicate() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _text\n\
             ffffffff81a00010 t ip_rcv\n\
             ffffffff81a00020 D some_data\n\
             ffffffff81b00000 t cleanup [veth]\n\
             ffffffff81c00000 t cleanup\n\
             ffffffff81d00000 W weak_fn\n",
        );
        assert_eq!(k.address("ip_rcv"), Some(0xffffffff81a00010));
        assert_eq!(k.address("some_data"), None);
        assert_eq!(k.address("cleanup"), Some(0xffffffff81b00000));
        assert_eq!(k.address("weak_fn"), Some(0xffffffff81d00000));
        assert!(k.has_addresses());
        assert!(!Kallsyms::parse("0000000000000000 T ip_rcv\n").has_addresses());
    }

    #[test]
    fn filter_functions_and_blacklist() {
        let f = parse_available_filter_functions(
            "ip_rcv\nveth_xmit [veth]\n__netif_receive_skb_core.constprop.0\n",
        );
        assert!(f.contains("ip_rcv") && f.contains("veth_xmit"));
        assert!(!f.contains("__netif_receive_skb_core"));
        let b = parse_blacklist("0xffffffff81000000-0xffffffff81000010\tdo_int3\n");
        assert!(b.contains("do_int3"));
    }
}
