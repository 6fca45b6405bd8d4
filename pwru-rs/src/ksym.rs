//! What the running kernel lets us probe: function addresses from /proc/kallsyms, the functions
//! ftrace can hook (`available_filter_functions`) and the kprobe blacklist.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    thread::JoinHandle,
};

/// Function symbols of the kernel image and modules, by name (first address wins for names that
/// several static functions share, as the kernel's own `kallsyms_lookup_name` does).
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// Address, and the module for a module's function.
    by_name: HashMap<String, (u64, Option<String>)>,
}

impl Kallsyms {
    /// Keeps only the functions named in `wanted`: the file has ~150k lines, and building a map
    /// of all of them matters where user space is slow, e.g. under emulation.
    pub fn parse(text: &str, wanted: &HashSet<&str>) -> Self {
        let mut by_name = HashMap::new();
        for symbol in function_symbols(text) {
            if wanted.contains(symbol.name) && !by_name.contains_key(symbol.name) {
                let module = symbol
                    .module
                    .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_owned());
                by_name.insert(symbol.name.to_owned(), (symbol.address, module));
            }
        }
        Self { by_name }
    }

    pub fn address(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|(a, _)| *a).filter(|&a| a != 0)
    }

    /// The module the function is in (`veth`), `None` for the kernel image's.
    pub fn module(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).and_then(|(_, m)| m.as_deref())
    }

    /// False when addresses are hidden (kptr_restrict, or not root): all read as zero.
    pub fn has_addresses(&self) -> bool {
        self.by_name.values().any(|(a, _)| *a != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A function symbol of /proc/kallsyms.
pub struct FunctionSymbol<'a> {
    /// 0 where addresses are hidden (kptr_restrict, not root).
    pub address: u64,
    pub name: &'a str,
    /// `[module]` for a module's function.
    pub module: Option<&'a str>,
}

/// The function (text) symbols of /proc/kallsyms' text, in its order.
pub fn function_symbols(text: &str) -> impl Iterator<Item = FunctionSymbol<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (address, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
        if !matches!(kind, "t" | "T" | "w" | "W") {
            return None;
        }
        Some(FunctionSymbol {
            address: u64::from_str_radix(address, 16).ok()?,
            name,
            module: fields.next(),
        })
    })
}

/// Where tracefs may be mounted.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The text of /proc/kallsyms and of tracefs' `available_filter_functions`, read on two
/// background threads: the kernel formats each on the fly (~0.35 s apiece under QEMU TCG, tens of
/// ms on hardware), time that overlaps the BTF parse and each other.
pub struct SymbolFiles {
    kallsyms: JoinHandle<std::io::Result<String>>,
    filter_functions: JoinHandle<Option<String>>,
}

impl SymbolFiles {
    pub fn read_in_background() -> Self {
        Self {
            kallsyms: std::thread::spawn(|| std::fs::read_to_string("/proc/kallsyms")),
            filter_functions: std::thread::spawn(|| {
                TRACEFS.iter().find_map(|dir| {
                    std::fs::read_to_string(Path::new(dir).join("available_filter_functions")).ok()
                })
            }),
        }
    }

    /// /proc/kallsyms, and the names ftrace can attach to (`None` without tracefs).
    pub fn wait(self) -> (std::io::Result<String>, Option<String>) {
        (joined(self.kallsyms), joined(self.filter_functions))
    }
}

/// A reader thread's result; its panic (there is none to expect) carries on in the caller.
fn joined<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Names ftrace can attach to (what kprobe-multi needs, and what kprobes accept at function
/// entry), of those in `wanted`. Module suffixes (`[veth]`) are dropped.
pub fn parse_available_filter_functions(text: &str, wanted: &HashSet<&str>) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.split_ascii_whitespace().next())
        .filter(|name| wanted.contains(name))
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

    fn all() -> HashSet<&'static str> {
        [
            "ip_rcv",
            "some_data",
            "cleanup",
            "weak_fn",
            "veth_xmit",
            "__netif_receive_skb_core",
        ]
        .into()
    }

    #[test]
    fn kallsyms_keeps_wanted_text_symbols_and_first_duplicate() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T _text\n\
             ffffffff81a00010 t ip_rcv\n\
             ffffffff81a00020 D some_data\n\
             ffffffff81b00000 t cleanup [veth]\n\
             ffffffff81c00000 t cleanup\n\
             ffffffff81d00000 W weak_fn\n",
            &all(),
        );
        assert_eq!(k.address("ip_rcv"), Some(0xffffffff81a00010));
        assert_eq!(k.address("some_data"), None);
        assert_eq!(k.address("cleanup"), Some(0xffffffff81b00000));
        assert_eq!(k.module("cleanup"), Some("veth"));
        assert_eq!(k.module("ip_rcv"), None);
        assert_eq!(k.address("weak_fn"), Some(0xffffffff81d00000));
        assert!(k.has_addresses());
        assert!(!Kallsyms::parse("0000000000000000 T ip_rcv\n", &all()).has_addresses());
        assert!(Kallsyms::parse("ffffffff81a00010 t ip_rcv\n", &["other"].into()).is_empty());
    }

    #[test]
    fn filter_functions_and_blacklist() {
        let f = parse_available_filter_functions(
            "ip_rcv\nveth_xmit [veth]\n__netif_receive_skb_core.constprop.0\nnot_wanted\n",
            &all(),
        );
        assert!(!f.contains("not_wanted"));
        assert!(f.contains("ip_rcv") && f.contains("veth_xmit"));
        assert!(!f.contains("__netif_receive_skb_core"));
        let b = parse_blacklist("0xffffffff81000000-0xffffffff81000010\tdo_int3\n");
        assert!(b.contains("do_int3"));
    }
}
