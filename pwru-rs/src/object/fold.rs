//! Load-time constants as immediates. The programs read their configuration and the kernel's
//! struct offsets from read-only globals (`CONFIG`, `OFFSETS`) that userspace fills before
//! load. The verifier knows those values (the map is frozen) and prunes the branches they
//! decide, but every read stays a memory load in the JIT's code: two instructions per field
//! offset, on every hit. Here each load of a global's field becomes `dst = value`, as CO-RE
//! relocations or cilium's constant rewriting would make it.
//!
//! A load is folded only where the pointer's origin is certain: a forward pass over straight-line
//! code, from the `ld_imm64` that a relocation says points into a global (through register
//! copies and constant additions) to the load, forgetting every register at a jump target, after
//! an unconditional jump or exit, when it is overwritten and, for r0–r5, at a call. Anything
//! else (a pointer spilled to the stack, joined from two paths) keeps its load, which reads the
//! same value. The instruction count does not change: jumps, line info and relocations stay
//! valid.

/// Instruction classes (`code & 7`) and fields, as in `linux/bpf_common.h` and `linux/bpf.h`.
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_STX: u8 = 0x03;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
const LD_IMM64: u8 = 0x18;
const MODE_MEM: u8 = 0x60;
const MODE_ATOMIC: u8 = 0xc0;
const OP_ADD: u8 = 0x00;
const OP_MOV: u8 = 0xb0;
const OP_JA: u8 = 0x00;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;
const SOURCE_X: u8 = 0x08;
/// `src_reg` of a call to a function of the same program.
const PSEUDO_CALL: u8 = 1;
/// `w dst = imm` (zero-extends, as a 1–4 byte load does) and `r dst = imm` (sign-extends).
const MOV32_IMM: u8 = CLASS_ALU | OP_MOV;
const MOV64_IMM: u8 = CLASS_ALU64 | OP_MOV;

/// Where a register points: into global `K` (the caller's key), at this byte offset.
type Pointer<K> = (K, i64);

/// Folds the loads from globals in `code` (a section's instructions). `pointer_at(i)` is where
/// the `ld_imm64` at instruction `i` points, when a relocation puts a global's address there;
/// `value(global, offset, size)` the global's little-endian value of `size` bytes at `offset`,
/// when that lies inside it. Returns how many loads became immediates.
pub fn fold<K: Copy>(
    code: &mut [u8],
    pointer_at: impl Fn(usize) -> Option<Pointer<K>>,
    value: impl Fn(K, i64, usize) -> Option<u64>,
) -> usize {
    let targets = jump_targets(code);
    let mut regs: [Option<Pointer<K>>; 11] = [None; 11];
    let mut folded = 0;
    let count = code.len() / 8;
    let mut i = 0;
    while i < count {
        if targets[i] {
            regs = [None; 11];
        }
        let insn = Insn::at(code, i);
        let (dst, src) = (insn.dst(), insn.src());
        match insn.code & 7 {
            CLASS_LD if insn.code == LD_IMM64 => {
                regs[dst] = pointer_at(i);
                i += 2;
                continue;
            }
            // The legacy packet loads write r0 and clobber r1–r5.
            CLASS_LD => regs = [None; 11],
            CLASS_LDX => {
                let size = [4, 2, 1, 8][usize::from(insn.code >> 3 & 3)];
                let known = (insn.code & 0xe0 == MODE_MEM)
                    .then_some(regs[src])
                    .flatten()
                    .and_then(|(k, at)| value(k, at + i64::from(insn.off), size));
                if let Some(v) = known.and_then(|v| immediate(v, size)) {
                    code[i * 8..i * 8 + 8].copy_from_slice(&v.encode(dst as u8));
                    folded += 1;
                }
                regs[dst] = None;
            }
            // An atomic operation may write a register (fetch, cmpxchg).
            CLASS_STX if insn.code & 0xe0 == MODE_ATOMIC => regs = [None; 11],
            CLASS_ALU64 => {
                let (op, by_reg) = (insn.code & 0xf0, insn.code & SOURCE_X != 0);
                regs[dst] = match (op, by_reg) {
                    // `off` non-zero: a sign-extending move, not a copy.
                    (OP_MOV, true) if insn.off == 0 => regs[src],
                    (OP_ADD, false) => regs[dst].map(|(k, at)| (k, at + i64::from(insn.imm))),
                    _ => None,
                };
            }
            CLASS_ALU => regs[dst] = None,
            class @ (CLASS_JMP | CLASS_JMP32) => match insn.code & 0xf0 {
                OP_CALL if class == CLASS_JMP => regs[..=5].fill(None),
                OP_EXIT | OP_JA => regs = [None; 11],
                // A conditional jump: the fall-through keeps what is known.
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
    folded
}

/// The instruction that replaces a load of `size` bytes whose value is `v`, when one can.
fn immediate(v: u64, size: usize) -> Option<Immediate> {
    if size < 8 {
        return Some(Immediate::Mov32(v as u32));
    }
    i32::try_from(v as i64).ok().map(Immediate::Mov64)
}

enum Immediate {
    Mov32(u32),
    Mov64(i32),
}

impl Immediate {
    fn encode(&self, dst: u8) -> [u8; 8] {
        let (code, imm) = match *self {
            Immediate::Mov32(v) => (MOV32_IMM, v.to_le_bytes()),
            Immediate::Mov64(v) => (MOV64_IMM, v.to_le_bytes()),
        };
        [code, dst, 0, 0, imm[0], imm[1], imm[2], imm[3]]
    }
}

/// One eBPF instruction's fields.
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn at(code: &[u8], i: usize) -> Self {
        let b = &code[i * 8..i * 8 + 8];
        Self {
            code: b[0],
            regs: b[1],
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    fn dst(&self) -> usize {
        usize::from(self.regs & 0xf).min(10)
    }

    fn src(&self) -> usize {
        usize::from(self.regs >> 4).min(10)
    }
}

/// Which instructions some jump or call can reach other than by falling through.
fn jump_targets(code: &[u8]) -> Vec<bool> {
    let count = code.len() / 8;
    let mut targets = vec![false; count];
    let mut i = 0;
    while i < count {
        let insn = Insn::at(code, i);
        if insn.code == LD_IMM64 {
            i += 2;
            continue;
        }
        let class = insn.code & 7;
        if class == CLASS_JMP || class == CLASS_JMP32 {
            let by = match insn.code & 0xf0 {
                OP_CALL if class == CLASS_JMP => {
                    (insn.regs >> 4 == PSEUDO_CALL).then_some(i64::from(insn.imm))
                }
                OP_EXIT if class == CLASS_JMP => None,
                // `gotol`: the offset is in imm.
                OP_JA if class == CLASS_JMP32 => Some(i64::from(insn.imm)),
                _ => Some(i64::from(insn.off)),
            };
            if let Some(t) = by.and_then(|by| usize::try_from(i as i64 + 1 + by).ok()) {
                if let Some(t) = targets.get_mut(t) {
                    *t = true;
                }
            }
        }
        i += 1;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The global of these tests: bytes 0..16 of `GLOBAL`, a pointer to it from every
    /// `ld_imm64` (key 0, offset `imm`).
    const GLOBAL: [u8; 16] = [
        1, 0, 0, 0, 0x2a, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
        let (o, m) = (off.to_le_bytes(), imm.to_le_bytes());
        [code, src << 4 | dst, o[0], o[1], m[0], m[1], m[2], m[3]]
    }
    fn ld_global(dst: u8, at: i32) -> Vec<u8> {
        [insn(LD_IMM64, dst, 0, 0, at), insn(0, 0, 0, 0, 0)].concat()
    }
    fn ldxw(dst: u8, src: u8, off: i16) -> [u8; 8] {
        insn(CLASS_LDX | MODE_MEM, dst, src, off, 0)
    }
    fn ldxdw(dst: u8, src: u8, off: i16) -> [u8; 8] {
        insn(CLASS_LDX | MODE_MEM | 0x18, dst, src, off, 0)
    }
    const EXIT: [u8; 8] = [CLASS_JMP | OP_EXIT, 0, 0, 0, 0, 0, 0, 0];

    /// Folds `code`; returns it and the count.
    fn run(parts: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut code = parts.concat();
        let lds: Vec<Option<i64>> = (0..code.len() / 8)
            .map(|i| {
                (code[i * 8] == LD_IMM64)
                    .then(|| i32::from_le_bytes(code[i * 8 + 4..i * 8 + 8].try_into().unwrap()))
                    .map(i64::from)
            })
            .collect();
        let n = fold(
            &mut code,
            |i| lds[i].map(|at| (0u8, at)),
            |_, at, size| {
                let at = usize::try_from(at).ok()?;
                let bytes = GLOBAL.get(at..at + size)?;
                let mut v = [0u8; 8];
                v[..size].copy_from_slice(bytes);
                Some(u64::from_le_bytes(v))
            },
        );
        (code, n)
    }
    fn at(code: &[u8], i: usize) -> [u8; 8] {
        code[i * 8..i * 8 + 8].try_into().unwrap()
    }

    #[test]
    fn a_load_after_the_address_becomes_a_move() {
        let (code, n) = run(&[&ld_global(1, 0), &ldxw(2, 1, 4), &ldxw(3, 1, 0), &EXIT]);
        assert_eq!(n, 2);
        assert_eq!(at(&code, 2), insn(MOV32_IMM, 2, 0, 0, 0x2a));
        assert_eq!(at(&code, 3), insn(MOV32_IMM, 3, 0, 0, 1));
    }

    #[test]
    fn copies_and_constant_additions_are_followed() {
        let (code, n) = run(&[
            &ld_global(1, 0),
            &insn(CLASS_ALU64 | OP_MOV | SOURCE_X, 6, 1, 0, 0),
            &insn(CLASS_ALU64 | OP_ADD, 6, 0, 0, 2),
            &ldxw(2, 6, 2),
            &EXIT,
        ]);
        assert_eq!(n, 1);
        assert_eq!(at(&code, 4), insn(MOV32_IMM, 2, 0, 0, 0x2a));
    }

    #[test]
    fn nothing_is_folded_where_another_path_joins() {
        // `if r0 == 0 goto +1; r1 = r0;` then the load: r1 may not point at the global.
        let jeq = insn(CLASS_JMP | 0x10, 0, 0, 1, 0);
        let (_, n) = run(&[
            &ld_global(1, 0),
            &jeq,
            &insn(CLASS_ALU64 | OP_MOV | SOURCE_X, 1, 0, 0, 0),
            &ldxw(2, 1, 4),
            &EXIT,
        ]);
        assert_eq!(n, 0);
        // Without the join, the fall-through keeps the pointer.
        let (_, n) = run(&[
            &ld_global(1, 0),
            &jeq,
            &ldxw(2, 1, 4),
            &ldxw(3, 1, 0),
            &EXIT,
        ]);
        assert_eq!(n, 1, "the load at the jump's target is not folded");
    }

    #[test]
    fn an_overwritten_or_clobbered_register_is_forgotten() {
        let call = insn(CLASS_JMP | OP_CALL, 0, 0, 0, 1);
        let (_, n) = run(&[
            &ld_global(1, 0),
            &ld_global(6, 0),
            &call,
            &ldxw(2, 1, 4),                        // r1 clobbered by the call
            &ldxw(3, 6, 4),                        // r6 kept
            &insn(CLASS_ALU64 | 0x50, 6, 0, 0, 1), // r6 &= 1
            &ldxw(4, 6, 4),
            &ldxw(6, 6, 0),
            &EXIT,
        ]);
        assert_eq!(n, 1);
        // A load into its own base register is folded, and the register forgotten after.
        let (_, n) = run(&[&ld_global(1, 0), &ldxw(1, 1, 0), &ldxw(2, 1, 4), &EXIT]);
        assert_eq!(n, 1);
    }

    #[test]
    fn eight_bytes_fold_only_when_a_sign_extended_immediate_holds_them() {
        let (code, n) = run(&[&ld_global(1, 0), &ldxdw(2, 1, 8), &ldxdw(3, 1, 0), &EXIT]);
        assert_eq!(n, 1);
        assert_eq!(at(&code, 2), insn(MOV64_IMM, 2, 0, 0, -1));
        assert_eq!(at(&code, 3), ldxdw(3, 1, 0), "0x2a00000001 needs 64 bits");
        // Outside the global: kept.
        let (_, n) = run(&[&ld_global(1, 0), &ldxw(2, 1, 14), &EXIT]);
        assert_eq!(n, 0);
    }

    #[test]
    fn a_function_called_starts_afresh_and_its_caller_keeps_r6() {
        // `call +2`: the called function (at 5) has r6 of its own; the caller's survives the
        // call (r6–r9 are callee-saved).
        let (code, n) = run(&[
            &ld_global(6, 0),
            &insn(CLASS_JMP | OP_CALL, 0, PSEUDO_CALL, 0, 2),
            &ldxw(2, 6, 4),
            &EXIT,
            &ldxw(3, 6, 4),
            &EXIT,
        ]);
        assert_eq!(n, 1);
        assert_eq!(at(&code, 3), insn(MOV32_IMM, 2, 0, 0, 0x2a));
    }
}
