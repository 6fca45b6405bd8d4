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
//! Registers: r6 = start, r7 = packet length, w8 = A, w9 = X. Stack: M[0..15] at fp-64..fp-4,
//! an 8-byte load buffer at fp-72, the window at fp-136..fp-73 and its valid length at fp-144.
//! No `ld_imm64` is ever emitted (see `inject`).

use super::cbpf::{self, CbpfInsn};

/// One eBPF instruction, as the kernel lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0xf);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

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

// eBPF opcode parts.
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const SIZE_W: u8 = 0x00;
const SIZE_H: u8 = 0x08;
const SIZE_B: u8 = 0x10;
const SIZE_DW: u8 = 0x18;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const OP_ADD: u8 = 0x00;
const OP_MOV: u8 = 0xb0;
const OP_END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
const J_JA: u8 = 0x00;
const J_JEQ: u8 = 0x10;
const J_JGT: u8 = 0x20;
const J_JNE: u8 = 0x50;
const J_JLT: u8 = 0xa0;
const J_JLE: u8 = 0xb0;
const OP_OR: u8 = 0x40;
const OP_LSH: u8 = 0x60;
const J_CALL: u8 = 0x80;
const J_EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const START: u8 = 6;
const LEN: u8 = 7;
const A: u8 = 8;
const X: u8 = 9;
const FP: u8 = 10;

const SCRATCH_BASE: i16 = -64;
const LOAD_BUF: i16 = -72;
const WINDOW: i16 = -136;
const WINDOW_SIZE: u32 = 64;
/// Bytes of the window that hold packet data: min(length, 64), or 0 when the copy failed.
const WINDOW_LEN: i16 = -144;
const BPF_FUNC_PROBE_READ_KERNEL: i32 = 113;

/// Where a jump goes before offsets are known.
#[derive(Clone, Copy, Debug)]
enum Target {
    Cbpf(usize),
    Reject,
}

struct Emitter {
    out: Vec<Insn>,
    fixups: Vec<(usize, Target)>,
    /// How many of the packet's first bytes the prologue copies to [`WINDOW`] (0: none).
    window: u32,
}

impl Emitter {
    fn insn(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.out.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }
    fn mov64_reg(&mut self, dst: u8, src: u8) {
        self.insn(ALU64 | OP_MOV | SRC_X, dst, src, 0, 0);
    }
    fn mov32_reg(&mut self, dst: u8, src: u8) {
        self.insn(ALU | OP_MOV | SRC_X, dst, src, 0, 0);
    }
    /// `wDST = imm`, zero-extended: any u32 constant without sign extension.
    fn mov32_imm(&mut self, dst: u8, imm: u32) {
        self.insn(ALU | OP_MOV | SRC_K, dst, 0, 0, imm as i32);
    }
    fn add64_imm(&mut self, dst: u8, imm: i32) {
        self.insn(ALU64 | OP_ADD | SRC_K, dst, 0, 0, imm);
    }
    fn add64_reg(&mut self, dst: u8, src: u8) {
        self.insn(ALU64 | OP_ADD | SRC_X, dst, src, 0, 0);
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, target: Target) {
        self.fixups.push((self.out.len(), target));
        self.insn(code, dst, src, 0, imm);
    }
    /// A jump inside the code being emitted; [`Emitter::land`] points it at the next instruction.
    fn forward_jump(&mut self, code: u8, dst: u8, src: u8, imm: i32) -> usize {
        self.insn(code, dst, src, 0, imm);
        self.out.len() - 1
    }
    fn land(&mut self, jump: usize) {
        self.out[jump].off = (self.out.len() - jump - 1) as i16;
    }
    fn exit_with(&mut self, value_reg: Option<u8>, imm: u32) {
        match value_reg {
            Some(r) => self.mov32_reg(R0, r),
            None => self.mov32_imm(R0, imm),
        }
        self.insn(JMP | J_EXIT, 0, 0, 0, 0);
    }

    /// Copies min(length, 64) packet bytes to [`WINDOW`] and stores how many are valid
    /// (0 if the copy failed) at [`WINDOW_LEN`].
    fn window_prologue(&mut self) {
        self.mov64_reg(R2, LEN);
        self.insn(JMP | J_JLE | SRC_K, R2, 0, 1, self.window as i32);
        self.insn(ALU64 | OP_MOV | SRC_K, R2, 0, 0, self.window as i32);
        self.insn(STX | MEM | SIZE_DW, FP, R2, WINDOW_LEN, 0);
        self.mov64_reg(R1, FP);
        self.add64_imm(R1, WINDOW as i32);
        self.mov64_reg(R3, START);
        self.insn(JMP | J_CALL, 0, 0, 0, BPF_FUNC_PROBE_READ_KERNEL);
        self.insn(JMP | J_JEQ | SRC_K, R0, 0, 1, 0);
        self.insn(ST | MEM | SIZE_DW, FP, 0, WINDOW_LEN, 0);
    }

    /// `dst = be(bytes at base+off .. +size)`, byte by byte (the verifier wants aligned stack
    /// reads). Uses r3.
    fn window_bytes(&mut self, dst: u8, base: u8, off: i16, size: u32) {
        self.insn(LDX | MEM | SIZE_B, dst, base, off, 0);
        for i in 1..size as i16 {
            self.insn(ALU | OP_LSH | SRC_K, dst, 0, 0, 8);
            self.insn(LDX | MEM | SIZE_B, R3, base, off + i, 0);
            self.insn(ALU | OP_OR | SRC_X, dst, R3, 0, 0);
        }
    }

    /// `dst = be(P[off_reg or k .. +size])`, rejecting reads past the end or failed reads.
    fn load_packet(&mut self, dst: u8, size: u32, offset: Offset) {
        // From the window when the bytes are in it; else (and after) the per-load path.
        let to_load = match offset {
            Offset::Abs(k) if k.checked_add(size).is_some_and(|e| e <= self.window) => {
                self.insn(LDX | MEM | SIZE_DW, R1, FP, WINDOW_LEN, 0);
                let outside = self.forward_jump(JMP | J_JLT | SRC_K, R1, 0, (k + size) as i32);
                self.window_bytes(dst, FP, WINDOW + k as i16, size);
                Some(outside)
            }
            Offset::Ind(k) if k < self.window => {
                // r1 = X + k + size; inside if r1 <= window length (which is <= 64).
                self.mov64_reg(R1, X);
                self.add64_imm(R1, (k + size) as i32);
                self.insn(LDX | MEM | SIZE_DW, R2, FP, WINDOW_LEN, 0);
                let outside = self.forward_jump(JMP | J_JGT | SRC_X, R1, R2, 0);
                self.add64_imm(R1, -(size as i32));
                self.mov64_reg(R2, FP);
                self.add64_reg(R2, R1);
                self.window_bytes(dst, R2, WINDOW, size);
                Some(outside)
            }
            _ => None,
        };
        let to_done = to_load.map(|outside| {
            let done = self.forward_jump(JMP | J_JA, 0, 0, 0);
            self.land(outside);
            done
        });
        self.load_packet_slow(dst, size, offset);
        if let Some(done) = to_done {
            self.land(done);
        }
    }

    /// One `bpf_probe_read_kernel` per load.
    fn load_packet_slow(&mut self, dst: u8, size: u32, offset: Offset) {
        match offset {
            Offset::Abs(k) => {
                let Some(end) = k.checked_add(size).filter(|&e| e <= i32::MAX as u32) else {
                    self.jump(JMP | J_JA, 0, 0, 0, Target::Reject);
                    return;
                };
                // if len < k + size: reject
                self.jump(JMP | J_JLT | SRC_K, LEN, 0, end as i32, Target::Reject);
                self.mov64_reg(R3, START);
                self.add64_imm(R3, k as i32);
            }
            Offset::Ind(k) => {
                // 64-bit sums: X + k + size cannot wrap around.
                self.mov64_reg(R1, X);
                self.mov32_imm(R2, k);
                self.add64_reg(R1, R2);
                self.mov64_reg(R2, R1);
                self.add64_imm(R2, size as i32);
                self.jump(JMP | J_JGT | SRC_X, R2, LEN, 0, Target::Reject);
                self.mov64_reg(R3, START);
                self.add64_reg(R3, R1);
            }
        }
        self.mov64_reg(R1, FP);
        self.add64_imm(R1, LOAD_BUF as i32);
        self.insn(ALU64 | OP_MOV | SRC_K, R2, 0, 0, size as i32);
        self.insn(JMP | J_CALL, 0, 0, 0, BPF_FUNC_PROBE_READ_KERNEL);
        self.jump(JMP | J_JNE | SRC_K, R0, 0, 0, Target::Reject);
        let (width, swap) = match size {
            1 => (SIZE_B, None),
            2 => (SIZE_H, Some(16)),
            _ => (SIZE_W, Some(32)),
        };
        self.insn(LDX | MEM | width, dst, FP, LOAD_BUF, 0);
        if let Some(bits) = swap {
            self.insn(ALU | OP_END | TO_BE, dst, 0, 0, bits);
        }
    }
}

#[derive(Clone, Copy)]
enum Offset {
    Abs(u32),
    Ind(u32),
}

/// Translates a libpcap program. The result returns non-zero for "match".
pub fn translate(prog: &[CbpfInsn]) -> Result<Vec<Insn>, TranslateError> {
    if prog.is_empty() {
        return Err(TranslateError::Empty);
    }
    let reachable = reachable(prog)?;
    let uses_scratch = prog.iter().any(|i| {
        matches!(i.class(), cbpf::ST | cbpf::STX)
            || (matches!(i.class(), cbpf::LD | cbpf::LDX) && i.mode() == cbpf::MEM)
    });

    let mut e = Emitter {
        out: Vec::with_capacity(prog.len() * 8),
        fixups: Vec::new(),
        window: window_size(prog, &reachable),
    };
    // Prologue. A reversed range (end < start) is a bad call: reject.
    e.jump(JMP | J_JGT | SRC_X, R1, R2, 0, Target::Reject);
    e.mov64_reg(START, R1);
    e.mov64_reg(LEN, R2);
    e.insn(ALU64 | 0x10 | SRC_X, LEN, R1, 0, 0); // LEN -= start
    e.mov32_imm(A, 0);
    e.mov32_imm(X, 0);
    if e.window != 0 {
        e.window_prologue();
    }
    if uses_scratch {
        // The verifier refuses reads of uninitialised stack; cBPF's M[] starts as zero here.
        for slot in 0..8 {
            e.insn(ST | MEM | SIZE_DW, FP, 0, SCRATCH_BASE + slot * 8, 0);
        }
    }

    let mut start_of = vec![usize::MAX; prog.len()];
    for (pc, insn) in prog.iter().enumerate() {
        if !reachable[pc] {
            continue; // the verifier rejects unreachable instructions
        }
        start_of[pc] = e.out.len();
        let k = insn.k;
        let next = |off: u32| Target::Cbpf(pc + 1 + off as usize);
        match insn.class() {
            cbpf::LD | cbpf::LDX => {
                let dst = if insn.class() == cbpf::LD { A } else { X };
                match (insn.mode(), insn.class()) {
                    (cbpf::IMM, _) => e.mov32_imm(dst, k),
                    (cbpf::LEN, _) => e.mov32_reg(dst, LEN),
                    (cbpf::MEM, _) => {
                        let off = scratch(pc, k)?;
                        e.insn(LDX | MEM | SIZE_W, dst, FP, off, 0);
                    }
                    (cbpf::ABS, cbpf::LD) => e.load_packet(A, load_size(insn, pc)?, Offset::Abs(k)),
                    (cbpf::IND, cbpf::LD) => e.load_packet(A, load_size(insn, pc)?, Offset::Ind(k)),
                    (cbpf::MSH, cbpf::LDX) if insn.size() == cbpf::B => {
                        // X = 4 * (P[k] & 0xf): the IPv4 header length.
                        e.load_packet(X, 1, Offset::Abs(k));
                        e.insn(ALU | 0x50 | SRC_K, X, 0, 0, 0xf);
                        e.insn(ALU | 0x60 | SRC_K, X, 0, 0, 2);
                    }
                    _ => return Err(unsupported(pc, insn)),
                }
            }
            cbpf::ST => e.insn(STX | MEM | SIZE_W, FP, A, scratch(pc, k)?, 0),
            cbpf::STX => e.insn(STX | MEM | SIZE_W, FP, X, scratch(pc, k)?, 0),
            cbpf::ALU => alu(&mut e, pc, insn)?,
            cbpf::JMP => {
                let op = insn.op();
                if op == cbpf::JA {
                    e.jump(JMP | J_JA, 0, 0, 0, next(k));
                    continue;
                }
                let cond = match op {
                    cbpf::JEQ => 0x10,
                    cbpf::JGT => 0x20,
                    cbpf::JGE => 0x30,
                    cbpf::JSET => 0x40,
                    _ => return Err(unsupported(pc, insn)),
                };
                let (src_bit, src, imm) = if insn.src() == cbpf::X {
                    (SRC_X, X, 0)
                } else {
                    (SRC_K, 0, k as i32)
                };
                e.jump(JMP32 | cond | src_bit, A, src, imm, next(insn.jt as u32));
                if insn.jf != 0 {
                    e.jump(JMP | J_JA, 0, 0, 0, next(insn.jf as u32));
                }
            }
            cbpf::RET => match insn.rval() {
                cbpf::RVAL_K => e.exit_with(None, k),
                cbpf::RVAL_A => e.exit_with(Some(A), 0),
                cbpf::RVAL_X => e.exit_with(Some(X), 0),
                _ => return Err(unsupported(pc, insn)),
            },
            cbpf::MISC => match insn.misc_op() {
                cbpf::TAX => e.mov32_reg(X, A),
                cbpf::TXA => e.mov32_reg(A, X),
                _ => return Err(unsupported(pc, insn)),
            },
            _ => return Err(unsupported(pc, insn)),
        }
    }

    let reject_at = e.out.len();
    if e.fixups.iter().any(|(_, t)| matches!(t, Target::Reject)) {
        e.exit_with(None, 0);
    }
    for (at, target) in std::mem::take(&mut e.fixups) {
        let to = match target {
            Target::Cbpf(pc) => start_of[pc],
            Target::Reject => reject_at,
        };
        debug_assert_ne!(to, usize::MAX, "jump into an unreachable instruction");
        let off = to as i64 - (at as i64 + 1);
        e.out[at].off = i16::try_from(off).map_err(|_| TranslateError::TooLarge)?;
    }
    Ok(e.out)
}

fn alu(e: &mut Emitter, pc: usize, insn: &CbpfInsn) -> Result<(), TranslateError> {
    let op = insn.op();
    if op == cbpf::NEG {
        e.insn(ALU | 0x80, A, 0, 0, 0);
        return Ok(());
    }
    let ebpf_op = match op {
        cbpf::ADD => 0x00,
        cbpf::SUB => 0x10,
        cbpf::MUL => 0x20,
        cbpf::DIV => 0x30,
        cbpf::OR => 0x40,
        cbpf::AND => 0x50,
        cbpf::LSH => 0x60,
        cbpf::RSH => 0x70,
        cbpf::MOD => 0x90,
        cbpf::XOR => 0xa0,
        _ => return Err(unsupported(pc, insn)),
    };
    let divides = matches!(op, cbpf::DIV | cbpf::MOD);
    let shifts = matches!(op, cbpf::LSH | cbpf::RSH);
    if shifts && insn.src() == cbpf::X {
        // libpcap: a shift by 32 or more gives 0 (eBPF would take the count modulo 32).
        e.insn(JMP32 | 0x30 | SRC_K, X, 0, 2, 32); // if wX >= 32 goto zero
        e.insn(ALU | ebpf_op | SRC_X, A, X, 0, 0);
        e.insn(JMP | J_JA, 0, 0, 1, 0);
        e.mov32_imm(A, 0); // zero:
        return Ok(());
    }
    if shifts && insn.k >= 32 {
        // Same rule for a constant count (libpcap's compiler refuses these; the verifier too).
        e.mov32_imm(A, 0);
        return Ok(());
    }
    if insn.src() == cbpf::X {
        if divides {
            // eBPF defines x/0 = 0 and x%0 = x; cBPF rejects the packet.
            e.jump(JMP | J_JEQ | SRC_K, X, 0, 0, Target::Reject);
        }
        e.insn(ALU | ebpf_op | SRC_X, A, X, 0, 0);
    } else {
        let k = insn.k;
        if divides && k == 0 {
            e.jump(JMP | J_JA, 0, 0, 0, Target::Reject);
            return Ok(());
        }
        e.insn(ALU | ebpf_op | SRC_K, A, 0, 0, k as i32);
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

    #[test]
    fn encodes_like_the_kernel() {
        let i = Insn {
            code: 0xbf,
            dst: 6,
            src: 1,
            off: -1,
            imm: 0x1234_5678,
        };
        assert_eq!(
            i.to_bytes(),
            [0xbf, 0x16, 0xff, 0xff, 0x78, 0x56, 0x34, 0x12]
        );
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
        assert!(out.iter().any(|i| i.code == (JMP | J_JA)));
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
}
