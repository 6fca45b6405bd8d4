//! eBPF for resolved expressions, as the bodies of two stubs of the kernel object:
//!
//! - `u64 pwru_filter_skb_expr(u64 skb)`: 1 when the filter holds, else 0;
//! - `u64 pwru_skb_metadata(u64 skb, u64 word)`: word `word` of the metadata values (each value
//!   takes [`Metadata::words`] words from [`Metadata::first_word`]; 0 for a word no value has,
//!   or when the chain cannot be followed).
//!
//! The argument is a scalar (the stubs are global functions, verified on their own), so every
//! read goes through `bpf_probe_read_kernel` into the stack, or where the kernel allows it a
//! number or pointer is loaded directly through `bpf_rdonly_cast` (`Asm::direct_loads`). Numbers come out zero-extended,
//! or sign-extended to 64 bits for signed types; bitfields shifted down and masked.
//! Registers: r6 = the current base, r7 = the value, r8 = the word asked for.

use super::{Access, Filter, Metadata, Test, ValueKind};
use crate::asm::{AluOp, Asm, AsmError, Cond, Insn, Label, Reg, Size, FP, R0, R1, R2, R6, R7, R8};
use crate::btf::RdonlyCast;
use crate::expr::parse::CmpOp;

/// Stack offsets: an 8-byte load buffer, then a 64-byte string/bytes buffer below it.
const LOAD_BUF: i16 = -8;
const BYTES_BUF: i16 = -72;
const BYTES_BUF_LEN: u32 = 64;

/// The filter stub's body; with `direct`, numbers and pointers are read by direct loads.
pub fn filter(f: &Filter, direct: Option<RdonlyCast>) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new().direct_loads(direct);
    let fail = a.new_label();
    let pass = a.new_label();
    a.mov64_reg(R6, R1);
    follow(&mut a, &f.access, fail);
    match &f.test {
        Test::Number {
            mask,
            op,
            value,
            signed,
        } => {
            load_number(&mut a, &f.access, fail);
            if *mask != u64::MAX {
                mov_u64(&mut a, R1, *mask);
                a.alu64_reg(AluOp::And, R7, R1);
            }
            mov_u64(&mut a, R1, *value);
            a.jump_if_reg(cond(*op, *signed), R7, R1, pass);
            a.jump(fail);
        }
        Test::String { equal, bytes } => {
            let differ = a.new_label();
            let len = bytes.len() as u32;
            debug_assert!(len <= BYTES_BUF_LEN);
            let words = len.div_ceil(8);
            for w in 0..words {
                a.store_imm(Size::DW, FP, BYTES_BUF + 8 * w as i16, 0);
            }
            a.probe_read_kernel(BYTES_BUF, len, R6, f.access.offset as i32, fail);
            for w in 0..words as usize {
                let mut word = [0u8; 8];
                let chunk = &bytes[w * 8..(w * 8 + 8).min(bytes.len())];
                word[..chunk.len()].copy_from_slice(chunk);
                a.load(Size::DW, R7, FP, BYTES_BUF + 8 * w as i16);
                mov_u64(&mut a, R1, u64::from_le_bytes(word));
                a.jump_if_reg(Cond::Ne, R7, R1, differ);
            }
            a.jump(if *equal { pass } else { fail });
            a.bind(differ);
            a.jump(if *equal { fail } else { pass });
        }
    }
    a.bind(pass);
    a.mov64_imm(R0, 1);
    a.exit();
    a.bind(fail);
    a.mov64_imm(R0, 0);
    a.exit();
    a.finish()
}

/// The metadata stub's body; `direct` as for [`filter`].
pub fn metadata(values: &[Metadata], direct: Option<RdonlyCast>) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new().direct_loads(direct);
    let zero = a.new_label();
    a.mov64_reg(R8, R2);
    a.mov64_reg(R6, R1);
    let mut bodies = Vec::new();
    for m in values {
        for w in 0..m.words {
            let l = a.new_label();
            a.jump_if_imm(Cond::Eq, R8, (m.first_word + w) as i32, l);
            bodies.push((m, w, l));
        }
    }
    a.jump(zero);
    for (m, w, l) in bodies {
        a.bind(l);
        follow(&mut a, &m.access, zero);
        match m.access.kind {
            ValueKind::Chars | ValueKind::Bytes => {
                for i in 0..m.words {
                    a.store_imm(Size::DW, FP, BYTES_BUF + 8 * i as i16, 0);
                }
                a.probe_read_kernel(BYTES_BUF, m.bytes, R6, m.access.offset as i32, zero);
                a.load(Size::DW, R0, FP, BYTES_BUF + 8 * w as i16);
            }
            _ => {
                load_number(&mut a, &m.access, zero);
                a.mov64_reg(R0, R7);
            }
        }
        a.exit();
    }
    a.bind(zero);
    a.mov64_imm(R0, 0);
    a.exit();
    a.finish()
}

/// Loads each pointer of the chain into r6 (to `fail` on a failed read or NULL).
fn follow(a: &mut Asm, access: &Access, fail: Label) {
    for &off in &access.derefs {
        a.load_kernel(R6, R6, off as i32, Size::DW, LOAD_BUF, fail);
        a.jump_if_imm(Cond::Eq, R6, 0, fail);
    }
}

/// r7 = the number at r6 + offset: bitfield extracted, sign-extended if signed.
fn load_number(a: &mut Asm, access: &Access, fail: Label) {
    let size = Size::from_bytes(access.size).expect("scalars are 1, 2, 4 or 8 bytes");
    a.load_kernel(R7, R6, access.offset as i32, size, LOAD_BUF, fail);
    let signed = access.kind == ValueKind::Signed;
    let (shift, bits) = match access.bitfield {
        Some(b) => (b.shift, b.bits),
        None => (0, access.size * 8),
    };
    if bits >= 64 {
        return;
    }
    if signed {
        // Move the field's top bit to bit 63, then shift back arithmetically.
        let up = 64 - shift - bits;
        if up > 0 {
            a.alu64_imm(AluOp::Lsh, R7, up as i32);
        }
        a.alu64_imm(AluOp::Arsh, R7, (64 - bits) as i32);
    } else if access.bitfield.is_some() {
        if shift > 0 {
            a.alu64_imm(AluOp::Rsh, R7, shift as i32);
        }
        mov_u64(a, R1, (1u64 << bits) - 1);
        a.alu64_reg(AluOp::And, R7, R1);
    }
}

/// `dst = v` without `ld_imm64` (see `crate::object`): one instruction when it fits a
/// sign-extended 32-bit immediate, else high half, shift, low half.
fn mov_u64(a: &mut Asm, dst: Reg, v: u64) {
    if let Ok(imm) = i32::try_from(v as i64) {
        a.mov64_imm(dst, imm);
        return;
    }
    a.mov32_imm(dst, (v >> 32) as u32);
    a.alu64_imm(AluOp::Lsh, dst, 32);
    let low = v as u32;
    if low != 0 {
        // ALU64 OR with an immediate sign-extends it: go through r0 instead.
        a.mov32_imm(R0, low);
        a.alu64_reg(AluOp::Or, dst, R0);
    }
}

fn cond(op: CmpOp, signed: bool) -> Cond {
    match (op, signed) {
        (CmpOp::Eq, _) => Cond::Eq,
        (CmpOp::Ne, _) => Cond::Ne,
        (CmpOp::Lt, false) => Cond::Lt,
        (CmpOp::Le, false) => Cond::Le,
        (CmpOp::Gt, false) => Cond::Gt,
        (CmpOp::Ge, false) => Cond::Ge,
        (CmpOp::Lt, true) => Cond::Slt,
        (CmpOp::Le, true) => Cond::Sle,
        (CmpOp::Gt, true) => Cond::Sgt,
        (CmpOp::Ge, true) => Cond::Sge,
    }
}
