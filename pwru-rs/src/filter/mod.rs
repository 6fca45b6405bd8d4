//! pcap filter expressions (`pwru-rs port https`), selected inside the kernel programs.
//!
//! libpcap compiles the expression to cBPF twice: for Ethernet frames (the skb seen from its MAC
//! header) and for raw IP (seen from its network header). Each is translated to eBPF
//! ([`ebpf`]) and injected into the kernel object in place of a stub ([`crate::object`]) before
//! load.

pub mod cbpf;
mod ebpf;
pub mod testing;

pub use crate::asm::Insn;
pub use cbpf::{compile as compile_cbpf, CbpfInsn, Compiled, View};
pub use ebpf::{translate, translate_with, TranslateError};
use pwru_rs_common::contract::{FILTER_L2_STUB, FILTER_L3_STUB};

use crate::{btf::RdonlyCast, object::Injection};

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// libpcap's own message, as tcpdump prints it.
    #[error("invalid pcap filter '{expression}': {message}")]
    Compile { expression: String, message: String },
    #[error("pcap filter '{expression}' ({view:?} form): {source}")]
    Translate {
        expression: String,
        view: View,
        source: TranslateError,
    },
}

/// An expression in both forms, translated to eBPF.
#[derive(Debug, Clone)]
pub struct PcapFilter {
    pub expression: String,
    pub l2: Vec<Insn>,
    pub l3: Vec<Insn>,
    /// What libpcap compiled (`l2`, `l3` translate them), for [`PcapFilter::injections_with`]
    /// to translate again. `l3_cbpf` is `None` when libpcap has no raw-IP form of the expression
    /// (`arp`, `ether host …`): then the L3 program rejects every packet.
    pub l2_cbpf: Vec<CbpfInsn>,
    pub l3_cbpf: Option<Vec<CbpfInsn>>,
}

/// Compiles `expression`; `None` when it is empty (no filter, no cost).
pub fn compile(expression: &str) -> Result<Option<PcapFilter>, FilterError> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Ok(None);
    }
    let translate_view = |view: View, compiled: &Compiled| {
        translate(&compiled.instructions()).map_err(|source| FilterError::Translate {
            expression: expression.to_owned(),
            view,
            source,
        })
    };
    let l2 = compile_cbpf(expression, View::Ethernet).map_err(|message| FilterError::Compile {
        expression: expression.to_owned(),
        message,
    })?;
    if let Some(k) = beyond_any_packet(&l2.instructions()) {
        // libpcap accepts these (they just never match); a typo is likelier than intent.
        return Err(FilterError::Compile {
            expression: expression.to_owned(),
            message: format!(
                "it reads beyond the largest possible packet ({MAX_PACKET} bytes; offset {k} with \
                 link-layer headers), so it can never match"
            ),
        });
    }
    let l2_cbpf = l2.instructions();
    let l2 = translate_view(View::Ethernet, &l2)?;
    let (l3, l3_cbpf) = match compile_cbpf(expression, View::Raw) {
        Ok(compiled) => (
            translate_view(View::Raw, &compiled)?,
            Some(compiled.instructions()),
        ),
        Err(message) => {
            log::debug!("no raw-IP form of '{expression}' ({message}): it matches only skbs with a MAC header");
            (reject_all(), None)
        }
    };
    Ok(Some(PcapFilter {
        expression: expression.to_owned(),
        l2,
        l3,
        l2_cbpf,
        l3_cbpf,
    }))
}

/// Compiles `expression` for one view only (the tunnel filters: the inner frame, or the inner
/// IP packet); `None` when it is empty.
pub fn compile_view(expression: &str, view: View) -> Result<Option<Vec<Insn>>, FilterError> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Ok(None);
    }
    let compiled = compile_cbpf(expression, view).map_err(|message| FilterError::Compile {
        expression: expression.to_owned(),
        message,
    })?;
    translate(&compiled.instructions())
        .map(Some)
        .map_err(|source| FilterError::Translate {
            expression: expression.to_owned(),
            view,
            source,
        })
}

/// Largest packet an skb's linear data can hold (IP's 16-bit length plus link headers).
const MAX_PACKET: u32 = 65_535 + 64;

/// The first packet-load offset no packet can reach, if any.
fn beyond_any_packet(prog: &[CbpfInsn]) -> Option<u32> {
    prog.iter()
        .filter(|i| {
            matches!(i.class(), cbpf::LD | cbpf::LDX)
                && matches!(i.mode(), cbpf::ABS | cbpf::IND | cbpf::MSH)
        })
        .map(|i| i.k)
        .find(|&k| k >= MAX_PACKET)
}

/// `ret #0`, translated.
fn reject_all() -> Vec<Insn> {
    translate(&[CbpfInsn {
        code: cbpf::RET | cbpf::RVAL_K,
        jt: 0,
        jf: 0,
        k: 0,
    }])
    .expect("a single return translates")
}

pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

impl PcapFilter {
    /// The code for the kernel object's two filter stubs.
    pub fn injections(&self) -> Vec<Injection> {
        self.injections_with(None)
    }

    /// [`PcapFilter::injections`] with direct packet loads where the kernel allows them
    /// (`direct`: see `ebpf::translate_with`).
    pub fn injections_with(&self, direct: Option<RdonlyCast>) -> Vec<Injection> {
        // The same programs translated once already; should the direct form not translate
        // (a jump too far in a huge filter), the helper form stands.
        let again = |cbpf: &[CbpfInsn], translated: &Vec<Insn>| match direct {
            None => translated.clone(),
            Some(_) => translate_with(cbpf, direct).unwrap_or_else(|e| {
                log::debug!("'{}' with direct loads: {e}", self.expression);
                translated.clone()
            }),
        };
        let l2 = again(&self.l2_cbpf, &self.l2);
        let l3 = match &self.l3_cbpf {
            Some(cbpf) => again(cbpf, &self.l3),
            None => self.l3.clone(),
        };
        vec![
            Injection {
                stub: FILTER_L2_STUB,
                code: to_bytes(&l2),
            },
            Injection {
                stub: FILTER_L3_STUB,
                code: to_bytes(&l3),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_expression_is_no_filter() {
        assert!(compile("").unwrap().is_none());
        assert!(compile("   ").unwrap().is_none());
    }

    #[test]
    fn direct_loads_call_the_kfunc_and_no_helper() {
        let f = compile("host 10.0.0.1 and tcp port 443").unwrap().unwrap();
        let cast = RdonlyCast {
            func_id: 4242,
            struct_id: 77,
        };
        let calls = |code: &[u8], src: u8, imm: i32| {
            code.chunks_exact(8)
                .filter(|i| {
                    i[0] == crate::asm::JMP | crate::asm::CALL
                        && i[1] >> 4 == src
                        && i32::from_le_bytes([i[4], i[5], i[6], i[7]]) == imm
                })
                .count()
        };
        let helper = crate::asm::HELPER_PROBE_READ_KERNEL;
        for (with, direct) in [
            (f.injections(), false),
            (f.injections_with(Some(cast)), true),
        ] {
            for injection in with {
                let (kfunc, probe) = (
                    calls(&injection.code, 2, 4242),
                    calls(&injection.code, 0, helper),
                );
                assert!(
                    if direct {
                        kfunc > 0 && probe == 0
                    } else {
                        kfunc == 0 && probe > 0
                    },
                    "{}: {kfunc} kfunc calls, {probe} helper calls (direct: {direct})",
                    injection.stub.symbol
                );
            }
        }
    }

    #[test]
    fn bad_expressions_give_libpcap_messages() {
        for (expr, needle) in [
            ("port", "syntax error"),
            ("host 999.1.1.1", "999.1.1.1"),
            ("tcp[100000:4] = 1", "100000"),
        ] {
            let err = compile(expr).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid pcap filter '{expr}': ")),
                "{err}"
            );
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }

    #[test]
    fn link_layer_only_expressions_reject_in_l3_form() {
        let f = compile("arp").unwrap().unwrap();
        assert!(f.l3_cbpf.is_none());
        assert_eq!(f.l3, reject_all());
        let f = compile("tcp port 80").unwrap().unwrap();
        assert!(f.l3_cbpf.is_some());
    }

    #[test]
    fn raw_form_reads_from_the_ip_header() {
        // `ip` on DLT_RAW tests the version nibble at offset 0; on Ethernet the ethertype at 12.
        let raw = compile_cbpf("ip", View::Raw).unwrap().instructions();
        assert_eq!((raw[0].code, raw[0].k), (cbpf::LD | cbpf::B | cbpf::ABS, 0));
        let eth = compile_cbpf("ip", View::Ethernet).unwrap().instructions();
        assert_eq!(
            (eth[0].code, eth[0].k),
            (cbpf::LD | cbpf::H | cbpf::ABS, 12)
        );
    }

    #[test]
    fn patches_the_embedded_object() {
        let filter = compile("tcp port 443").unwrap();
        let patched = crate::object::patch(
            crate::loader::embedded_object().unwrap(),
            &crate::object::Patches {
                injections: filter.as_ref().unwrap().injections(),
                ..Default::default()
            },
        )
        .unwrap();
        let elf = object::read::File::parse(patched.as_bytes()).unwrap();
        use object::{Object, ObjectSection, ObjectSymbol};
        let section = elf.section_by_name(".text.filter_l2").unwrap();
        assert_eq!(
            section.data().unwrap(),
            to_bytes(&filter.as_ref().unwrap().l2)
        );
        let sym = elf
            .symbols()
            .find(|s| s.name() == Ok("pwru_filter_l2"))
            .unwrap();
        assert_eq!(sym.size(), section.size());
        assert_eq!(
            (sym.address(), section.address()),
            (0x1000_0000, 0x1000_0000)
        );
        let l3 = elf
            .symbols()
            .find(|s| s.name() == Ok("pwru_filter_l3"))
            .unwrap();
        assert_eq!(l3.address(), 0x2000_0000, "stubs must not share an address");
    }
}
