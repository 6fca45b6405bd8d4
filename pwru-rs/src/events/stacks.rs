//! `--output-stack` and `--output-caller`: stack ids and return addresses resolved to kernel
//! symbols from /proc/kallsyms. Each stack id is read from the stack map and symbolised once: the
//! kernel never replaces or deletes an entry (no `BPF_F_REUSE_STACKID`), so an id always means
//! the same stack.

use std::collections::HashMap;

/// Larger than any kernel function.
const MAX_SYMBOL_OFFSET: u64 = 1 << 20;

/// Text symbols of the kernel and its modules, sorted by address.
#[derive(Debug, Default)]
pub struct Symbols {
    sorted: Vec<(u64, String)>,
}

impl Symbols {
    /// From the text of /proc/kallsyms; modules' symbols keep their `[module]` suffix.
    pub fn parse(kallsyms: &str) -> Self {
        let mut sorted: Vec<(u64, String)> = crate::ksym::function_symbols(kallsyms)
            .filter(|s| s.address != 0)
            .map(|s| {
                let name = match s.module {
                    Some(module) => format!("{} {module}", s.name),
                    None => s.name.to_owned(),
                };
                (s.address, name)
            })
            .collect();
        sorted.sort_unstable();
        Self { sorted }
    }

    /// The symbol `addr` is in, and the offset into it. An address far past the symbol before
    /// it (a BPF program loaded after kallsyms was read, or past the kernel's text) has none.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let at = self
            .sorted
            .partition_point(|(a, _)| *a <= addr)
            .checked_sub(1)?;
        let (start, name) = &self.sorted[at];
        let offset = addr - start;
        (offset < MAX_SYMBOL_OFFSET).then_some((name.as_str(), offset))
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// One symbolised frame: `func+0xoff` (or the raw address when no symbol covers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub text: String,
    /// Bytes of `text` that are the function's name.
    name_len: usize,
}

impl Frame {
    /// `text` whose first `name_len` bytes are the function's name.
    pub fn new(text: String, name_len: usize) -> Self {
        assert!(text.is_char_boundary(name_len));
        Self { text, name_len }
    }

    pub fn name(&self) -> &str {
        &self.text[..self.name_len]
    }
}

/// What an event's stack turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack<'a> {
    Frames(&'a [Frame]),
    /// Not captured, and why.
    Failed(&'static str),
}

/// Reads a stack's addresses by id (the stack map; a table in tests).
pub type StackReader = Box<dyn FnMut(u32) -> Option<Vec<u64>>>;

/// Frames of the tracing machinery between a tracepoint and the function it is in.
const TRACING_FRAMES: [&str; 4] = ["bpf_", "__bpf_", "__traceiter_", "trace_"];

pub struct Stacks {
    symbols: Symbols,
    read: StackReader,
    cache: HashMap<u32, Option<Vec<Frame>>>,
}

impl Stacks {
    pub fn new(symbols: Symbols, read: StackReader) -> Self {
        Self {
            symbols,
            read,
            cache: HashMap::new(),
        }
    }

    /// Reads and symbolises the stack with this id, on first sight; [`Self::get`] then has it.
    pub fn load(&mut self, id: u32) {
        let Self {
            symbols,
            read,
            cache,
        } = self;
        cache.entry(id).or_insert_with(|| {
            read(id).map(|ips| ips.into_iter().map(|ip| frame(symbols, ip)).collect())
        });
    }

    /// The stack with this id, once [`Self::load`]ed.
    pub fn get(&self, id: u32) -> Stack<'_> {
        match self.cache.get(&id) {
            Some(Some(frames)) => Stack::Frames(frames),
            _ => Stack::Failed("not in the stack map"),
        }
    }

    #[cfg(test)]
    fn stack(&mut self, id: u32) -> Stack<'_> {
        self.load(id);
        self.get(id)
    }

    /// The function a return address is in: the caller of the probed function.
    pub fn function_at(&self, addr: u64) -> Option<&str> {
        let (name, _) = self.symbols.lookup(addr)?;
        Some(name.split(' ').next().unwrap_or(name))
    }

    /// Why the kernel could not capture a stack (`bpf_get_stackid`'s errno).
    pub fn failure(errno: u32) -> &'static str {
        match errno as i32 {
            libc::EEXIST => "stack map bucket taken by another stack (EEXIST)",
            libc::EFAULT => "the kernel could not walk the stack (EFAULT)",
            libc::ENOMEM => "stack map full (ENOMEM)",
            libc::EINVAL => "refused by the kernel (EINVAL)",
            _ => "not captured",
        }
    }
}

/// On a tracepoint's stack, the first frame outside the tracing machinery: the function the
/// tracepoint is in.
pub fn tracepoint_caller(frames: &[Frame]) -> Option<&str> {
    frames
        .iter()
        .map(Frame::name)
        // Unnamed frames (`0x…`) are the BPF program itself.
        .find(|name| !name.starts_with("0x") && !TRACING_FRAMES.iter().any(|p| name.starts_with(p)))
        .map(|name| name.split(' ').next().unwrap_or(name))
}

fn frame(symbols: &Symbols, ip: u64) -> Frame {
    match symbols.lookup(ip) {
        Some((name, offset)) => {
            // A module symbol is `name [module]`: the offset goes after the name.
            let (func, module) = match name.split_once(' ') {
                Some((func, module)) => (func, Some(module)),
                None => (name, None),
            };
            let mut text = format!("{func}+{offset:#x}");
            if let Some(module) = module {
                text.push(' ');
                text.push_str(module);
            }
            Frame {
                text,
                name_len: func.len(),
            }
        }
        None => {
            let text = format!("{ip:#x}");
            Frame {
                name_len: text.len(),
                text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "ffffffff81000000 T _stext\n\
        ffffffff81000100 t ip_rcv\n\
        ffffffff81000200 D some_data\n\
        ffffffff81000300 T __netif_receive_skb_core\n\
        ffffffff81000400 t __bpf_trace_netif_receive_skb\n\
        ffffffff81000500 T bpf_trace_run2\n\
        ffffffffc0001000 t veth_xmit\t[veth]\n";

    fn stacks(table: Vec<(u32, Vec<u64>)>) -> Stacks {
        let table: HashMap<u32, Vec<u64>> = table.into_iter().collect();
        Stacks::new(
            Symbols::parse(KALLSYMS),
            Box::new(move |id| table.get(&id).cloned()),
        )
    }

    #[test]
    fn frames_are_symbol_plus_offset() {
        let mut s = stacks(vec![(
            7,
            vec![0xffff_ffff_8100_0110, 0xffff_ffff_c000_1004, 0x10],
        )]);
        let Stack::Frames(frames) = s.stack(7) else {
            panic!("a stack");
        };
        let text: Vec<&str> = frames.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(text, ["ip_rcv+0x10", "veth_xmit+0x4 [veth]", "0x10"]);
        assert_eq!(frames[1].name(), "veth_xmit");
        // Data symbols do not count: 0x...250 is in ip_rcv's range.
        assert_eq!(s.function_at(0xffff_ffff_8100_0250), Some("ip_rcv"));
        assert_eq!(s.function_at(0xffff_ffff_c000_1010), Some("veth_xmit"));
        assert_eq!(s.stack(8), Stack::Failed("not in the stack map"));
        // Far past the last symbol: no name rather than a wrong one.
        assert_eq!(s.function_at(0xffff_ffff_c100_0000), None);
    }

    #[test]
    fn each_stack_is_read_once() {
        let reads = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = reads.clone();
        let mut s = Stacks::new(
            Symbols::parse(KALLSYMS),
            Box::new(move |_| {
                counted.set(counted.get() + 1);
                Some(vec![0xffff_ffff_8100_0100])
            }),
        );
        for _ in 0..3 {
            assert!(matches!(s.stack(1), Stack::Frames(_)));
        }
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_tracepoints_caller_is_past_the_tracing_frames() {
        let mut s = stacks(vec![(
            1,
            vec![
                0xffff_ffff_d000_0000,
                0xffff_ffff_8100_0510,
                0xffff_ffff_8100_0420,
                0xffff_ffff_8100_0330,
                0xffff_ffff_8100_0110,
            ],
        )]);
        let Stack::Frames(frames) = s.stack(1) else {
            panic!()
        };
        assert_eq!(tracepoint_caller(frames), Some("__netif_receive_skb_core"));
    }
}
