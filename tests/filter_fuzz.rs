//! Fuzzing the cBPF → eBPF translator with arbitrary valid classic BPF programs (every opcode,
//! forward jumps of every shape, scratch memory, loads past the packet, division by a zero X),
//! not only what libpcap's compiler emits: each translation runs in the kernel
//! (BPF_PROG_TEST_RUN on the injected filter) and must agree with libpcap's own interpreter,
//! `bpf_filter`, on random packets. Every program must load or be refused by the translator with
//! an error; a verifier rejection is a failure.
//!
//! Fixed seeds, plus one new seed per run that is printed (`PWRU_RS_FUZZ_SEED` replays one;
//! `PWRU_RS_FUZZ_PROGRAMS` sets how many programs per seed).

use integration_tests::{pcap_corpus::Rng, require_root};
use pwru_rs::filter::{
    cbpf::{self, CbpfInsn},
    testing::FilterTester,
    translate_with, PcapFilter, View,
};

/// libpcap's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[link(name = "pcap")]
unsafe extern "C" {
    /// libpcap's interpreter: the reference (`pcap/bpf.h`).
    fn bpf_filter(pc: *const BpfInsn, p: *const u8, wirelen: u32, buflen: u32) -> u32;
}

fn reference(prog: &[CbpfInsn], packet: &[u8]) -> bool {
    let insns: Vec<BpfInsn> = prog
        .iter()
        .map(|i| BpfInsn {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let len = packet.len() as u32;
    // SAFETY: a valid program (forward jumps in range, ends in a return, no constant divisor
    // of zero, scratch memory written before it is read), the packet `len` bytes long.
    unsafe { bpf_filter(insns.as_ptr(), packet.as_ptr(), len, len) != 0 }
}

/// Scratch slots the prologue writes; only these are read (libpcap's M[] starts undefined).
const SLOTS: u32 = 16;

/// A random valid program of about `len` instructions.
fn program(rng: &mut Rng, len: usize) -> Vec<CbpfInsn> {
    let insn = |code: u16, jt: u8, jf: u8, k: u32| CbpfInsn { code, jt, jf, k };
    let mut out = Vec::new();
    // Prologue: some scratch slots and X given values.
    let written: Vec<u32> = (0..SLOTS).filter(|_| rng.below(3) == 0).collect();
    for &slot in &written {
        out.push(insn(cbpf::LD | cbpf::IMM, 0, 0, constant(rng)));
        out.push(insn(cbpf::ST, 0, 0, slot));
    }
    if rng.below(2) == 0 {
        out.push(insn(cbpf::LDX | cbpf::W | cbpf::IMM, 0, 0, offset(rng)));
    }
    let body = out.len() + len;
    while out.len() < body {
        let pc = out.len();
        // Instructions left after this one (the final return among them).
        let room = (body - pc) as u32;
        let sizes = [cbpf::W, cbpf::H, cbpf::B];
        let i = match rng.below(20) {
            0..=3 => {
                let size = *rng.pick(&sizes);
                insn(cbpf::LD | size | cbpf::ABS, 0, 0, offset(rng))
            }
            4..=5 => {
                let size = *rng.pick(&sizes);
                insn(cbpf::LD | size | cbpf::IND, 0, 0, offset(rng))
            }
            6 => match rng.below(3) {
                0 => insn(cbpf::LD | cbpf::W | cbpf::LEN, 0, 0, 0),
                1 => insn(cbpf::LD | cbpf::IMM, 0, 0, constant(rng)),
                _ => match written.first() {
                    Some(_) => insn(cbpf::LD | cbpf::MEM, 0, 0, *rng.pick(&written)),
                    None => insn(cbpf::LD | cbpf::IMM, 0, 0, constant(rng)),
                },
            },
            7 => match rng.below(4) {
                0 => insn(cbpf::LDX | cbpf::W | cbpf::IMM, 0, 0, offset(rng)),
                1 => insn(cbpf::LDX | cbpf::W | cbpf::LEN, 0, 0, 0),
                2 => insn(cbpf::LDX | cbpf::B | cbpf::MSH, 0, 0, offset(rng)),
                _ => match written.first() {
                    Some(_) => insn(cbpf::LDX | cbpf::W | cbpf::MEM, 0, 0, *rng.pick(&written)),
                    None => insn(cbpf::LDX | cbpf::B | cbpf::MSH, 0, 0, 14),
                },
            },
            8 => insn(
                if rng.below(2) == 0 {
                    cbpf::ST
                } else {
                    cbpf::STX
                },
                0,
                0,
                rng.below(SLOTS as u64) as u32,
            ),
            9..=12 => alu(rng),
            13..=16 if room > 1 => {
                // Forward jumps that stay before the end (the last instruction returns).
                let far = |rng: &mut Rng| rng.below(u64::from(room.min(256) - 1)) as u8;
                let ops = [cbpf::JEQ, cbpf::JGT, cbpf::JGE, cbpf::JSET];
                let op = *rng.pick(&ops);
                if rng.below(6) == 0 {
                    insn(cbpf::JMP | cbpf::JA, 0, 0, u32::from(far(rng)))
                } else if rng.below(3) == 0 {
                    insn(cbpf::JMP | op | cbpf::X, far(rng), far(rng), 0)
                } else {
                    insn(cbpf::JMP | op, far(rng), far(rng), constant(rng))
                }
            }
            17 => insn(
                cbpf::MISC
                    | if rng.below(2) == 0 {
                        cbpf::TAX
                    } else {
                        cbpf::TXA
                    },
                0,
                0,
                0,
            ),
            18 if room > 1 => ret(rng),
            _ => insn(cbpf::LD | cbpf::B | cbpf::ABS, 0, 0, rng.below(64) as u32),
        };
        out.push(i);
    }
    out.push(ret(rng));
    out
}

/// A packet offset: mostly within the first bytes, sometimes at or past the end of any packet.
fn offset(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0 => *rng.pick(&[0xffff_ffff, 0xffff_fffc, 0x8000_0000, 2048, 4096, 65_535]),
        1 => rng.below(300) as u32,
        _ => rng.below(64) as u32,
    }
}

fn constant(rng: &mut Rng) -> u32 {
    match rng.below(4) {
        0 => rng.next_u64() as u32,
        1 => *rng.pick(&[0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0800, 0x86dd]),
        _ => rng.below(256) as u32,
    }
}

fn alu(rng: &mut Rng) -> CbpfInsn {
    let ops = [
        cbpf::ADD,
        cbpf::SUB,
        cbpf::MUL,
        cbpf::DIV,
        cbpf::OR,
        cbpf::AND,
        cbpf::LSH,
        cbpf::RSH,
        cbpf::MOD,
        cbpf::XOR,
        cbpf::NEG,
    ];
    let op = *rng.pick(&ops);
    if op == cbpf::NEG {
        return CbpfInsn {
            code: cbpf::ALU | cbpf::NEG,
            jt: 0,
            jf: 0,
            k: 0,
        };
    }
    if rng.below(3) == 0 {
        // By X: a zero X divides to a rejection, a count of 32 or more shifts to 0.
        return CbpfInsn {
            code: cbpf::ALU | op | cbpf::X,
            jt: 0,
            jf: 0,
            k: 0,
        };
    }
    let k = match op {
        // libpcap's interpreter is undefined for these (valid programs do not have them).
        cbpf::DIV | cbpf::MOD => constant(rng).max(1),
        cbpf::LSH | cbpf::RSH => rng.below(32) as u32,
        _ => constant(rng),
    };
    CbpfInsn {
        code: cbpf::ALU | op,
        jt: 0,
        jf: 0,
        k,
    }
}

fn ret(rng: &mut Rng) -> CbpfInsn {
    if rng.below(2) == 0 {
        CbpfInsn {
            code: cbpf::RET | cbpf::RVAL_A,
            jt: 0,
            jf: 0,
            k: 0,
        }
    } else {
        CbpfInsn {
            code: cbpf::RET | cbpf::RVAL_K,
            jt: 0,
            jf: 0,
            k: *rng.pick(&[0, 1, 96, 262_144, 0xffff_ffff]),
        }
    }
}

/// Random bytes, at lengths around the headers' (and 0).
fn packets(rng: &mut Rng, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let len = match rng.below(6) {
                0 => *rng.pick(&[0, 1, 2, 3, 4, 13, 14, 15, 20, 34, 54, 60, 64, 65]),
                1 => rng.below(300) as usize,
                _ => 20 + rng.below(60) as usize,
            };
            (0..len)
                .map(|i| {
                    // An IPv4 header nibble now and then, so MSH and header loads see one.
                    if i == 14 && rng.below(2) == 0 {
                        0x45
                    } else {
                        rng.next_u64() as u8
                    }
                })
                .collect()
        })
        .collect()
}

struct Outcome {
    pairs: usize,
    loaded: usize,
    refused: usize,
    failures: Vec<String>,
}

fn fuzz(seed: u64, programs: usize, packets_per_program: usize) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome {
        pairs: 0,
        loaded: 0,
        refused: 0,
        failures: Vec::new(),
    };
    let direct = pwru_rs::session::direct_reads_here();
    for n in 0..programs {
        let len = 1 + rng.below(40) as usize;
        let prog = program(&mut rng, len);
        // Every other program with direct packet loads, where this kernel allows them.
        let direct = direct.filter(|_| n % 2 == 1);
        let mode = if direct.is_some() {
            "direct loads"
        } else {
            "helper reads"
        };
        let code = match translate_with(&prog, direct) {
            Ok(code) => code,
            Err(e) => {
                // A clear refusal is allowed; it must say what (not panic, not load).
                assert!(!e.to_string().is_empty());
                out.refused += 1;
                continue;
            }
        };
        let filter = PcapFilter {
            expression: format!("fuzz seed {seed} program {n}"),
            l2: code.clone(),
            l3: code,
            l2_cbpf: prog.clone(),
            l3_cbpf: Some(prog.clone()),
        };
        let mut tester = match FilterTester::with_direct_loads(&filter, direct) {
            Ok(t) => t,
            Err(e) => {
                out.failures.push(format!(
                    "seed {seed} program {n} ({mode}): the kernel refused the translation: {e}\n{prog:?}"
                ));
                continue;
            }
        };
        out.loaded += 1;
        for packet in packets(&mut rng, packets_per_program) {
            out.pairs += 1;
            let want = reference(&prog, &packet);
            match tester.matches(&packet, View::Ethernet) {
                Ok(got) if got == want => {}
                Ok(got) => out.failures.push(format!(
                    "seed {seed} program {n} ({mode}): libpcap {want}, kernel {got} on {}\n{prog:?}",
                    packet
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )),
                Err(e) => out.failures.push(format!("seed {seed} program {n}: {e}")),
            }
        }
    }
    out
}

#[test]
fn arbitrary_programs_agree_with_libpcaps_interpreter_in_the_kernel() {
    require_root();
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let programs = env("PWRU_RS_FUZZ_PROGRAMS").unwrap_or(250) as usize;
    let fresh = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seeds: Vec<u64> = match env("PWRU_RS_FUZZ_SEED") {
        Some(seed) => vec![seed],
        None => vec![1, 2, 3, fresh],
    };
    let (mut pairs, mut loaded, mut refused, mut failures) = (0, 0, 0, Vec::new());
    for &seed in &seeds {
        let o = fuzz(seed, programs, 24);
        pairs += o.pairs;
        loaded += o.loaded;
        refused += o.refused;
        failures.extend(o.failures);
    }
    eprintln!(
        "filter fuzz: seeds {seeds:?} (replay one with PWRU_RS_FUZZ_SEED), {} programs: {loaded} \
         loaded, {refused} refused by the translator; {pairs} program × packet pairs, {} \
         disagreements",
        programs * seeds.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(pairs >= 20_000, "only {pairs} pairs");
}
