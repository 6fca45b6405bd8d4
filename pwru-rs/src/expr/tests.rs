//! The expression compiler on `testdata/btf/fixture.btf` (offsets pinned by fixture.c's
//! `_Static_assert`s): every construct, every error.

use std::path::Path;

use super::*;
use crate::asm::{self, Insn};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/btf/fixture.btf");

fn btf() -> KernelBtf {
    KernelBtf::from_file(Path::new(FIXTURE)).expect("fixture.btf parses")
}

fn access(expr: &str) -> Access {
    metadata(&btf(), SKB, &[expr.to_owned()])
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .remove(0)
        .access
}

fn filter_err(expr: &str) -> String {
    filter(&btf(), SKB, expr)
        .map(|f| format!("unexpectedly fine: {f:?}"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn members_through_anonymous_unions() {
    let a = access("skb->len");
    assert_eq!((a.derefs.clone(), a.offset, a.size), (vec![], 80, 4));
    assert_eq!((a.kind, a.label.as_str()), (ValueKind::Unsigned, "len"));
    // mark sits in an anonymous union.
    let a = access("skb->mark");
    assert_eq!((a.offset, a.size, a.kind), (104, 4, ValueKind::Unsigned));
    assert_eq!(a.type_name, "unsigned int");
}

#[test]
fn pointer_chains_load_each_pointer() {
    // dev at 16 in sk_buff; ifindex at 28 in net_device, a signed int.
    let a = access("skb->dev->ifindex");
    assert_eq!((a.derefs.clone(), a.offset, a.size), (vec![16], 28, 4));
    assert_eq!(a.kind, ValueKind::Signed);
    // Three pointers: skb->dev, dev->nd_net.net, net->ns.inum (net at 40 + 0, inum 8 + 16).
    let a = access("skb->dev->nd_net.net->ns.inum");
    assert_eq!((a.derefs.clone(), a.offset), (vec![16, 40], 24));
    assert_eq!(a.text, "skb->dev->nd_net.net->ns.inum");
    assert_eq!(a.label, "inum");
    // Embedded struct then member: sk at 24; __sk_common at 8, skc_num at 4 in it.
    let a = access("skb->sk->__sk_common.skc_num");
    assert_eq!((a.derefs.clone(), a.offset, a.size), (vec![24], 12, 2));
}

#[test]
fn arrays_strings_pointers_and_bitfields() {
    let a = access("skb->dev->name");
    assert_eq!((a.derefs.clone(), a.offset, a.size), (vec![16], 8, 16));
    assert_eq!(
        (a.kind, a.type_name.as_str()),
        (ValueKind::Chars, "char[16]")
    );
    let a = access("skb->cb[5]");
    assert_eq!((a.offset, a.size), (32 + 5, 1));
    assert_eq!(a.label, "cb");
    // A pointer indexed: load it, then the element.
    let a = access("skb->head[3]");
    assert_eq!((a.derefs.clone(), a.offset, a.size), (vec![120], 3, 1));
    let a = access("skb->dev");
    assert_eq!((a.kind, a.size), (ValueKind::Pointer, 8));
    assert_eq!(a.type_name, "struct net_device *");
    // pkt_type: bits 2..5 of the byte after hdr_len.
    let a = access("skb->pkt_type");
    assert_eq!(a.bitfield, Some(Bitfield { shift: 2, bits: 3 }));
    assert_eq!((a.offset, a.size), (92, 1));
}

#[test]
fn metadata_words_are_laid_out_in_order() {
    let exprs: Vec<String> = ["skb->mark", "skb->dev->name", "skb->cb", "skb->len"]
        .map(String::from)
        .into();
    let m = metadata(&btf(), SKB, &exprs).unwrap();
    let layout: Vec<_> = m.iter().map(|m| (m.first_word, m.words, m.bytes)).collect();
    // cb is 48 bytes: cut to 16.
    assert_eq!(layout, vec![(0, 1, 8), (1, 2, 16), (3, 2, 16), (5, 1, 8)]);
    let five: Vec<String> = (0..5).map(|_| "skb->len".to_owned()).collect();
    assert_eq!(
        metadata(&btf(), SKB, &five).unwrap_err(),
        ExprError::TooMany {
            kind: "skb",
            count: 5
        }
    );
}

#[test]
fn filters_resolve_their_tests() {
    let f = filter(&btf(), SKB, "skb->mark & 0xff == 0x42").unwrap();
    assert_eq!(
        f.test,
        Test::Number {
            mask: 0xff,
            op: CmpOp::Eq,
            value: 0x42,
            signed: false
        }
    );
    // Signed fields compare signed, with the constant sign-extended.
    let f = filter(&btf(), SKB, "skb->dev->ifindex < -1").unwrap();
    assert_eq!(
        f.test,
        Test::Number {
            mask: u64::MAX,
            op: CmpOp::Lt,
            value: u64::MAX,
            signed: true
        }
    );
    // No comparison: != 0, as C reads a condition.
    let f = filter(&btf(), SKB, "skb->sk").unwrap();
    assert!(matches!(
        f.test,
        Test::Number {
            op: CmpOp::Ne,
            value: 0,
            ..
        }
    ));
    let f = filter(&btf(), SKB, r#"skb->dev->name == "eth0""#).unwrap();
    assert_eq!(
        f.test,
        Test::String {
            equal: true,
            bytes: b"eth0\0".to_vec()
        }
    );
    // A string as long as the array needs no NUL.
    let f = filter(&btf(), SKB, r#"skb->dev->name != "0123456789abcdef""#).unwrap();
    assert_eq!(
        f.test,
        Test::String {
            equal: false,
            bytes: b"0123456789abcdef".to_vec()
        }
    );
    let f = filter(&btf(), SKB, "skb->pkt_type == 7").unwrap();
    assert!(matches!(f.test, Test::Number { value: 7, .. }));
}

#[test]
fn every_error_names_its_part() {
    for (expr, needle) in [
        ("", "the expression is empty"),
        ("sk->len == 1", "expressions start with 'skb'"),
        (
            "skb->nope == 1",
            "'skb->nope': struct sk_buff has no member 'nope'",
        ),
        ("skb->dev->nam", "struct net_device has no member 'nam'"),
        (
            "skb.len == 1",
            "'skb': is a pointer (struct sk_buff *): use '->'",
        ),
        (
            "skb->sk->__sk_common->skc_num",
            "is struct sock_common, not a pointer: use '.'",
        ),
        (
            "skb->len->x",
            "'skb->len': is unsigned int: it has no members",
        ),
        ("skb->cb[48]", "index 48 is out of bounds of char[48]"),
        ("skb->len[0]", "cannot be indexed"),
        ("skb->len == 0x100000000", "does not fit unsigned int"),
        ("skb->mac_len == -1", "-1 does not fit unsigned short"),
        ("skb->pkt_type == 8", "8 does not fit"),
        ("skb->mark & 0x1ffffffff == 1", "mask 0x1ffffffff is wider"),
        (
            "skb->dev->name == 3",
            "is char[16]: compare it with a string",
        ),
        ("skb->len == \"x\"", "not a char array"),
        (
            "skb->dev->name < \"a\"",
            "strings compare only with == or !=",
        ),
        ("skb->dev->name == \"0123456789abcdefg\"", "can never match"),
        ("skb->dev->name", "compare it with a string"),
        ("skb->dev->name & 1 == \"a\"", "compare it with a string"),
        ("skb->sk->__sk_common", "only numbers"),
        ("skb->len = 1", "'=' assigns in C"),
        ("skb->len == 1 && skb->mark == 2", "'&&' is not supported"),
        ("skb->len ==", "a number or a string must follow '=='"),
        ("skb->len == 1 2", "unexpected '2'"),
        ("skb->", "a member name must follow '->'"),
        ("skb->cb[", "an index is a non-negative number"),
        ("skb->cb[1", "expected ']'"),
        ("skb->len == \"abc", "no closing"),
        ("skb->len == 99999999999999999999", "is not a 64-bit number"),
        ("skb->len # 1", "unexpected character '#'"),
        ("skb", "name a member of struct sk_buff"),
    ] {
        let err = filter_err(expr);
        assert!(err.contains(needle), "{expr}: {err}");
        assert!(err.starts_with("invalid expression '"), "{expr}: {err}");
    }
    let err = filter_err("skb->len = 1");
    assert!(err.ends_with("at column 10"), "{err}");
}

#[test]
fn labels_are_the_last_member() {
    for (expr, label) in [
        ("skb->mark", "mark"),
        ("skb->cb[1]", "cb"),
        ("skb->dev->name", "name"),
        ("skb->sk->__sk_common.skc_num", "skc_num"),
        ("weird", "weird"),
    ] {
        assert_eq!(label_of(expr), label);
    }
}

/// Jumps stay in the program, calls are bpf_probe_read_kernel only, nothing needs a
/// relocation, and every path ends in an exit: what `crate::object` and the verifier need.
fn check_shape(code: &[Insn]) {
    assert!(!code.is_empty());
    for (pc, i) in code.iter().enumerate() {
        let class = i.code & 0x07;
        assert_ne!(i.code, 0x18, "ld_imm64 at {pc}");
        if class == asm::JMP || class == asm::JMP32 {
            match i.code & 0xf0 {
                0x80 => assert_eq!(
                    (i.src, i.imm),
                    (0, asm::HELPER_PROBE_READ_KERNEL),
                    "call at {pc}"
                ),
                0x90 => {}
                _ => {
                    let to = pc as i64 + 1 + i64::from(i.off);
                    assert!((0..code.len() as i64).contains(&to), "jump at {pc} to {to}");
                }
            }
        }
    }
    let last = code.last().unwrap();
    assert!(
        last.code == asm::JMP | asm::EXIT || last.code == asm::JMP | asm::JA,
        "falls off the end"
    );
}

#[test]
fn generated_code_has_the_shape_the_loader_needs() {
    let btf = btf();
    for expr in [
        "skb->len > 1000",
        "skb->dev->ifindex == -5",
        "skb->mark & 0xff == 0x42",
        "skb->dev->nd_net.net->ns.inum == 4026531840",
        "skb->pkt_type == 3",
        r#"skb->dev->name == "veth0""#,
        "skb->head[2] == 0xffffffffffffffff",
    ] {
        let f = match filter(&btf, SKB, expr) {
            Ok(f) => f,
            Err(e) if expr.contains("head") => {
                // An unsigned char cannot hold it: the error is the point.
                assert!(e.to_string().contains("does not fit"), "{e}");
                continue;
            }
            Err(e) => panic!("{expr}: {e}"),
        };
        let code = codegen::filter(&f, None).unwrap();
        check_shape(&code);
        // One helper call per pointer and one for the value.
        let calls = code
            .iter()
            .filter(|i| i.code == asm::JMP | asm::CALL)
            .count();
        assert_eq!(calls, f.access.derefs.len() + 1, "{expr}");
    }
    let exprs: Vec<String> = ["skb->mark", "skb->dev->name", "skb->dev->ifindex"]
        .map(String::from)
        .into();
    let m = metadata(&btf, SKB, &exprs).unwrap();
    let code = codegen::metadata(&m, None).unwrap();
    check_shape(&code);
}

#[test]
fn large_constants_are_built_without_ld_imm64() {
    let f = filter(&btf(), SKB, "skb->dev == 0xffff888012345678").unwrap();
    let code = codegen::filter(&f, None).unwrap();
    check_shape(&code);
    // mov32 high, lsh 32, mov32 low into r0, or.
    let lsh = code
        .iter()
        .position(|i| i.code == asm::ALU64 | 0x60 && i.imm == 32)
        .expect("a 32-bit shift builds the constant");
    assert_eq!(code[lsh - 1].imm as u32, 0xffff_8880);
    assert_eq!(code[lsh + 1].imm as u32, 0x1234_5678);
}

/// The running kernel's BTF, when it has one: the expressions the README shows resolve there.
#[test]
fn readme_expressions_resolve_on_the_running_kernel() {
    let path = Path::new(crate::btf::VMLINUX_BTF);
    if !path.exists() {
        eprintln!("no {}: skipped", path.display());
        return;
    }
    let btf = KernelBtf::from_file(path).unwrap();
    for e in [
        "skb->dev->ifindex == 9",
        "skb->mark & 0xff == 0x42",
        r#"skb->dev->name == "eth0""#,
        "skb->sk->__sk_common.skc_family == 10",
        "skb->len > 1000",
    ] {
        filter(&btf, SKB, e).unwrap_or_else(|err| panic!("{e}: {err}"));
    }
    let xdp = filter(&btf, XDP, "xdp->rxq->dev->ifindex == 2").unwrap();
    assert_eq!(xdp.access.derefs.len(), 2, "rxq, then dev");
    let exprs: Vec<String> = [
        "xdp->rxq->dev->name",
        "xdp->frame_sz",
        "xdp->rxq->queue_index",
    ]
    .map(String::from)
    .into();
    let m = metadata(&btf, XDP, &exprs).unwrap();
    assert_eq!(m[0].access.kind, ValueKind::Chars);
    let m = metadata(
        &btf,
        SKB,
        &[
            "skb->dev->nd_net.net->ns.inum".to_owned(),
            "skb->hash".to_owned(),
        ],
    )
    .unwrap();
    assert_eq!(m[0].access.derefs.len(), 2);
    // An xdp expression is not an skb one.
    let err = filter(&btf, SKB, "xdp->frame_sz == 1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("start with 'skb'"), "{err}");
}
