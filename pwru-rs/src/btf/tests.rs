//! Tests on `testdata/btf/fixture.btf` (built from `fixture.c` by `gen.sh`), on small BTF blobs
//! encoded below for cases a C compiler will not produce, and on the running kernel if any.

use std::time::Instant;

use super::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/btf/fixture.btf");

fn fixture() -> KernelBtf {
    KernelBtf::from_file(Path::new(FIXTURE)).expect("fixture.btf parses")
}

fn func(name: &str, skb_arg: u8) -> SkbFunction {
    SkbFunction {
        name: name.to_owned(),
        skb_arg,
    }
}

fn tp(name: &str, skb_arg: u8, reason_arg: Option<u8>) -> SkbTracepoint {
    SkbTracepoint {
        name: name.to_owned(),
        skb_arg,
        reason_arg,
    }
}

#[test]
fn fixture_skb_functions() {
    // Not listed: skb_sixth (argument 5), no_skb, skb_by_value_is_not_a_pointer (sk_buff **).
    assert_eq!(
        fixture().skb_functions(),
        vec![
            func("skb_const", 0),
            func("skb_fifth", 4),
            func("skb_first", 0),
            func("skb_third", 2),
            func("skb_two", 1),
            func("skb_volatile_typedef", 1),
        ]
    );
}

#[test]
fn fixture_skb_tracepoints() {
    // Not listed: btf_trace_sched_switch (no skb), not_a_btf_trace (prefix).
    assert_eq!(
        fixture().skb_tracepoints(),
        vec![
            tp("kfree_skb", 0, Some(2)),
            tp("net_dev_queue", 0, None),
            tp("skb_late", 1, None),
        ]
    );
}

#[test]
fn fixture_offsets() {
    // The same numbers are pinned by _Static_asserts in fixture.c.
    assert_eq!(
        fixture().offsets().expect("offsets"),
        Offsets {
            skb_len: 80,
            skb_mark: 104,
            skb_protocol: 94,
            skb_dev: 16,
            skb_sk: 24,
            skb_head: 120,
            skb_data: 128,
            skb_tail: 108,
            skb_end: 112,
            skb_network_header: 98,
            skb_transport_header: 96,
            skb_mac_header: 100,
            skb_mac_len: 88,
            dev_name: 8,
            dev_ifindex: 28,
            dev_mtu: 32,
            dev_net: 40,
            sk_net: 16,
            net_inum: 24,
            skb_cb: 32,
            ..Offsets::default()
        }
    );
}

#[test]
fn fixture_field_errors() {
    let btf = fixture();
    assert!(matches!(
        btf.field_offset("sk_buff", &["pkt_type"]),
        Err(BtfError::Bitfield { ty, field }) if ty == "sk_buff" && field == "pkt_type"
    ));
    assert!(matches!(
        btf.field_offset("sk_buff", &["nope"]),
        Err(BtfError::MissingField { ty, field }) if ty == "sk_buff" && field == "nope"
    ));
    assert!(matches!(
        btf.field_offset("sock", &["__sk_common", "skc_net", "nope"]),
        Err(BtfError::MissingField { ty, field })
            if ty == "sock" && field == "__sk_common.skc_net.nope"
    ));
    // mtu is an int: nothing can be looked up in it.
    assert!(matches!(
        btf.field_offset("net_device", &["mtu", "x"]),
        Err(BtfError::MissingField { ty, field }) if ty == "net_device" && field == "mtu.x"
    ));
    // Only anonymous members are descended into, but a named one can be addressed.
    assert!(matches!(
        btf.field_offset("sk_buff", &["network_header"]),
        Ok(98)
    ));
    assert!(matches!(
        btf.field_offset("sk_buff", &["headers", "network_header"]),
        Ok(98)
    ));
    assert!(matches!(
        btf.field_offset("sk_buff", &["rbnode", "rb_left"]),
        Ok(16)
    ));
    assert!(matches!(
        btf.field_offset("nope", &["len"]),
        Err(BtfError::MissingType(t)) if t == "nope"
    ));
}

#[test]
fn fixture_drop_reasons() {
    let reasons = fixture().drop_reasons();
    assert_eq!(reasons.len(), 7);
    assert_eq!(reasons.name(0), Some("SKB_NOT_DROPPED_YET"));
    assert_eq!(reasons.name(2), Some("SKB_DROP_REASON_NOT_SPECIFIED"));
    assert_eq!(reasons.name(3), Some("SKB_DROP_REASON_NO_SOCKET"));
    assert_eq!(reasons.name(5), Some("SKB_DROP_REASON_MAX"));
    assert_eq!(
        reasons.name(0xffff_0000),
        Some("SKB_DROP_REASON_SUBSYS_MASK")
    );
    assert_eq!(reasons.name(6), None);
    assert_eq!(reasons.iter().next(), Some((0, "SKB_NOT_DROPPED_YET")));
}

/// File (mmap), bytes (memfd + mmap) and btf-rs's in-memory cache backend must agree.
#[test]
fn backends_agree() {
    let bytes = fs::read(FIXTURE).expect("read fixture");
    let all = [
        fixture(),
        KernelBtf::from_bytes(&bytes).expect("from_bytes"),
        KernelBtf::from_btfs(Btf::from_bytes(&bytes).expect("cache backend"), Vec::new())
            .expect("index"),
    ];
    for btf in &all[1..] {
        assert_eq!(btf.skb_functions(), all[0].skb_functions());
        assert_eq!(btf.skb_tracepoints(), all[0].skb_tracepoints());
        assert_eq!(btf.offsets().ok(), all[0].offsets().ok());
        assert_eq!(btf.drop_reasons(), all[0].drop_reasons());
    }
}

#[test]
fn load_errors() {
    let missing = Path::new("/nonexistent/vmlinux");
    assert!(matches!(
        KernelBtf::from_file(missing),
        Err(BtfError::Read { path, source })
            if path == missing && source.kind() == io::ErrorKind::NotFound
    ));
    assert!(matches!(
        KernelBtf::from_bytes(b"not BTF at all, just some bytes"),
        Err(BtfError::Parse(_))
    ));
    assert!(matches!(
        KernelBtf::from_bytes(&[]),
        Err(BtfError::Parse(_))
    ));
}

/// Minimal BTF encoder (little endian) for inputs clang does not generate.
struct Enc {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    /// For split BTF: the base's string section length (string offsets continue after it).
    str_base: u32,
}

impl Enc {
    const INT: u32 = 1;
    const PTR: u32 = 2;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const ENUM: u32 = 6;
    const FWD: u32 = 7;
    const TYPEDEF: u32 = 8;
    const CONST: u32 = 10;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;

    fn new() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            str_base: 0,
        }
    }

    /// Split BTF on top of `base` (as the kernel makes for modules): ids and string offsets
    /// continue where the base's end.
    fn split(base: &Enc) -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0],
            next_id: base.next_id,
            str_base: base.strings.len() as u32,
        }
    }

    fn str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn u32(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }

    fn ty(&mut self, name: &str, kind: u32, kind_flag: bool, vlen: u32, size_or_type: u32) -> u32 {
        let name = self.str(name);
        self.u32(name);
        self.u32(vlen | (kind << 24) | (u32::from(kind_flag) << 31));
        self.u32(size_or_type);
        self.next_id += 1;
        self.next_id - 1
    }

    fn int(&mut self, name: &str, size: u32) -> u32 {
        let id = self.ty(name, Self::INT, false, 0, size);
        self.u32(size * 8);
        id
    }

    fn ptr(&mut self, to: u32) -> u32 {
        self.ty("", Self::PTR, false, 0, to)
    }

    fn konst(&mut self, to: u32) -> u32 {
        self.ty("", Self::CONST, false, 0, to)
    }

    fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.ty(name, Self::TYPEDEF, false, 0, to)
    }

    fn fwd(&mut self, name: &str) -> u32 {
        self.ty(name, Self::FWD, false, 0, 0)
    }

    /// Members are `(name, type, offset in bits)`.
    fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.ty(name, Self::STRUCT, false, members.len() as u32, size);
        for &(n, t, off) in members {
            let n = self.str(n);
            self.u32(n);
            self.u32(t);
            self.u32(off);
        }
        id
    }

    /// A struct with kind_flag set: members are `(name, type, offset in bits, bitfield size)`.
    fn bitfield_struct(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let id = self.ty(name, Self::STRUCT, true, members.len() as u32, size);
        for &(n, t, off, bits) in members {
            let n = self.str(n);
            self.u32(n);
            self.u32(t);
            self.u32(off | (bits << 24));
        }
        id
    }

    fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.ty(name, Self::UNION, false, members.len() as u32, size);
        for &(n, t, off) in members {
            let n = self.str(n);
            self.u32(n);
            self.u32(t);
            self.u32(off);
        }
        id
    }

    fn array(&mut self, elem: u32, len: u32) -> u32 {
        let id = self.ty("", Self::ARRAY, false, 0, 0);
        self.u32(elem);
        self.u32(elem); // index type: any int
        self.u32(len);
        id
    }

    fn signed_int(&mut self, name: &str, size: u32) -> u32 {
        let id = self.ty(name, Self::INT, false, 0, size);
        self.u32((1 << 24) | (size * 8)); // BTF_INT_SIGNED
        id
    }

    fn enm(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
        let id = self.ty(name, Self::ENUM, false, values.len() as u32, 4);
        for &(n, v) in values {
            let n = self.str(n);
            self.u32(n);
            self.u32(v);
        }
        id
    }

    fn proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let id = self.ty("", Self::FUNC_PROTO, false, params.len() as u32, ret);
        for &p in params {
            self.u32(0);
            self.u32(p);
        }
        id
    }

    fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.ty(name, Self::FUNC, false, 1 /* global */, proto)
    }

    fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9f_u16.to_le_bytes());
        out.extend_from_slice(&[1, 0]); // version, flags
        let hdr_len = 24u32;
        let type_len = self.types.len() as u32;
        for v in [hdr_len, 0, type_len, type_len, self.strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

#[test]
fn encoded_odd_functions() {
    let mut e = Enc::new();
    let int = e.int("int", 4);
    let skb = e.strukt("sk_buff", 4, &[("len", int, 0)]);
    let skb_ptr = e.ptr(skb);
    let const_ptr = e.konst(skb_ptr); // struct sk_buff *const
    let typedef_ptr = e.typedef("skb_ptr_t", skb_ptr);
    let fwd_skb = e.fwd("sk_buff"); // a forward declaration still means sk_buff
    let fwd_ptr = e.ptr(fwd_skb);
    let p1 = e.proto(int, &[skb_ptr]);
    let p_const = e.proto(int, &[int, const_ptr]);
    let p_typedef = e.proto(int, &[int, int, typedef_ptr]);
    let p_fwd = e.proto(int, &[fwd_ptr]);
    let p_variadic = e.proto(int, &[int, 0]);
    e.func("dup", p1); // first "dup" wins
    e.func("dup", p_const);
    e.func("const_ptr", p_const);
    e.func("typedef_ptr", p_typedef);
    e.func("fwd_ptr", p_fwd);
    e.func("variadic", p_variadic);
    e.func("proto_missing", 9999);
    e.func("proto_not_a_proto", int);
    let btf = KernelBtf::from_bytes(&e.finish()).expect("parse");
    assert_eq!(
        btf.skb_functions(),
        vec![
            func("const_ptr", 1),
            func("dup", 0),
            func("fwd_ptr", 0),
            func("typedef_ptr", 2),
        ]
    );
    // sk_buff has none of the fields: the first one asked for is reported.
    assert!(matches!(
        btf.offsets(),
        Err(BtfError::MissingField { ty, field }) if ty == "sk_buff" && field == "mark"
    ));
}

#[test]
fn encoded_odd_tracepoints() {
    let mut e = Enc::new();
    let int = e.int("int", 4);
    let skb = e.strukt("sk_buff", 4, &[("len", int, 0)]);
    let skb_ptr = e.ptr(skb);
    let void_ptr = e.ptr(0);
    let reason = e.enm("skb_drop_reason", &[("SKB_CONSUMED", 1)]);
    let reason_t = e.typedef("reason_t", reason);
    let good = e.proto(0, &[void_ptr, reason_t, skb_ptr]);
    let good_ptr = e.ptr(good);
    e.typedef("btf_trace_reason_first", good_ptr);
    let no_ctx = e.proto(0, &[skb_ptr]);
    let no_ctx_ptr = e.ptr(no_ctx);
    e.typedef("btf_trace_no_ctx", no_ctx_ptr);
    e.typedef("btf_trace_not_a_pointer", good);
    e.typedef("btf_trace_dangling", 9999);
    let empty = e.proto(0, &[]);
    let empty_ptr = e.ptr(empty);
    e.typedef("btf_trace_empty", empty_ptr);
    let btf = KernelBtf::from_bytes(&e.finish()).expect("parse");
    assert_eq!(btf.skb_tracepoints(), vec![tp("reason_first", 1, Some(0))]);
    assert_eq!(btf.drop_reasons().name(1), Some("SKB_CONSUMED"));
}

#[test]
fn encoded_bitfield_struct() {
    // kind_flag set: offsets carry a bitfield size in their top byte.
    let mut e = Enc::new();
    let int = e.int("int", 4);
    e.bitfield_struct(
        "sk_buff",
        12,
        &[
            ("flags", int, 0, 3),
            ("len", int, 32, 0),
            ("odd", int, 68, 0),
        ],
    );
    let btf = KernelBtf::from_bytes(&e.finish()).expect("parse");
    assert!(matches!(btf.field_offset("sk_buff", &["len"]), Ok(4)));
    assert!(matches!(
        btf.field_offset("sk_buff", &["flags"]),
        Err(BtfError::Bitfield { field, .. }) if field == "flags"
    ));
    // Not a bitfield, but not byte aligned either.
    assert!(matches!(
        btf.field_offset("sk_buff", &["odd"]),
        Err(BtfError::Bitfield { field, .. }) if field == "odd"
    ));
}

#[test]
fn fixture_fields_of_any_struct() {
    let btf = fixture();
    let dev = btf.field("sk_buff", &["dev"]).expect("sk_buff.dev");
    assert_eq!((dev.offset, dev.size, dev.bitfield), (16, 8, None));
    let FieldKind::Ptr {
        pointee: Some(net_device),
        pointee_name,
    } = dev.kind
    else {
        panic!("sk_buff.dev is {dev:?}");
    };
    assert_eq!(pointee_name.as_deref(), Some("net_device"));
    assert_eq!(
        Ok(net_device),
        btf.struct_id("net_device").map_err(|e| e.to_string())
    );
    let ifindex = btf.field_in(net_device, &["ifindex"]).expect("ifindex");
    assert_eq!((ifindex.offset, ifindex.size), (28, 4));
    assert!(matches!(
        ifindex.kind,
        FieldKind::Int {
            size: 4,
            signed: true,
            ..
        }
    ));
    let name = btf.field("net_device", &["name"]).expect("name");
    assert!(matches!(
        name.kind,
        FieldKind::Array {
            elem_size: 1,
            len: 16,
            string: true,
            ..
        }
    ));
    assert_eq!((name.offset, name.size), (8, 16));
    // __u8 cloned : 1, nohdr : 1, pkt_type : 3 at byte 92.
    let pkt_type = btf.field("sk_buff", &["pkt_type"]).expect("pkt_type");
    assert_eq!(
        (pkt_type.offset, pkt_type.size, pkt_type.bitfield),
        (92, 1, Some(Bitfield { shift: 2, bits: 3 }))
    );
    assert!(matches!(
        pkt_type.kind,
        FieldKind::Int {
            size: 1,
            signed: false,
            ..
        }
    ));
    // A named struct member, described as a struct.
    let common = btf.field("sock", &["__sk_common"]).expect("__sk_common");
    assert!(matches!(
        common.kind,
        FieldKind::Struct { name: Some(ref n), .. } if n == "sock_common"
    ));
    // Errors name the wrong part of the path.
    assert!(matches!(
        btf.field_in(net_device, &["ifindex", "x"]),
        Err(BtfError::MissingField { ty, field }) if ty == "net_device" && field == "ifindex.x"
    ));
    assert!(matches!(
        btf.field("no_such_struct", &["x"]),
        Err(BtfError::MissingType(t)) if t == "no_such_struct"
    ));
    assert!(matches!(
        btf.field_in(ifindex.type_id, &["x"]),
        Err(BtfError::NotAStruct(t)) if t == "int"
    ));
}

#[test]
fn encoded_field_kinds() {
    let mut e = Enc::new();
    let u32_t = e.int("unsigned int", 4);
    let s16 = e.signed_int("short", 2);
    let sign = e.enm("sign", &[("A", 1)]);
    let fwd = e.fwd("late");
    let fwd_ptr = e.ptr(fwd);
    let void_ptr = e.ptr(0);
    let arr = e.array(s16, 3);
    let inner = e.union("", 4, &[("word", u32_t, 0), ("half", s16, 0)]);
    e.bitfield_struct(
        "root",
        32,
        &[
            ("", inner, 0, 0),
            ("wide", u32_t, 38, 30), // bits 38..68: 6 + 30 bits need 8 bytes
            ("late", fwd_ptr, 128, 0),
            ("any", void_ptr, 192, 0),
            ("shorts", arr, 64, 0),
            ("e", sign, 96, 0),
        ],
    );
    e.strukt("late", 8, &[("x", u32_t, 32)]);
    let btf = KernelBtf::from_bytes(&e.finish()).expect("parse");
    let half = btf
        .field("root", &["half"])
        .expect("half through the anonymous union");
    assert_eq!((half.offset, half.size), (0, 2));
    assert!(matches!(
        half.kind,
        FieldKind::Int {
            size: 2,
            signed: true,
            ..
        }
    ));
    let wide = btf.field("root", &["wide"]).expect("wide");
    assert_eq!(
        (wide.offset, wide.size, wide.bitfield),
        (4, 8, Some(Bitfield { shift: 6, bits: 30 }))
    );
    let shorts = btf.field("root", &["shorts"]).expect("shorts");
    assert_eq!(shorts.size, 6);
    assert!(matches!(
        shorts.kind,
        FieldKind::Array {
            elem_size: 2,
            len: 3,
            string: false,
            ..
        }
    ));
    assert!(matches!(
        btf.field("root", &["e"]).expect("e").kind,
        FieldKind::Enum {
            size: 4,
            signed: false
        }
    ));
    assert!(matches!(
        btf.field("root", &["any"]).expect("any").kind,
        FieldKind::Ptr {
            pointee: None,
            pointee_name: None
        }
    ));
    // A pointer to a forward declaration: the path resolves in the full struct, by name.
    let FieldKind::Ptr {
        pointee: Some(late),
        pointee_name,
    } = btf.field("root", &["late"]).expect("late").kind
    else {
        panic!("late is not a pointer");
    };
    assert_eq!(pointee_name.as_deref(), Some("late"));
    assert_eq!(btf.field_in(late, &["x"]).expect("late.x").offset, 4);
    assert!(matches!(
        btf.field("root", &[]),
        Err(BtfError::MissingField { field, .. }) if field.is_empty()
    ));
}

/// vmlinux plus two modules whose split ids overlap: each module's types are found, and a
/// module type using vmlinux types resolves through them.
#[test]
fn encoded_split_module_btf() {
    let mut base = Enc::new();
    let int = base.int("int", 4);
    let skb = base.strukt("sk_buff", 8, &[("len", int, 0), ("mark", int, 32)]);
    let skb_ptr = base.ptr(skb);
    let p = base.proto(int, &[skb_ptr]);
    base.func("ip_rcv", p);

    let mut m1 = Enc::split(&base);
    let conn = m1.strukt("nf_conn", 8, &[("status", int, 32)]);
    let conn_ptr = m1.ptr(conn);
    let p = m1.proto(int, &[conn_ptr, int, skb_ptr]);
    m1.func("nf_hook_thing", p);
    let void_ptr = m1.ptr(0);
    let tp_proto = m1.proto(0, &[void_ptr, skb_ptr]);
    let tp_ptr = m1.ptr(tp_proto);
    m1.typedef("btf_trace_mod_event", tp_ptr);

    let mut m2 = Enc::split(&base);
    let other = m2.strukt("other_mod", 4, &[("skb_count", int, 0)]);
    let p = m2.proto(int, &[skb_ptr]);
    m2.func("other_rcv", p);
    assert_eq!(conn, other, "the two modules' ids overlap");

    let (b, m1, m2) = (base.finish(), m1.finish(), m2.finish());
    let btf =
        KernelBtf::from_bytes_with_modules(&b, &[("nf", &m1), ("other", &m2)]).expect("parse");
    assert_eq!(btf.modules(), ["nf", "other"]);
    assert_eq!(
        btf.skb_functions(),
        vec![
            func("ip_rcv", 0),
            func("nf_hook_thing", 2),
            func("other_rcv", 0)
        ]
    );
    assert_eq!(btf.skb_tracepoints(), vec![tp("mod_event", 0, None)]);
    let status = btf.field("nf_conn", &["status"]).expect("module struct");
    assert_eq!(status.offset, 4);
    assert_eq!(status.type_id, TypeId { obj: 0, id: int });
    assert_eq!(
        btf.struct_id("nf_conn").unwrap(),
        TypeId { obj: 1, id: conn }
    );
    assert_eq!(
        btf.struct_id("other_mod").unwrap(),
        TypeId { obj: 2, id: other }
    );
    assert_eq!(btf.field("other_mod", &["skb_count"]).unwrap().offset, 0);
    assert_eq!(btf.field("sk_buff", &["mark"]).unwrap().offset, 4);

    // Files: the module is named after its file.
    let dir = std::env::temp_dir().join(format!("pwru-rs-split-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let (vmlinux, module) = (dir.join("vmlinux"), dir.join("nf"));
    fs::write(&vmlinux, &b).unwrap();
    fs::write(&module, &m1).unwrap();
    let from_files = KernelBtf::from_files(&vmlinux, std::slice::from_ref(&module));
    let missing = KernelBtf::from_files(&vmlinux, &[dir.join("absent")]);
    fs::remove_dir_all(&dir).unwrap();
    let from_files = from_files.expect("files parse");
    assert_eq!(from_files.modules(), ["nf"]);
    assert_eq!(from_files.skb_functions().len(), 2);
    assert!(matches!(missing, Err(BtfError::Read { path, .. }) if path.ends_with("absent")));
}

#[test]
fn encoded_without_kernel_types() {
    let mut e = Enc::new();
    let int = e.int("int", 4);
    let p = e.proto(int, &[int]);
    e.func("f", p);
    let btf = KernelBtf::from_bytes(&e.finish()).expect("parse");
    assert!(btf.skb_functions().is_empty());
    assert!(btf.skb_tracepoints().is_empty());
    assert!(btf.drop_reasons().is_empty());
    assert!(matches!(btf.offsets(), Err(BtfError::MissingType(t)) if t == "sk_buff"));
}

/// Runs only where the kernel exposes its BTF (no root needed: the file is world-readable).
#[test]
fn running_kernel() {
    let path = Path::new(VMLINUX_BTF);
    if !path.exists() {
        eprintln!("{VMLINUX_BTF} absent, skipped");
        return;
    }
    let btf = KernelBtf::from_file(path).expect("vmlinux BTF");

    let funcs = btf.skb_functions();
    assert!(funcs.len() > 1000, "only {} skb functions", funcs.len());
    let arg = |name: &str| funcs.iter().find(|f| f.name == name).map(|f| f.skb_arg);
    assert_eq!(arg("ip_rcv"), Some(0));
    // kfree_skb_reason() became an inline wrapper of sk_skb_reason_drop(sk, skb, reason) in 6.11.
    assert!(
        arg("kfree_skb_reason") == Some(0) || arg("sk_skb_reason_drop") == Some(1),
        "no kfree_skb_reason/sk_skb_reason_drop"
    );
    assert!(funcs.iter().all(|f| f.skb_arg < MAX_SKB_ARGS));
    assert!(funcs.windows(2).all(|w| w[0].name < w[1].name));

    let tps = btf.skb_tracepoints();
    let find = |name: &str| tps.iter().find(|t| t.name == name).cloned();
    assert_eq!(find("kfree_skb"), Some(tp("kfree_skb", 0, Some(2))));
    assert_eq!(
        find("netif_receive_skb"),
        Some(tp("netif_receive_skb", 0, None))
    );

    let o = btf.offsets().expect("offsets");
    for (name, v) in [
        ("skb_len", o.skb_len),
        ("skb_mark", o.skb_mark),
        ("skb_protocol", o.skb_protocol),
        ("skb_head", o.skb_head),
        ("skb_data", o.skb_data),
        ("skb_network_header", o.skb_network_header),
        ("dev_ifindex", o.dev_ifindex),
        ("dev_net", o.dev_net),
        ("sk_net", o.sk_net),
        ("net_inum", o.net_inum),
    ] {
        assert_ne!(v, 0, "{name}");
    }
    assert_ne!(o.skb_len, o.skb_mark);
    assert_ne!(o.skb_head, o.skb_data);
    assert!(o.skb_data < 512 && o.skb_mark < 512, "{o:?}");
    let x = btf.with_xdp_offsets(o).expect("xdp offsets");
    assert_eq!(x.skb_len, o.skb_len);
    // data comes first in xdp_buff; the others follow it.
    assert_eq!(x.xdp_data, 0);
    assert!(
        x.xdp_data_end > 0 && x.xdp_data_hard_start > 0 && x.xdp_rxq > 0,
        "{x:?}"
    );
    assert!(x.rxq_dev == 0 && x.rxq_queue_index > 0, "{x:?}");

    // A struct outside the start-up set, through the lazy name index, and a pointer chain.
    let dev = btf.field("sk_buff", &["dev"]).expect("sk_buff.dev");
    let FieldKind::Ptr {
        pointee: Some(net_device),
        ..
    } = dev.kind
    else {
        panic!("sk_buff.dev is {dev:?}");
    };
    let ifindex = btf.field_in(net_device, &["ifindex"]).expect("ifindex");
    assert_eq!(ifindex.offset, o.dev_ifindex);
    let family = btf
        .field("sock_common", &["skc_family"])
        .expect("sock_common.skc_family");
    assert_eq!(family.size, 2);

    let reasons = btf.drop_reasons();
    assert_eq!(reasons.name(0), Some("SKB_NOT_DROPPED_YET"));
    assert_eq!(reasons.name(2), Some("SKB_DROP_REASON_NOT_SPECIFIED"));
}

/// Start-up cost on the running kernel. Run with:
/// `cargo test --release -p pwru-rs --lib btf::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_running_kernel() {
    let path = Path::new(VMLINUX_BTF);
    let bytes = fs::read(path).expect("read vmlinux BTF");
    for round in 0..5 {
        let t = Instant::now();
        let btf = KernelBtf::from_file(path).expect("parse");
        let parsed = t.elapsed();
        let funcs = btf.skb_functions();
        let tps = btf.skb_tracepoints();
        let offsets = btf.offsets().expect("offsets");
        let reasons = btf.drop_reasons();
        let total = t.elapsed();

        let t = Instant::now();
        let from_bytes = KernelBtf::from_bytes(&bytes).expect("parse");
        let memfd = t.elapsed();
        let t = Instant::now();
        let cached = KernelBtf::from_btfs(Btf::from_bytes(&bytes).expect("parse"), Vec::new())
            .expect("index");
        let cache = t.elapsed();
        let t = Instant::now();
        btf.struct_id("sock_common").expect("sock_common");
        let name_index = t.elapsed();
        assert_eq!(from_bytes.skb_functions(), funcs);
        assert_eq!(cached.skb_functions(), funcs);
        eprintln!(
            "round {round}: from_file {parsed:?}, + functions/tracepoints/offsets/reasons {total:?} \
             ({} funcs, {} tracepoints, {} reasons, skb_len@{}); \
             parse only: from_bytes(memfd) {memfd:?}, cache backend {cache:?}; \
             first lookup of another struct (name index) {name_index:?}",
            funcs.len(),
            tps.len(),
            reasons.len(),
            offsets.skb_len,
        );
    }
}
