//! BTF field expressions over the packet's kernel struct, as pwru takes them:
//! `--filter-skb-expr 'skb->dev->ifindex == 9'` and `--output-skb-metadata 'skb->mark'`.
//!
//! An expression is parsed ([`parse`]), resolved against the running kernel's BTF in userspace
//! (every offset, size, bitfield and signedness comes from there: no CO-RE, nothing
//! hard-coded) and turned into eBPF ([`codegen`]) that follows the chain with
//! `bpf_probe_read_kernel`, injected into the kernel object in place of a stub like the pcap
//! filter. The grammar:
//!
//! ```text
//! filter   := access [ '&' integer ] [ compare ]     (no comparison: "!= 0")
//! compare  := ( '==' | '!=' | '<' | '<=' | '>' | '>=' ) ( integer | string )
//! access   := root { '->' member | '.' member | '[' integer ']' }
//! root     := 'skb'                                   (struct sk_buff *)
//! integer  := [ '-' ] ( decimal | 0x hex | 0o octal | 0b binary )
//! string   := '"' characters, with \" \\ \n \t \0 \xHH escapes '"'
//! ```
//!
//! `->` follows a pointer, `.` a member of an embedded struct or union (anonymous ones are
//! searched, as C does), `[i]` indexes an array (bounds-checked) or a pointer. A NULL pointer
//! or an unreadable address along the chain makes a filter false and a metadata value 0.
//! Strings compare with `==`/`!=` against `char` arrays (`skb->dev->name == "eth0"`, up to the
//! terminating NUL). A mask applies before the comparison (`skb->mark & 0xff == 0x42`); signed
//! fields compare signed.

pub mod codegen;
mod parse;

use std::fmt;

use crate::btf::{Bitfield, BtfError, FieldKind, KernelBtf, TypeId};
pub use parse::{parse_access, parse_filter, AccessExpr, CmpOp, FilterAst, Literal, Part};

/// pwru's limit on `--output-skb-metadata` expressions.
pub const MAX_METADATA: usize = pwru_rs_common::MAX_SKB_METADATA;
/// Bytes one metadata value may carry (longer `char` arrays are cut to this).
pub const MAX_VALUE_BYTES: u32 = 16;
/// Longest string literal a filter compares.
pub const MAX_STRING: usize = 63;
/// Longest pointer chain followed.
pub const MAX_DEREFS: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExprError {
    #[error("invalid expression '{expr}': {message} at column {column}")]
    Syntax {
        expr: String,
        column: usize,
        message: String,
    },
    #[error("invalid expression '{expr}': '{part}': {message}")]
    Field {
        expr: String,
        part: String,
        message: String,
    },
    #[error("too many --output-{kind}-metadata expressions ({count}; at most {MAX_METADATA})")]
    TooMany { kind: &'static str, count: usize },
    #[error("BTF: {0}")]
    Btf(String),
}

impl From<BtfError> for ExprError {
    fn from(e: BtfError) -> Self {
        ExprError::Btf(e.to_string())
    }
}

/// How the last field's bytes are read into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Unsigned,
    Signed,
    Bool,
    /// An address, printed in hex.
    Pointer,
    /// `char` array: a NUL-terminated string.
    Chars,
    /// Another array, or a struct read whole: bytes, printed in hex.
    Bytes,
}

/// A resolved access: pointers to follow, then the bytes to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The expression as written (the JSON key).
    pub text: String,
    /// The last member's name (`mark` for `skb->mark`): pwru's text label.
    pub label: String,
    /// Offsets, from the current base, of each pointer to load; the next base is its value.
    pub derefs: Vec<u32>,
    /// The value's offset from the last base.
    pub offset: u32,
    /// Bytes read at `offset` (for a bitfield: the smallest load holding its bits).
    pub size: u32,
    pub bitfield: Option<Bitfield>,
    pub kind: ValueKind,
    /// The C type, for messages (`unsigned int`, `char[16]`, `struct net_device *`).
    pub type_name: String,
}

impl Access {
    /// Whether the value is a number the code can compare or mask (≤ 8 bytes).
    fn is_scalar(&self) -> bool {
        matches!(
            self.kind,
            ValueKind::Unsigned | ValueKind::Signed | ValueKind::Bool | ValueKind::Pointer
        )
    }
}

/// `--filter-skb-expr`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub access: Access,
    pub test: Test,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// `(value & mask) <op> constant`; `mask` is all ones without one. `signed` picks signed
    /// comparisons (the value is then sign-extended to 64 bits first).
    Number {
        mask: u64,
        op: CmpOp,
        value: u64,
        signed: bool,
    },
    /// The `char` array equals (or not) `bytes`, NUL included when it fits.
    String { equal: bool, bytes: Vec<u8> },
}

/// One `--output-skb-metadata` value: its access and where it sits in the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub access: Access,
    /// Index of its first 8-byte word in the event's metadata section.
    pub first_word: u32,
    /// 8-byte words it takes (1, or 2 for arrays of 9 to 16 bytes).
    pub words: u32,
    /// Bytes of the value (≤ 16).
    pub bytes: u32,
}

/// The root a kind of packet's expressions start from.
#[derive(Clone, Copy, Debug)]
pub struct Root {
    /// The name expressions start with.
    pub name: &'static str,
    /// The struct it points to.
    pub struct_name: &'static str,
}

pub const SKB: Root = Root {
    name: "skb",
    struct_name: "sk_buff",
};

/// An XDP program's packet (`--filter-xdp-expr`, `--output-xdp-metadata`).
pub const XDP: Root = Root {
    name: "xdp",
    struct_name: "xdp_buff",
};

/// Resolves a `--filter-skb-expr`.
pub fn filter(btf: &KernelBtf, root: Root, expr: &str) -> Result<Filter, ExprError> {
    let ast = parse_filter(expr)?;
    let access = resolve(btf, root, expr, &ast.access)?;
    let err = |message: String| ExprError::Field {
        expr: expr.to_owned(),
        part: access.text.clone(),
        message,
    };
    let test = match (&access.kind, ast.mask, ast.compare) {
        (ValueKind::Chars, None, Some((op, Literal::String(s)))) => {
            let equal = match op {
                CmpOp::Eq => true,
                CmpOp::Ne => false,
                _ => {
                    return Err(err(format!(
                        "strings compare only with == or != (not {op})"
                    )))
                }
            };
            let len = access.size as usize;
            if s.len() > len {
                return Err(err(format!(
                    "\"{}\" is longer than the {len} bytes of {}, so it can never match",
                    s.escape_ascii(),
                    access.type_name
                )));
            }
            let mut bytes = s.clone();
            if bytes.len() < len {
                bytes.push(0);
            }
            Test::String { equal, bytes }
        }
        (ValueKind::Chars, _, _) => {
            return Err(err(format!(
                "is {}: compare it with a string (== or !=, no mask)",
                access.type_name
            )))
        }
        (_, _, Some((_, Literal::String(_)))) => {
            return Err(err(format!(
                "is {}, not a char array: compare it with a number",
                access.type_name
            )))
        }
        (kind, mask, compare) if access.is_scalar() => {
            let width = access.bitfield.map_or(access.size * 8, |b| b.bits);
            let signed = *kind == ValueKind::Signed && mask.is_none();
            let (op, constant) = match compare {
                Some((op, Literal::Int(v))) => (op, v),
                None => (CmpOp::Ne, 0),
                Some((_, Literal::String(_))) => unreachable!("matched above"),
            };
            let value = fit(constant, width, signed).ok_or_else(|| {
                err(format!(
                    "{constant} does not fit {} ({width} bits{})",
                    access.type_name,
                    if mask.is_some() { ", masked" } else { "" }
                ))
            })?;
            let mask = match mask {
                Some(m) => fit(m, width, false).ok_or_else(|| {
                    err(format!(
                        "mask {m:#x} is wider than {} ({width} bits)",
                        access.type_name
                    ))
                })?,
                None => u64::MAX,
            };
            Test::Number {
                mask,
                op,
                value,
                signed,
            }
        }
        _ => {
            return Err(err(format!(
                "is {}: only numbers, pointers and char arrays (with a string) can be compared",
                access.type_name
            )))
        }
    };
    Ok(Filter { access, test })
}

/// `value` as the 64-bit pattern the generated code compares with, if it fits `width` bits
/// (signed: as a signed number of that width; unsigned: as an unsigned one).
fn fit(value: i128, width: u32, signed: bool) -> Option<u64> {
    let width = width.min(64);
    if signed {
        let min = -(1i128 << (width - 1));
        let max = (1i128 << (width - 1)) - 1;
        (min..=max).contains(&value).then_some(value as i64 as u64)
    } else {
        let max = (1i128 << width) - 1;
        (0..=max).contains(&value).then_some(value as u64)
    }
}

/// Resolves `--output-skb-metadata` expressions and lays out their words.
pub fn metadata(btf: &KernelBtf, root: Root, exprs: &[String]) -> Result<Vec<Metadata>, ExprError> {
    if exprs.len() > MAX_METADATA {
        return Err(ExprError::TooMany {
            kind: root.name,
            count: exprs.len(),
        });
    }
    let mut out = Vec::with_capacity(exprs.len());
    let mut next_word = 0;
    for expr in exprs {
        let ast = parse_access(expr)?;
        let access = resolve(btf, root, expr, &ast)?;
        let bytes = match access.kind {
            ValueKind::Chars | ValueKind::Bytes => access.size.min(MAX_VALUE_BYTES),
            _ => 8,
        };
        let words = bytes.div_ceil(8).max(1);
        out.push(Metadata {
            access,
            first_word: next_word,
            words,
            bytes,
        });
        next_word += words;
    }
    Ok(out)
}

/// The text label of an expression: its last member's name (`mark` for `skb->mark`, `cb` for
/// `skb->cb[1]`), as pwru prints `name=value`.
pub fn label_of(expr: &str) -> &str {
    let mut s = expr.trim_end();
    while let Some(open) = s.strip_suffix(']').and_then(|t| t.rfind('[')) {
        s = s[..open].trim_end();
    }
    let start = s
        .rfind(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .map_or(0, |i| i + 1);
    &s[start..]
}

/// Resolves a parsed access against BTF.
fn resolve(btf: &KernelBtf, root: Root, expr: &str, ast: &AccessExpr) -> Result<Access, ExprError> {
    let field_err = |upto: usize, message: String| ExprError::Field {
        expr: expr.to_owned(),
        part: ast.text_upto(upto),
        message,
    };
    if ast.root != root.name {
        return Err(field_err(
            0,
            format!(
                "expressions start with '{}' (struct {} *)",
                root.name, root.struct_name
            ),
        ));
    }
    let root_id = btf.struct_id(root.struct_name)?;
    // The current position: a value of type `cur` at `offset` from the base (the last pointer
    // loaded), or, at the start, the root pointer itself.
    let mut cur = Cur::Pointer(Some(root_id));
    let mut cur_name = format!("struct {} *", root.struct_name);
    let mut derefs = Vec::new();
    let mut offset: u32 = 0;
    let mut pending_ptr_offset: Option<u32> = None; // the root pointer is the base already
    let mut bitfield = None;
    let mut leaf_size = 8u32;
    let mut label = root.name.to_owned();
    for (i, part) in ast.parts.iter().enumerate() {
        let upto = i + 1;
        if bitfield.is_some() {
            return Err(field_err(i, "is a bitfield: it has no members".into()));
        }
        match part {
            Part::Arrow(name) | Part::Dot(name) => {
                let struct_at = match (&cur, part) {
                    (Cur::Pointer(Some(pointee)), Part::Arrow(_)) => {
                        if let Some(off) = pending_ptr_offset.take() {
                            derefs.push(off);
                        }
                        offset = 0;
                        *pointee
                    }
                    (Cur::Pointer(None), Part::Arrow(_)) => {
                        return Err(field_err(
                            i,
                            format!("is {cur_name}: '->' needs a pointer to a struct"),
                        ))
                    }
                    (Cur::Struct(at), Part::Dot(_)) => *at,
                    (Cur::Struct(_), Part::Arrow(_)) => {
                        return Err(field_err(
                            i,
                            format!("is {cur_name}, not a pointer: use '.'"),
                        ))
                    }
                    (Cur::Pointer(_), Part::Dot(_)) => {
                        return Err(field_err(i, format!("is a pointer ({cur_name}): use '->'")))
                    }
                    _ => return Err(field_err(i, format!("is {cur_name}: it has no members"))),
                };
                let field = btf
                    .field_in(struct_at, &[name.as_str()])
                    .map_err(|e| match e {
                        BtfError::MissingField { ty, .. } => {
                            field_err(upto, format!("struct {ty} has no member '{name}'"))
                        }
                        BtfError::NotAStruct(ty) => field_err(i, format!("{ty} is not a struct")),
                        other => field_err(upto, other.to_string()),
                    })?;
                offset = offset
                    .checked_add(field.offset)
                    .ok_or_else(|| field_err(upto, "offset overflows".into()))?;
                bitfield = field.bitfield;
                leaf_size = field.size;
                label = name.clone();
                (cur, cur_name) = describe(btf, field.type_id, &field.kind);
                if let Some(b) = bitfield {
                    cur_name = format!("{cur_name}:{}", b.bits);
                }
            }
            Part::Index(index) => {
                let (elem, elem_size) = match &cur {
                    Cur::Array {
                        elem,
                        elem_size,
                        len,
                        ..
                    } => {
                        if *len != 0 && *index >= u64::from(*len) {
                            return Err(field_err(
                                upto,
                                format!("index {index} is out of bounds of {cur_name}"),
                            ));
                        }
                        (*elem, *elem_size)
                    }
                    Cur::Pointer(Some(pointee)) => {
                        if let Some(off) = pending_ptr_offset.take() {
                            derefs.push(off);
                        }
                        offset = 0;
                        let size = btf.size_of_type(*pointee).unwrap_or(0);
                        (*pointee, size)
                    }
                    _ => return Err(field_err(i, format!("is {cur_name}: it cannot be indexed"))),
                };
                if elem_size == 0 {
                    return Err(field_err(
                        upto,
                        format!("the elements of {cur_name} have no size"),
                    ));
                }
                let add = index
                    .checked_mul(u64::from(elem_size))
                    .and_then(|b| u32::try_from(b).ok())
                    .and_then(|b| offset.checked_add(b))
                    .ok_or_else(|| field_err(upto, "offset overflows".into()))?;
                offset = add;
                leaf_size = elem_size;
                let kind = btf.kind_of_type(elem).unwrap_or(FieldKind::Other);
                (cur, cur_name) = describe(btf, elem, &kind);
            }
        }
        if let Cur::Pointer(_) = cur {
            // The next '->' or '[]' loads it from here.
            pending_ptr_offset = Some(offset);
        }
        if derefs.len() > MAX_DEREFS {
            return Err(field_err(
                upto,
                format!("follows more than {MAX_DEREFS} pointers"),
            ));
        }
    }
    if ast.parts.is_empty() {
        return Err(field_err(
            0,
            format!("name a member of struct {}", root.struct_name),
        ));
    }
    let kind = match &cur {
        Cur::Int { signed: true, .. } => ValueKind::Signed,
        Cur::Int { bool: true, .. } => ValueKind::Bool,
        Cur::Int { .. } => ValueKind::Unsigned,
        Cur::Pointer(_) => ValueKind::Pointer,
        Cur::Array { string: true, .. } => ValueKind::Chars,
        Cur::Array { .. } | Cur::Struct(_) => ValueKind::Bytes,
        Cur::Other => {
            return Err(field_err(
                ast.parts.len(),
                format!("is {cur_name}, which cannot be read as a value"),
            ))
        }
    };
    if matches!(
        kind,
        ValueKind::Unsigned | ValueKind::Signed | ValueKind::Bool | ValueKind::Pointer
    ) && leaf_size > 8
    {
        return Err(field_err(
            ast.parts.len(),
            format!("is {cur_name}, wider than 8 bytes"),
        ));
    }
    if leaf_size == 0 {
        return Err(field_err(
            ast.parts.len(),
            format!("is {cur_name}, which has no size"),
        ));
    }
    let text = ast.text_upto(ast.parts.len());
    debug_assert_eq!(label_of(&text), label);
    Ok(Access {
        text,
        label,
        derefs,
        offset,
        size: leaf_size,
        bitfield,
        kind,
        type_name: cur_name,
    })
}

/// What a position in the chain is.
#[derive(Debug)]
enum Cur {
    Int {
        signed: bool,
        bool: bool,
    },
    /// `None`: `void *` (or a pointer to something without BTF).
    Pointer(Option<TypeId>),
    Array {
        elem: TypeId,
        elem_size: u32,
        len: u32,
        string: bool,
    },
    Struct(TypeId),
    Other,
}

fn describe(btf: &KernelBtf, at: TypeId, kind: &FieldKind) -> (Cur, String) {
    let named = |prefix: &str, name: &Option<String>| match name {
        Some(n) => format!("{prefix} {n}"),
        None => format!("an anonymous {prefix}"),
    };
    match kind {
        FieldKind::Int {
            size, signed, bool, ..
        } => (
            Cur::Int {
                signed: *signed,
                bool: *bool,
            },
            btf.type_name(at).unwrap_or_else(|| {
                format!(
                    "{}{}-bit int",
                    if *signed { "" } else { "unsigned " },
                    size * 8
                )
            }),
        ),
        FieldKind::Enum { signed, .. } => (
            Cur::Int {
                signed: *signed,
                bool: false,
            },
            btf.type_name(at)
                .map_or_else(|| "an enum".to_owned(), |n| format!("enum {n}")),
        ),
        FieldKind::Ptr {
            pointee,
            pointee_name,
        } => {
            let name = match (pointee, pointee_name) {
                (None, _) => "void *".to_owned(),
                (Some(p), Some(n)) => match btf.kind_of_type(*p) {
                    Some(FieldKind::Struct { .. }) => format!("struct {n} *"),
                    Some(FieldKind::Union { .. }) => format!("union {n} *"),
                    _ => format!("{n} *"),
                },
                (Some(_), None) => "a pointer".to_owned(),
            };
            (Cur::Pointer(*pointee), name)
        }
        FieldKind::Array {
            elem,
            elem_size,
            len,
            string,
        } => {
            let elem_name = btf.type_name(*elem).unwrap_or_else(|| "element".to_owned());
            (
                Cur::Array {
                    elem: *elem,
                    elem_size: *elem_size,
                    len: *len,
                    string: *string,
                },
                format!("{elem_name}[{len}]"),
            )
        }
        FieldKind::Struct { name, .. } => (Cur::Struct(at), named("struct", name)),
        FieldKind::Union { name, .. } => (Cur::Struct(at), named("union", name)),
        FieldKind::Other => (Cur::Other, "a type without a value".to_owned()),
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

#[cfg(test)]
mod tests;
