//! Classic BPF as libpcap compiles it: instruction layout, opcode fields, and `pcap_compile` for
//! the two views of a packet pwru-rs filters on.

use pcap::{Capture, Linktype};

/// `struct bpf_insn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Classes.
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ST: u16 = 0x02;
pub const STX: u16 = 0x03;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
// Sizes.
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
// Modes.
pub const IMM: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MEM: u16 = 0x60;
pub const LEN: u16 = 0x80;
pub const MSH: u16 = 0xa0;
// ALU and jump operations.
pub const ADD: u16 = 0x00;
pub const SUB: u16 = 0x10;
pub const MUL: u16 = 0x20;
pub const DIV: u16 = 0x30;
pub const OR: u16 = 0x40;
pub const AND: u16 = 0x50;
pub const LSH: u16 = 0x60;
pub const RSH: u16 = 0x70;
pub const NEG: u16 = 0x80;
pub const MOD: u16 = 0x90;
pub const XOR: u16 = 0xa0;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
pub const JSET: u16 = 0x40;
// Sources and return values.
pub const X: u16 = 0x08;
pub const RVAL_K: u16 = 0x00;
pub const RVAL_X: u16 = 0x08;
pub const RVAL_A: u16 = 0x10;
// MISC.
pub const TAX: u16 = 0x00;
pub const TXA: u16 = 0x80;

impl CbpfInsn {
    pub fn class(&self) -> u16 {
        self.code & 0x07
    }
    pub fn size(&self) -> u16 {
        self.code & 0x18
    }
    pub fn mode(&self) -> u16 {
        self.code & 0xe0
    }
    pub fn op(&self) -> u16 {
        self.code & 0xf0
    }
    pub fn src(&self) -> u16 {
        self.code & 0x08
    }
    pub fn rval(&self) -> u16 {
        self.code & 0x18
    }
    pub fn misc_op(&self) -> u16 {
        self.code & 0xf8
    }
}

/// How the packet is seen: from its MAC header, or from its network header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// DLT_EN10MB.
    Ethernet,
    /// DLT_RAW: the packet starts with the IPv4/IPv6 header.
    Raw,
}

impl View {
    fn linktype(self) -> Linktype {
        match self {
            View::Ethernet => Linktype::ETHERNET,
            // DLT_RAW is 12 on Linux (LINKTYPE_RAW, 101, is the pcap-file number).
            View::Raw => Linktype(12),
        }
    }
}

/// A compiled expression, kept for libpcap's own matcher (`pcap_offline_filter`).
pub struct Compiled {
    program: pcap::BpfProgram,
}

impl Compiled {
    pub fn instructions(&self) -> Vec<CbpfInsn> {
        self.program
            .get_instructions()
            .iter()
            .map(parse_insn)
            .collect()
    }

    /// libpcap's interpreter's answer for `packet` (the reference in tests).
    pub fn matches(&self, packet: &[u8]) -> bool {
        self.program.filter(packet)
    }
}

/// `pcap_compile(expression)` with optimisation, as tcpdump does. Errors are libpcap's message.
pub fn compile(expression: &str, view: View) -> Result<Compiled, String> {
    let dead = Capture::dead(view.linktype()).map_err(|e| e.to_string())?;
    let program = dead.compile(expression, true).map_err(|e| match e {
        pcap::Error::PcapError(message) => message,
        other => other.to_string(),
    })?;
    Ok(Compiled { program })
}

/// The pcap crate exposes instructions only through `Display` ("code jt jf k").
fn parse_insn(insn: &pcap::BpfInstruction) -> CbpfInsn {
    let text = insn.to_string();
    let mut fields = text
        .split(' ')
        .map(|f| f.parse::<u64>().expect("pcap prints numbers"));
    let mut next = || fields.next().expect("four fields");
    CbpfInsn {
        code: next() as u16,
        jt: next() as u8,
        jf: next() as u8,
        k: next() as u32,
    }
}
