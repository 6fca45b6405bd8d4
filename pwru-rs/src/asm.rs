//! A small eBPF assembler for the code pwru-rs generates at run time (the translated pcap filter,
//! BTF field expressions) and injects into the kernel object before load.
//!
//! [`Asm`] appends instructions and resolves jumps to [`Label`]s in [`Asm::finish`]. Besides the
//! plain ALU/memory/jump instructions it has the two loads generated code needs, because it reads
//! kernel memory (an skb's data, its fields, pointers to other structs) and not a BPF packet:
//! [`Asm::load_kernel`] (`bpf_probe_read_kernel` into a stack buffer, then a register load) and
//! [`Asm::load_checked`] (the same after a bounds check against a length).
//!
//! Constraints every sequence meets, because the code replaces a stub in an object aya already
//! has relocations and BTF line info for (see `crate::object`):
//! - no `ld_imm64`: it is the only two-slot instruction, and a stale line-info record pointing at
//!   its second half makes the load fail; so constants are at most 32 bits (`mov32` zero-extends,
//!   `mov64` sign-extends),
//! - no relocations: no map references, no calls to BPF functions, only helper calls by number
//!   and kfunc calls by vmlinux BTF id.

use crate::btf::RdonlyCast;

/// One eBPF instruction, as the kernel lays it out (`struct bpf_insn`).
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

/// Instruction classes (low 3 bits of the opcode).
pub const LD: u8 = 0x00;
pub const LDX: u8 = 0x01;
pub const ST: u8 = 0x02;
pub const STX: u8 = 0x03;
pub const ALU: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const JMP32: u8 = 0x06;
pub const ALU64: u8 = 0x07;
/// Memory access mode.
pub const MEM: u8 = 0x60;
/// Operand source: the immediate (`K`) or the source register (`X`).
pub const SRC_K: u8 = 0x00;
pub const SRC_X: u8 = 0x08;
/// Byte swap (`ALU | END`) to big or little endian.
pub const END: u8 = 0xd0;
pub const TO_BE: u8 = 0x08;
pub const TO_LE: u8 = 0x00;
/// Jump-class operations that are not conditions.
pub const JA: u8 = 0x00;
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;

/// Helper `long bpf_probe_read_kernel(void *dst, u32 size, const void *unsafe_ptr)`.
pub const HELPER_PROBE_READ_KERNEL: i32 = 113;

/// A register. `R0` holds return values, `R1..=R5` are arguments (clobbered by calls),
/// `R6..=R9` survive calls, `R10` (`FP`) is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const R10: Reg = Reg(10);
pub const FP: Reg = R10;

impl Reg {
    pub fn index(self) -> u8 {
        self.0
    }
}

/// ALU operations (the opcode's high nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Div = 0x30,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Neg = 0x80,
    Mod = 0x90,
    Xor = 0xa0,
    Mov = 0xb0,
    Arsh = 0xc0,
}

/// Jump conditions (unsigned unless `S`-prefixed), `dst <op> src/imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Set = 0x40,
    Ne = 0x50,
    Sgt = 0x60,
    Sge = 0x70,
    Lt = 0xa0,
    Le = 0xb0,
    Slt = 0xc0,
    Sle = 0xd0,
}

/// Width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    DW = 0x18,
}

impl Size {
    pub fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The access of `bytes` bytes, if there is one.
    pub fn from_bytes(bytes: u32) -> Option<Size> {
        match bytes {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }
}

/// A jump target in an [`Asm`]; bound to a position with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsmError {
    /// eBPF jump offsets are 16-bit.
    #[error("the jump at instruction {at} to instruction {to} spans more than 32767 instructions")]
    JumpTooFar { at: usize, to: usize },
    #[error("the jump at instruction {at} goes to a label that is never bound")]
    Unbound { at: usize },
}

/// Where the bytes of a checked load start, relative to the base register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offset {
    /// A constant offset.
    Const(u32),
    /// The low 32 bits of a register (zero-extended, as ALU32 leaves them) plus a constant.
    Reg(Reg, u32),
}

/// A load of `size` bytes of kernel memory from `base + offset`, valid only when
/// `offset + size <= len`; see [`Asm::load_checked`].
#[derive(Clone, Copy, Debug)]
pub struct CheckedLoad {
    pub dst: Reg,
    pub base: Reg,
    /// How many bytes from `base` may be read (e.g. packet end - packet start).
    pub len: Reg,
    pub offset: Offset,
    pub size: Size,
    /// Stack offset (from `FP`) of a buffer of at least `size` bytes, aligned to `size`.
    pub buf: i16,
    /// Convert from big endian (network order) to the host's order.
    pub big_endian: bool,
    /// Where to go when the bytes are out of bounds or cannot be read.
    pub reject: Label,
}

/// An instruction list being built; see the module documentation.
#[derive(Debug, Default)]
pub struct Asm {
    out: Vec<Insn>,
    /// Position of each label, once bound.
    labels: Vec<Option<usize>>,
    /// Instructions whose offset is the distance to a label.
    fixups: Vec<(usize, Label)>,
    /// Where the kernel allows it: [`Asm::load_kernel`] loads directly through `bpf_rdonly_cast`.
    direct: Option<RdonlyCast>,
}

/// `src_reg` of a kfunc call (BPF_PSEUDO_KFUNC_CALL).
const KFUNC_CALL: Reg = Reg(2);

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    /// This assembler, with [`Asm::load_kernel`] casting the address with the kfunc `direct`
    /// names and loading directly (no helper call; the JIT guards the load, a fault gives 0);
    /// `None`: through `bpf_probe_read_kernel`, as by default.
    pub fn direct_loads(self, direct: Option<RdonlyCast>) -> Self {
        Self { direct, ..self }
    }

    pub fn with_capacity(insns: usize) -> Self {
        Self {
            out: Vec::with_capacity(insns),
            ..Self::default()
        }
    }

    /// Instructions emitted so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Appends one raw instruction.
    pub fn insn(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.out.push(Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        });
    }

    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Makes `label` stand for the next instruction emitted.
    ///
    /// # Panics
    /// If the label is already bound or belongs to another `Asm`.
    pub fn bind(&mut self, label: Label) {
        let slot = &mut self.labels[label.0];
        assert!(slot.is_none(), "label bound twice");
        *slot = Some(self.out.len());
    }

    /// Whether some jump goes to `label` (e.g. to emit a shared exit block only when needed).
    pub fn is_used(&self, label: Label) -> bool {
        self.fixups.iter().any(|&(_, l)| l == label)
    }

    /// The instructions, with every jump pointed at its label.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, label) in &self.fixups {
            let to = self.labels[label.0].ok_or(AsmError::Unbound { at })?;
            let off = to as i64 - (at as i64 + 1);
            self.out[at].off = i16::try_from(off).map_err(|_| AsmError::JumpTooFar { at, to })?;
        }
        Ok(self.out)
    }

    pub fn alu32_imm(&mut self, op: AluOp, dst: Reg, imm: i32) {
        self.insn(ALU | op as u8 | SRC_K, dst, R0, 0, imm);
    }

    pub fn alu32_reg(&mut self, op: AluOp, dst: Reg, src: Reg) {
        self.insn(ALU | op as u8 | SRC_X, dst, src, 0, 0);
    }

    /// 64-bit ALU with the immediate sign-extended to 64 bits.
    pub fn alu64_imm(&mut self, op: AluOp, dst: Reg, imm: i32) {
        self.insn(ALU64 | op as u8 | SRC_K, dst, R0, 0, imm);
    }

    pub fn alu64_reg(&mut self, op: AluOp, dst: Reg, src: Reg) {
        self.insn(ALU64 | op as u8 | SRC_X, dst, src, 0, 0);
    }

    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) {
        self.alu64_reg(AluOp::Mov, dst, src);
    }

    /// `dst = imm`, sign-extended to 64 bits.
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) {
        self.alu64_imm(AluOp::Mov, dst, imm);
    }

    /// `wdst = wsrc`, upper half zeroed.
    pub fn mov32_reg(&mut self, dst: Reg, src: Reg) {
        self.alu32_reg(AluOp::Mov, dst, src);
    }

    /// `dst = imm`, zero-extended: any u32 constant.
    pub fn mov32_imm(&mut self, dst: Reg, imm: u32) {
        self.alu32_imm(AluOp::Mov, dst, imm as i32);
    }

    /// `dst = *(size *)(base + off)`, zero-extended.
    pub fn load(&mut self, size: Size, dst: Reg, base: Reg, off: i16) {
        self.insn(LDX | MEM | size as u8, dst, base, off, 0);
    }

    /// `*(size *)(base + off) = src`.
    pub fn store_reg(&mut self, size: Size, base: Reg, off: i16, src: Reg) {
        self.insn(STX | MEM | size as u8, base, src, off, 0);
    }

    /// `*(size *)(base + off) = imm` (sign-extended for `DW`).
    pub fn store_imm(&mut self, size: Size, base: Reg, off: i16, imm: i32) {
        self.insn(ST | MEM | size as u8, base, R0, off, imm);
    }

    /// Converts the low `bits` (16, 32 or 64) of `dst` from big endian to host order (and back),
    /// zeroing the rest.
    pub fn be(&mut self, dst: Reg, bits: i32) {
        self.insn(ALU | END | TO_BE, dst, R0, 0, bits);
    }

    /// Like [`Asm::be`], for little endian.
    pub fn le(&mut self, dst: Reg, bits: i32) {
        self.insn(ALU | END | TO_LE, dst, R0, 0, bits);
    }

    /// Calls helper number `helper`; clobbers `R1..=R5`, result in `R0`.
    pub fn call(&mut self, helper: i32) {
        self.insn(JMP | CALL, R0, R0, 0, helper);
    }

    pub fn exit(&mut self) {
        self.insn(JMP | EXIT, R0, R0, 0, 0);
    }

    pub fn jump(&mut self, to: Label) {
        self.jump_insn(JMP | JA, R0, R0, 0, to);
    }

    /// `if dst <cond> imm goto to`, on 64 bits (imm sign-extended).
    pub fn jump_if_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.jump_insn(JMP | cond as u8 | SRC_K, dst, R0, imm, to);
    }

    /// `if dst <cond> src goto to`, on 64 bits.
    pub fn jump_if_reg(&mut self, cond: Cond, dst: Reg, src: Reg, to: Label) {
        self.jump_insn(JMP | cond as u8 | SRC_X, dst, src, 0, to);
    }

    /// `if wdst <cond> imm goto to`, on the low 32 bits.
    pub fn jump32_if_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.jump_insn(JMP32 | cond as u8 | SRC_K, dst, R0, imm, to);
    }

    /// `if wdst <cond> wsrc goto to`, on the low 32 bits.
    pub fn jump32_if_reg(&mut self, cond: Cond, dst: Reg, src: Reg, to: Label) {
        self.jump_insn(JMP32 | cond as u8 | SRC_X, dst, src, 0, to);
    }

    fn jump_insn(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: Label) {
        self.fixups.push((self.out.len(), to));
        self.insn(code, dst, src, 0, imm);
    }

    /// `bpf_probe_read_kernel(FP + buf, size, addr + off)`; jumps to `fail` if it fails.
    /// Clobbers `R0..=R5`; `addr` may be any register but `FP`.
    pub fn probe_read_kernel(&mut self, buf: i16, size: u32, addr: Reg, off: i32, fail: Label) {
        // R3 first: `addr` may be R1 or R2.
        if addr != R3 {
            self.mov64_reg(R3, addr);
        }
        if off != 0 {
            self.alu64_imm(AluOp::Add, R3, off);
        }
        self.mov64_reg(R1, FP);
        self.alu64_imm(AluOp::Add, R1, i32::from(buf));
        self.mov64_imm(R2, size as i32);
        self.call(HELPER_PROBE_READ_KERNEL);
        self.jump_if_imm(Cond::Ne, R0, 0, fail);
    }

    /// `dst = *(size *)(addr + off)` of kernel memory (a struct field, a pointer to follow),
    /// read through the stack buffer at `FP + buf` (at least `size` bytes, aligned to `size`).
    /// Jumps to `fail` if the read fails. Clobbers `R0..=R5` (and `dst`).
    pub fn load_kernel(
        &mut self,
        dst: Reg,
        addr: Reg,
        off: i32,
        size: Size,
        buf: i16,
        fail: Label,
    ) {
        if let Some(cast) = self.direct {
            // r0 = bpf_rdonly_cast(addr + off, struct_id): at offset 0 of that struct's first
            // member, an 8-byte integer, so a load of any size there is a scalar to the verifier.
            if addr != R1 {
                self.mov64_reg(R1, addr);
            }
            if off != 0 {
                self.alu64_imm(AluOp::Add, R1, off);
            }
            self.mov64_imm(R2, cast.struct_id as i32);
            self.insn(JMP | CALL, R0, KFUNC_CALL, 0, cast.func_id as i32);
            self.load(size, dst, R0, 0);
            return;
        }
        self.probe_read_kernel(buf, size.bytes(), addr, off, fail);
        self.load(size, dst, FP, buf);
    }

    /// [`Asm::load_kernel`] of `base + offset` after checking `offset + size <= len`
    /// (jumping to `load.reject` otherwise), computed on 64 bits so it cannot wrap; then the
    /// byte swap if `load.big_endian`.
    /// Clobbers `R0..=R5`; `base`, `len` and an offset register must be among `R6..=R9`.
    pub fn load_checked(&mut self, load: CheckedLoad) {
        let size = load.size.bytes();
        match load.offset {
            Offset::Const(k) => {
                let Some(end) = k.checked_add(size).filter(|&e| e <= i32::MAX as u32) else {
                    self.jump(load.reject); // no length reaches it
                    return;
                };
                self.jump_if_imm(Cond::Lt, load.len, end as i32, load.reject);
                self.load_kernel(
                    load.dst,
                    load.base,
                    k as i32,
                    load.size,
                    load.buf,
                    load.reject,
                );
            }
            Offset::Reg(reg, k) => {
                // r1 = reg + k (k zero-extended through a 32-bit move), r2 = r1 + size.
                self.mov64_reg(R1, reg);
                self.mov32_imm(R2, k);
                self.alu64_reg(AluOp::Add, R1, R2);
                self.mov64_reg(R2, R1);
                self.alu64_imm(AluOp::Add, R2, size as i32);
                self.jump_if_reg(Cond::Gt, R2, load.len, load.reject);
                self.mov64_reg(R3, load.base);
                self.alu64_reg(AluOp::Add, R3, R1);
                self.load_kernel(load.dst, R3, 0, load.size, load.buf, load.reject);
            }
        }
        if load.big_endian && load.size != Size::B {
            self.be(load.dst, (load.size.bytes() * 8) as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> Vec<[u8; 8]> {
        insns.iter().map(|i| i.to_bytes()).collect()
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
    fn encodings_follow_the_isa() {
        // Expected bytes from the kernel's Documentation/bpf/standardization/instruction-set.rst.
        let mut a = Asm::new();
        a.mov64_reg(R6, R1); // r6 = r1
        a.mov32_imm(R8, 0xffff_ffff); // w8 = -1
        a.mov64_imm(R2, -8); // r2 = -8
        a.alu64_reg(AluOp::Sub, R7, R1); // r7 -= r1
        a.alu32_imm(AluOp::And, R9, 0xf); // w9 &= 15
        a.alu32_imm(AluOp::Neg, R8, 0); // w8 = -w8
        a.load(Size::W, R8, FP, -4); // w8 = *(u32 *)(r10 - 4)
        a.load(Size::B, R3, R2, 5); // w3 = *(u8 *)(r2 + 5)
        a.store_reg(Size::DW, FP, -144, R2); // *(u64 *)(r10 - 144) = r2
        a.store_imm(Size::DW, FP, -64, 0); // *(u64 *)(r10 - 64) = 0
        a.store_reg(Size::H, FP, -2, R9); // *(u16 *)(r10 - 2) = w9
        a.be(R8, 16); // r8 = be16 r8
        a.le(R8, 64); // r8 = le64 r8
        a.call(HELPER_PROBE_READ_KERNEL); // call 113
        a.exit();
        assert_eq!(
            bytes(&a.finish().unwrap()),
            [
                [0xbf, 0x16, 0, 0, 0, 0, 0, 0],
                [0xb4, 0x08, 0, 0, 0xff, 0xff, 0xff, 0xff],
                [0xb7, 0x02, 0, 0, 0xf8, 0xff, 0xff, 0xff],
                [0x1f, 0x17, 0, 0, 0, 0, 0, 0],
                [0x54, 0x09, 0, 0, 0x0f, 0, 0, 0],
                [0x84, 0x08, 0, 0, 0, 0, 0, 0],
                [0x61, 0xa8, 0xfc, 0xff, 0, 0, 0, 0],
                [0x71, 0x23, 0x05, 0, 0, 0, 0, 0],
                [0x7b, 0x2a, 0x70, 0xff, 0, 0, 0, 0],
                [0x7a, 0x0a, 0xc0, 0xff, 0, 0, 0, 0],
                [0x6b, 0x9a, 0xfe, 0xff, 0, 0, 0, 0],
                [0xdc, 0x08, 0, 0, 0x10, 0, 0, 0],
                [0xd4, 0x08, 0, 0, 0x40, 0, 0, 0],
                [0x85, 0, 0, 0, 0x71, 0, 0, 0],
                [0x95, 0, 0, 0, 0, 0, 0, 0],
            ]
        );
    }

    #[test]
    fn jumps_resolve_forward_and_backward() {
        let mut a = Asm::new();
        let top = a.new_label();
        let out = a.new_label();
        a.bind(top);
        a.jump32_if_imm(Cond::Ge, R9, 32, out); // 0: to 3
        a.jump_if_reg(Cond::Gt, R2, R7, top); // 1: to 0
        a.jump(top); // 2: to 0
        a.bind(out);
        a.jump_if_imm(Cond::Eq, R0, 0, out); // 3: to itself
        let insns = a.finish().unwrap();
        assert_eq!(
            insns.iter().map(|i| i.off).collect::<Vec<_>>(),
            [2, -2, -3, -1]
        );
        assert_eq!(insns[0].to_bytes(), [0x36, 0x09, 2, 0, 32, 0, 0, 0]);
        assert_eq!(insns[1].to_bytes(), [0x2d, 0x72, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(insns[2].to_bytes(), [0x05, 0, 0xfd, 0xff, 0, 0, 0, 0]);
    }

    #[test]
    fn jump_offsets_must_fit_16_bits() {
        let build = |gap: usize| {
            let mut a = Asm::new();
            let end = a.new_label();
            a.jump(end);
            for _ in 0..gap {
                a.mov64_imm(R0, 0);
            }
            a.bind(end);
            a.exit();
            a.finish()
        };
        assert_eq!(build(32_767).unwrap()[0].off, 32_767);
        assert_eq!(
            build(32_768),
            Err(AsmError::JumpTooFar { at: 0, to: 32_769 })
        );

        let back = |gap: usize| {
            let mut a = Asm::new();
            let top = a.new_label();
            a.bind(top);
            for _ in 0..gap {
                a.mov64_imm(R0, 0);
            }
            a.jump(top);
            a.finish()
        };
        assert_eq!(back(32_767).unwrap()[32_767].off, i16::MIN);
        assert_eq!(
            back(32_768),
            Err(AsmError::JumpTooFar { at: 32_768, to: 0 })
        );
    }

    #[test]
    fn unbound_labels_are_errors_only_when_used() {
        let mut a = Asm::new();
        let unused = a.new_label();
        let used = a.new_label();
        assert!(!a.is_used(unused));
        a.exit();
        assert_eq!(Asm::new().finish(), Ok(vec![]));
        a.jump(used);
        assert!(a.is_used(used) && !a.is_used(unused));
        assert_eq!(a.finish(), Err(AsmError::Unbound { at: 1 }));
    }

    #[test]
    fn kernel_load_reads_through_the_stack() {
        let mut a = Asm::new();
        let fail = a.new_label();
        // r6 = *(u64 *)(r6 + 16): follow a pointer field.
        a.load_kernel(R6, R6, 16, Size::DW, -8, fail);
        // w8 = *(u16 *)(r3 + 0): the address already in R3 is not copied.
        a.load_kernel(R8, R3, 0, Size::H, -8, fail);
        a.be(R8, 16);
        a.bind(fail);
        a.exit();
        let insns = a.finish().unwrap();
        let codes: Vec<(u8, u8, u8, i16, i32)> = insns
            .iter()
            .map(|i| (i.code, i.dst, i.src, i.off, i.imm))
            .collect();
        assert_eq!(
            codes,
            [
                (0xbf, 3, 6, 0, 0),   // r3 = r6
                (0x07, 3, 0, 0, 16),  // r3 += 16
                (0xbf, 1, 10, 0, 0),  // r1 = fp
                (0x07, 1, 0, 0, -8),  // r1 += -8
                (0xb7, 2, 0, 0, 8),   // r2 = 8
                (0x85, 0, 0, 0, 113), // call bpf_probe_read_kernel
                (0x55, 0, 0, 8, 0),   // if r0 != 0 goto fail
                (0x79, 6, 10, -8, 0), // r6 = *(u64 *)(fp - 8)
                (0xbf, 1, 10, 0, 0),  // (second load: no r3 = r3, no += 0)
                (0x07, 1, 0, 0, -8),  //
                (0xb7, 2, 0, 0, 2),   //
                (0x85, 0, 0, 0, 113), //
                (0x55, 0, 0, 2, 0),   // if r0 != 0 goto fail
                (0x69, 8, 10, -8, 0), // w8 = *(u16 *)(fp - 8)
                (0xdc, 8, 0, 0, 16),  // be16
                (0x95, 0, 0, 0, 0),   // fail: exit
            ]
        );
    }

    #[test]
    fn checked_load_bounds() {
        let load = |offset| {
            let mut a = Asm::new();
            let reject = a.new_label();
            a.load_checked(CheckedLoad {
                dst: R8,
                base: R6,
                len: R7,
                offset,
                size: Size::W,
                buf: -72,
                big_endian: true,
                reject,
            });
            a.mov64_imm(R0, 1);
            a.bind(reject);
            a.exit();
            a.finish().unwrap()
        };
        let abs = load(Offset::Const(26));
        // if r7 < 30 goto reject
        assert_eq!((abs[0].code, abs[0].dst, abs[0].imm), (0xa5, 7, 30));
        assert_eq!(abs[0].off as usize, abs.len() - 2);
        assert_eq!(abs.last().unwrap().code, JMP | EXIT);
        // No length reaches offset u32::MAX: an unconditional reject.
        let never = load(Offset::Const(u32::MAX));
        assert_eq!(never.len(), 3);
        assert_eq!((never[0].code, never[0].off), (JMP | JA, 1));
        let ind = load(Offset::Reg(R9, 0x8000_0000));
        // w2 = k zero-extended (a 64-bit add of the immediate would subtract 2^31).
        assert_eq!((ind[1].code, ind[1].imm), (0xb4, i32::MIN));
        // if r2 > r7 goto reject
        assert_eq!((ind[5].code, ind[5].dst, ind[5].src), (0x2d, 2, 7));
    }
}
