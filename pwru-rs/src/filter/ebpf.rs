//! cBPF (as libpcap emits it) → eBPF, for a BPF-to-BPF function `u64 f(u64 start, u64 end)`.
//!
//! The packet is kernel memory, not a BPF packet pointer, so every load is a bounds check against
//! `end - start` followed by `bpf_probe_read_kernel` into the stack; a load past the end, a failed
//! read, or a division by zero returns 0 (no match), as cBPF does. A and X are 32-bit, as in cBPF.
//!
//! Most filters read several fields of the first bytes (ethertype, addresses, protocol, ports):
//! those programs first copy the first 64 bytes (fewer for a shorter packet) into the stack with
//! one helper call, and loads that fall inside that window read the stack instead. A load outside
//! it, or any load when the copy failed, takes the per-load path, so the semantics do not change.
//!
//! Registers: r6 = start, r7 = packet length, w8 = A, w9 = X. Stack: M[0..15] at fp-64..fp-4
//! when the program uses scratch memory (most do not), then an 8-byte load buffer, the 64-byte
//! window and its valid length ([`Layout`]): the frame is 80 bytes without M[], 144 with it,
//! which leaves the calling program the rest of the 512 bytes BPF gives a call chain.
//! Instructions come from [`crate::asm`], so no `ld_imm64` and no relocation is ever emitted
//! (see `crate::object`).

use super::cbpf::{self, CbpfInsn};
use crate::asm::{
    AluOp, Asm, AsmError, CheckedLoad, Cond, Insn, Label, Offset, Reg, Size, FP,
    HELPER_PROBE_READ_KERNEL, R0, R1, R2, R3, R6, R7, R8, R9,
};
use crate::btf::RdonlyCast;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error("the compiled filter is empty")]
    Empty,
    #[error("cBPF instruction {pc} jumps backwards or out of the program (libpcap's protochain does this); such expressions are not supported")]
    BadJump { pc: usize },
    #[error("cBPF instruction {pc} has an unsupported opcode {code:#06x}")]
    Unsupported { pc: usize, code: u16 },
    #[error("cBPF instruction {pc} uses scratch memory M[{k}] (only M[0..15] exist)")]
    BadScratch { pc: usize, k: u32 },
    #[error("the filter is too large: a jump spans more than 32767 eBPF instructions")]
    TooLarge,
    #[error("cBPF instruction {pc} does not end the program with a return")]
    FallsOff { pc: usize },
}

const START: Reg = R6;
const LEN: Reg = R7;
const A: Reg = R8;
const X: Reg = R9;

const SCRATCH_BASE: i16 = -64;
const WINDOW_SIZE: u32 = 64;

/// Where the stack areas are, below M[] when the program has it.
#[derive(Clone, Copy)]
struct Layout {
    load_buf: i16,
    window: i16,
    /// Bytes of the window that hold packet data: min(length, 64), or 0 when the copy failed.
    window_len: i16,
}

impl Layout {
    fn new(uses_scratch: bool) -> Self {
        let base = if uses_scratch { SCRATCH_BASE } else { 0 };
        Self {
            load_buf: base - 8,
            window: base - 8 - WINDOW_SIZE as i16,
            window_len: base - 16 - WINDOW_SIZE as i16,
        }
    }
}

struct Emitter {
    asm: Asm,
    /// Shared "return 0" block, emitted at the end if anything jumps to it.
    reject: Label,
    /// How many of the packet's first bytes the prologue copies to the window (0: none).
    window: u32,
    layout: Layout,
}

impl Emitter {
    fn exit_with(&mut self, value_reg: Option<Reg>, imm: u32) {
        match value_reg {
            Some(r) => self.asm.mov32_reg(R0, r),
            None => self.asm.mov32_imm(R0, imm),
        }
        self.asm.exit();
    }

    /// Copies min(length, 64) packet bytes to the window and stores how many are valid (0 if
    /// the copy failed) after it.
    fn window_prologue(&mut self) {
        let Layout {
            window, window_len, ..
        } = self.layout;
        let a = &mut self.asm;
        let short = a.new_label();
        let copied = a.new_label();
        a.mov64_reg(R2, LEN);
        a.jump_if_imm(Cond::Le, R2, self.window as i32, short);
        a.mov64_imm(R2, self.window as i32);
        a.bind(short);
        a.store_reg(Size::DW, FP, window_len, R2);
        a.mov64_reg(R1, FP);
        a.alu64_imm(AluOp::Add, R1, i32::from(window));
        a.mov64_reg(R3, START);
        a.call(HELPER_PROBE_READ_KERNEL);
        a.jump_if_imm(Cond::Eq, R0, 0, copied);
        a.store_imm(Size::DW, FP, window_len, 0);
        a.bind(copied);
    }

    /// `dst = be(bytes at base+off .. +size)`, byte by byte (the verifier wants aligned stack
    /// reads). Uses r3.
    fn window_bytes(&mut self, dst: Reg, base: Reg, off: i16, size: u32) {
        let a = &mut self.asm;
        a.load(Size::B, dst, base, off);
        for i in 1..size as i16 {
            a.alu32_imm(AluOp::Lsh, dst, 8);
            a.load(Size::B, R3, base, off + i);
            a.alu32_reg(AluOp::Or, dst, R3);
        }
    }

    /// `dst = be(P[X+k or k .. +size])`, rejecting reads past the end or failed reads.
    fn load_packet(&mut self, dst: Reg, size: u32, offset: Offset) {
        // From the window when the bytes are in it; else (and after) the per-load path.
        let Layout {
            load_buf,
            window,
            window_len,
        } = self.layout;
        let outside = self.asm.new_label();
        let in_window = match offset {
            Offset::Const(k) if k.checked_add(size).is_some_and(|e| e <= self.window) => {
                self.asm.load(Size::DW, R1, FP, window_len);
                self.asm
                    .jump_if_imm(Cond::Lt, R1, (k + size) as i32, outside);
                self.window_bytes(dst, FP, window + k as i16, size);
                true
            }
            Offset::Reg(_, k) if k < self.window => {
                // r1 = X + k + size; inside if r1 <= window length (which is <= 64).
                let a = &mut self.asm;
                a.mov64_reg(R1, X);
                a.alu64_imm(AluOp::Add, R1, (k + size) as i32);
                a.load(Size::DW, R2, FP, window_len);
                a.jump_if_reg(Cond::Gt, R1, R2, outside);
                a.alu64_imm(AluOp::Add, R1, -(size as i32));
                // Never taken (window length <= 64), but older verifiers (6.1) do not carry
                // the bound from r2 to r1: a constant one proves the read is in the window.
                a.jump_if_imm(Cond::Gt, R1, (WINDOW_SIZE - size) as i32, outside);
                a.mov64_reg(R2, FP);
                a.alu64_reg(AluOp::Add, R2, R1);
                self.window_bytes(dst, R2, window, size);
                true
            }
            _ => false,
        };
        let done = self.asm.new_label();
        if in_window {
            self.asm.jump(done);
            self.asm.bind(outside);
        }
        // One `bpf_probe_read_kernel` per load.
        self.asm.load_checked(CheckedLoad {
            dst,
            base: START,
            len: LEN,
            offset,
            size: Size::from_bytes(size).expect("cBPF loads 1, 2 or 4 bytes"),
            buf: load_buf,
            big_endian: true,
            reject: self.reject,
        });
        if in_window {
            self.asm.bind(done);
        }
    }
}

/// Translates a libpcap program. The result returns non-zero for "match".
pub fn translate(prog: &[CbpfInsn]) -> Result<Vec<Insn>, TranslateError> {
    translate_with(prog, None)
}

/// [`translate`], with each packet load a direct load where the kernel allows it (`direct`; see
/// `Asm::direct_loads`): no window then, since copying one costs a helper call and each load
/// is a few instructions.
pub fn translate_with(
    prog: &[CbpfInsn],
    direct: Option<RdonlyCast>,
) -> Result<Vec<Insn>, TranslateError> {
    if prog.is_empty() {
        return Err(TranslateError::Empty);
    }
    let reachable = reachable(prog)?;
    let uses_scratch = prog.iter().any(|i| {
        matches!(i.class(), cbpf::ST | cbpf::STX)
            || (matches!(i.class(), cbpf::LD | cbpf::LDX) && i.mode() == cbpf::MEM)
    });

    let mut asm = Asm::with_capacity(prog.len() * 8).direct_loads(direct);
    let reject = asm.new_label();
    // One label per cBPF instruction; only reachable ones are bound (and jumped to).
    let at_pc: Vec<Label> = prog.iter().map(|_| asm.new_label()).collect();
    let mut e = Emitter {
        asm,
        reject,
        window: if direct.is_some() {
            0
        } else {
            window_size(prog, &reachable)
        },
        layout: Layout::new(uses_scratch),
    };
    // Prologue. A reversed range (end < start) is a bad call: reject.
    e.asm.jump_if_reg(Cond::Gt, R1, R2, reject);
    e.asm.mov64_reg(START, R1);
    e.asm.mov64_reg(LEN, R2);
    e.asm.alu64_reg(AluOp::Sub, LEN, R1);
    e.asm.mov32_imm(A, 0);
    e.asm.mov32_imm(X, 0);
    if e.window != 0 {
        e.window_prologue();
    }
    if uses_scratch {
        // The verifier refuses reads of uninitialised stack; cBPF's M[] starts as zero here.
        for slot in 0..8 {
            e.asm.store_imm(Size::DW, FP, SCRATCH_BASE + slot * 8, 0);
        }
    }

    for (pc, insn) in prog.iter().enumerate() {
        if !reachable[pc] {
            continue; // the verifier rejects unreachable instructions
        }
        e.asm.bind(at_pc[pc]);
        if always_rejects(insn) {
            // Nothing of it may follow the jump: the verifier refuses unreachable code.
            e.asm.jump(e.reject);
            continue;
        }
        let k = insn.k;
        let next = |off: u32| at_pc[pc + 1 + off as usize];
        match insn.class() {
            cbpf::LD | cbpf::LDX => {
                let dst = if insn.class() == cbpf::LD { A } else { X };
                match (insn.mode(), insn.class()) {
                    (cbpf::IMM, _) => e.asm.mov32_imm(dst, k),
                    (cbpf::LEN, _) => e.asm.mov32_reg(dst, LEN),
                    (cbpf::MEM, _) => e.asm.load(Size::W, dst, FP, scratch(pc, k)?),
                    (cbpf::ABS, cbpf::LD) => {
                        e.load_packet(A, load_size(insn, pc)?, Offset::Const(k))
                    }
                    (cbpf::IND, cbpf::LD) => {
                        e.load_packet(A, load_size(insn, pc)?, Offset::Reg(X, k))
                    }
                    (cbpf::MSH, cbpf::LDX) if insn.size() == cbpf::B => {
                        // X = 4 * (P[k] & 0xf): the IPv4 header length.
                        e.load_packet(X, 1, Offset::Const(k));
                        e.asm.alu32_imm(AluOp::And, X, 0xf);
                        e.asm.alu32_imm(AluOp::Lsh, X, 2);
                    }
                    _ => return Err(unsupported(pc, insn)),
                }
            }
            cbpf::ST => e.asm.store_reg(Size::W, FP, scratch(pc, k)?, A),
            cbpf::STX => e.asm.store_reg(Size::W, FP, scratch(pc, k)?, X),
            cbpf::ALU => alu(&mut e, pc, insn)?,
            cbpf::JMP => {
                let op = insn.op();
                if op == cbpf::JA {
                    e.asm.jump(next(k));
                    continue;
                }
                let cond = match op {
                    cbpf::JEQ => Cond::Eq,
                    cbpf::JGT => Cond::Gt,
                    cbpf::JGE => Cond::Ge,
                    cbpf::JSET => Cond::Set,
                    _ => return Err(unsupported(pc, insn)),
                };
                if insn.src() == cbpf::X {
                    e.asm.jump32_if_reg(cond, A, X, next(insn.jt as u32));
                } else {
                    e.asm.jump32_if_imm(cond, A, k as i32, next(insn.jt as u32));
                }
                if insn.jf != 0 {
                    e.asm.jump(next(insn.jf as u32));
                }
            }
            cbpf::RET => match insn.rval() {
                cbpf::RVAL_K => e.exit_with(None, k),
                cbpf::RVAL_A => e.exit_with(Some(A), 0),
                cbpf::RVAL_X => e.exit_with(Some(X), 0),
                _ => return Err(unsupported(pc, insn)),
            },
            cbpf::MISC => match insn.misc_op() {
                cbpf::TAX => e.asm.mov32_reg(X, A),
                cbpf::TXA => e.asm.mov32_reg(A, X),
                _ => return Err(unsupported(pc, insn)),
            },
            _ => return Err(unsupported(pc, insn)),
        }
    }

    if e.asm.is_used(reject) {
        e.asm.bind(reject);
        e.exit_with(None, 0);
    }
    e.asm.finish().map_err(|err| match err {
        AsmError::JumpTooFar { .. } => TranslateError::TooLarge,
        // Every jump goes to a reachable (so bound) instruction or to the bound reject block.
        AsmError::Unbound { at } => unreachable!("jump at {at} to an unbound label"),
    })
}

fn alu(e: &mut Emitter, pc: usize, insn: &CbpfInsn) -> Result<(), TranslateError> {
    let op = insn.op();
    let a = &mut e.asm;
    if op == cbpf::NEG {
        a.alu32_imm(AluOp::Neg, A, 0);
        return Ok(());
    }
    let ebpf_op = match op {
        cbpf::ADD => AluOp::Add,
        cbpf::SUB => AluOp::Sub,
        cbpf::MUL => AluOp::Mul,
        cbpf::DIV => AluOp::Div,
        cbpf::OR => AluOp::Or,
        cbpf::AND => AluOp::And,
        cbpf::LSH => AluOp::Lsh,
        cbpf::RSH => AluOp::Rsh,
        cbpf::MOD => AluOp::Mod,
        cbpf::XOR => AluOp::Xor,
        _ => return Err(unsupported(pc, insn)),
    };
    let divides = matches!(op, cbpf::DIV | cbpf::MOD);
    let shifts = matches!(op, cbpf::LSH | cbpf::RSH);
    if shifts && insn.src() == cbpf::X {
        // libpcap: a shift by 32 or more gives 0 (eBPF would take the count modulo 32).
        let zero = a.new_label();
        let done = a.new_label();
        a.jump32_if_imm(Cond::Ge, X, 32, zero);
        a.alu32_reg(ebpf_op, A, X);
        a.jump(done);
        a.bind(zero);
        a.mov32_imm(A, 0);
        a.bind(done);
        return Ok(());
    }
    if shifts && insn.k >= 32 {
        // Same rule for a constant count (libpcap's compiler refuses these; the verifier too).
        a.mov32_imm(A, 0);
        return Ok(());
    }
    if insn.src() == cbpf::X {
        if divides {
            // eBPF defines x/0 = 0 and x%0 = x; cBPF rejects the packet.
            a.jump_if_imm(Cond::Eq, X, 0, e.reject);
        }
        a.alu32_reg(ebpf_op, A, X);
    } else {
        let k = insn.k;
        if divides && k == 0 {
            a.jump(e.reject);
            return Ok(());
        }
        a.alu32_imm(ebpf_op, A, k as i32);
    }
    Ok(())
}

/// How many leading packet bytes to copy up front: enough for every load that fits in the first
/// 64 bytes (all 64 when a load is indirect: X is only known at run time), rounded up to 8; 0
/// unless two or more loads would use them (then one copy beats a helper call per load).
fn window_size(prog: &[CbpfInsn], reachable: &[bool]) -> u32 {
    let needs = |insn: &CbpfInsn| -> Option<u32> {
        let size = match insn.size() {
            cbpf::B => 1,
            cbpf::H => 2,
            _ => 4,
        };
        let end = match (insn.class(), insn.mode()) {
            (cbpf::LD, cbpf::ABS) => insn.k.checked_add(size)?,
            (cbpf::LDX, cbpf::MSH) => insn.k.checked_add(1)?,
            (cbpf::LD, cbpf::IND) if insn.k < WINDOW_SIZE => WINDOW_SIZE,
            _ => return None,
        };
        (end <= WINDOW_SIZE).then_some(end)
    };
    let ends: Vec<u32> = prog
        .iter()
        .zip(reachable)
        .filter(|(_, &r)| r)
        .filter_map(|(insn, _)| needs(insn))
        .collect();
    if ends.len() < 2 {
        return 0;
    }
    ends.iter().max().map_or(0, |&end| end.next_multiple_of(8))
}

fn load_size(insn: &CbpfInsn, pc: usize) -> Result<u32, TranslateError> {
    match insn.size() {
        cbpf::W => Ok(4),
        cbpf::H => Ok(2),
        cbpf::B => Ok(1),
        _ => Err(unsupported(pc, insn)),
    }
}

fn scratch(pc: usize, k: u32) -> Result<i16, TranslateError> {
    if k >= 16 {
        return Err(TranslateError::BadScratch { pc, k });
    }
    Ok(SCRATCH_BASE + 4 * k as i16)
}

fn unsupported(pc: usize, insn: &CbpfInsn) -> TranslateError {
    TranslateError::Unsupported {
        pc,
        code: insn.code,
    }
}

/// Which instructions some path from the first one reaches; also checks that every jump goes
/// forward inside the program and that no path runs off the end.
/// Whether `insn` rejects every packet, so that the translation is a jump to the reject block
/// (libpcap's compiler never emits these; arbitrary programs may): a load at a constant offset
/// no packet reaches (`Asm::load_checked`'s rule), or a division by a constant zero. Whatever
/// follows it is reached only by jumps (the verifier refuses unreachable code).
fn always_rejects(insn: &CbpfInsn) -> bool {
    let unreachable_load = |size: u32| {
        insn.k
            .checked_add(size)
            .is_none_or(|end| end > i32::MAX as u32)
    };
    match (insn.class(), insn.mode()) {
        (cbpf::LD, cbpf::ABS) => unreachable_load(match insn.size() {
            cbpf::B => 1,
            cbpf::H => 2,
            _ => 4,
        }),
        (cbpf::LDX, cbpf::MSH) => unreachable_load(1),
        (cbpf::ALU, _) => {
            matches!(insn.op(), cbpf::DIV | cbpf::MOD) && insn.src() != cbpf::X && insn.k == 0
        }
        _ => false,
    }
}

fn reachable(prog: &[CbpfInsn]) -> Result<Vec<bool>, TranslateError> {
    let mut seen = vec![false; prog.len()];
    seen[0] = true;
    for pc in 0..prog.len() {
        if !seen[pc] {
            continue;
        }
        let insn = &prog[pc];
        let mut go = |off: u64| -> Result<(), TranslateError> {
            let to = pc as u64 + 1 + off;
            if to >= prog.len() as u64 {
                // cBPF jumps are unsigned: a "negative" k (protochain) lands past the end too.
                return Err(if insn.class() == cbpf::JMP {
                    TranslateError::BadJump { pc }
                } else {
                    TranslateError::FallsOff { pc }
                });
            }
            seen[to as usize] = true;
            Ok(())
        };
        match insn.class() {
            cbpf::RET => {}
            // Translated to a jump to the reject block: nothing falls through.
            _ if always_rejects(insn) => {}
            cbpf::JMP if insn.op() == cbpf::JA => go(insn.k as u64)?,
            cbpf::JMP => {
                go(insn.jt as u64)?;
                go(insn.jf as u64)?;
            }
            _ => go(0)?,
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> CbpfInsn {
        CbpfInsn { code, jt, jf, k }
    }

    /// Every eBPF instruction is reached from the first (the verifier refuses the program
    /// otherwise): a walk over fall-throughs and jumps.
    fn all_reachable(code: &[Insn]) -> Result<(), usize> {
        let mut seen = vec![false; code.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= code.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            let i = code[pc];
            let class = i.code & 0x07;
            let op = i.code & 0xf0;
            if class == crate::asm::JMP || class == crate::asm::JMP32 {
                match op {
                    0x90 => continue, // exit
                    0x80 => todo.push(pc + 1),
                    0x00 => todo.push((pc as i64 + 1 + i64::from(i.off)) as usize),
                    _ => {
                        todo.push(pc + 1);
                        todo.push((pc as i64 + 1 + i64::from(i.off)) as usize);
                    }
                }
            } else {
                todo.push(pc + 1);
            }
        }
        match seen.iter().position(|s| !s) {
            Some(pc) => Err(pc),
            None => Ok(()),
        }
    }

    #[test]
    fn instructions_that_always_reject_leave_no_unreachable_code() {
        let ret1 = ins(cbpf::RET | cbpf::RVAL_K, 0, 0, 1);
        for first in [
            ins(cbpf::LD | cbpf::H | cbpf::ABS, 0, 0, u32::MAX),
            ins(cbpf::LD | cbpf::W | cbpf::ABS, 0, 0, i32::MAX as u32 - 2),
            ins(cbpf::LDX | cbpf::B | cbpf::MSH, 0, 0, u32::MAX),
            ins(cbpf::ALU | cbpf::DIV, 0, 0, 0),
            ins(cbpf::ALU | cbpf::MOD, 0, 0, 0),
        ] {
            // Alone, and with code after it that only a jump reaches.
            for prog in [
                vec![first, ret1],
                vec![
                    ins(cbpf::JMP | cbpf::JEQ, 0, 2, 7),
                    first,
                    ins(cbpf::LD | cbpf::W | cbpf::LEN, 0, 0, 0),
                    ret1,
                ],
            ] {
                let code = translate(&prog).unwrap();
                assert_eq!(all_reachable(&code), Ok(()), "{prog:?}");
            }
        }
    }

    #[test]
    fn accept_all_is_tiny_and_has_no_reject_block() {
        let out = translate(&[ins(0x06, 0, 0, 262_144)]).unwrap();
        // prologue (6) + w0 = k + exit + the reject block the prologue's range check needs
        assert_eq!(out.len(), 10);
        assert_eq!(out[0].off, 7, "range check jumps to the reject block");
    }

    #[test]
    fn refuses_backward_and_out_of_range_jumps() {
        // ja -1 (u32::MAX) loops back
        let prog = [ins(0x05, 0, 0, u32::MAX), ins(0x06, 0, 0, 0)];
        assert_eq!(translate(&prog), Err(TranslateError::BadJump { pc: 0 }));
        let prog = [ins(0x15, 5, 0, 1), ins(0x06, 0, 0, 0)];
        assert_eq!(translate(&prog), Err(TranslateError::BadJump { pc: 0 }));
        let prog = [ins(0x00, 0, 0, 1)];
        assert_eq!(translate(&prog), Err(TranslateError::FallsOff { pc: 0 }));
    }

    #[test]
    fn skips_unreachable_code() {
        // ret #1; ld #2 (dead); ret a (dead)
        let prog = [ins(0x06, 0, 0, 1), ins(0x00, 0, 0, 2), ins(0x16, 0, 0, 0)];
        let out = translate(&prog).unwrap();
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn division_by_constant_zero_rejects() {
        let prog = [ins(0x34, 0, 0, 0), ins(0x16, 0, 0, 0)];
        let out = translate(&prog).unwrap();
        assert!(out
            .iter()
            .any(|i| i.code == (crate::asm::JMP | crate::asm::JA)));
    }

    #[test]
    fn window_covers_the_loads_that_fit_in_64_bytes() {
        let all = [true; 8];
        // ldh [12]; ld [26]; ld [30]; ret #1: the highest byte read is 33.
        let host = [
            ins(0x28, 0, 0, 12),
            ins(0x20, 0, 0, 26),
            ins(0x20, 0, 0, 30),
            ins(0x06, 0, 0, 1),
        ];
        assert_eq!(window_size(&host, &all), 40);
        // One load: a copy would not save a helper call.
        assert_eq!(window_size(&host[2..], &all), 0);
        // An unreachable load does not count.
        assert_eq!(window_size(&host, &[false, true, false, true]), 0);
        // ldxb 4*([14]&0xf); ldh [x+16]: X is unknown until run time.
        let port = [ins(0xb1, 0, 0, 14), ins(0x48, 0, 0, 16), ins(0x06, 0, 0, 1)];
        assert_eq!(window_size(&port, &all), 64);
        // ld [62] straddles the end; ld [100] is past it.
        let far = [
            ins(0x20, 0, 0, 62),
            ins(0x20, 0, 0, 100),
            ins(0x06, 0, 0, 1),
        ];
        assert_eq!(window_size(&far, &all), 0);
    }

    /// Per-hit cost: instruction counts of common filters (both forms), at most what the
    /// translator emitted before it moved onto `asm` (host 142/87, tcp port 443 200/211, icmp 56/53),
    /// plus one bound check per X-indexed window load that 6.1's verifier needs.
    #[test]
    fn common_filters_stay_small() {
        use crate::filter::View;
        for (expr, l2_max, l3_max) in [
            ("host 10.99.99.99", 142, 87),
            ("tcp port 443", 202, 213),
            ("icmp", 56, 53),
        ] {
            for (view, max) in [(View::Ethernet, l2_max), (View::Raw, l3_max)] {
                let compiled = cbpf::compile(expr, view).expect("libpcap compiles it");
                let n = translate(&compiled.instructions())
                    .expect("translates")
                    .len();
                eprintln!("{expr} ({view:?}): {n} instructions");
                assert!(n <= max, "{expr} ({view:?}): {n} > {max} instructions");
            }
        }
    }
}
