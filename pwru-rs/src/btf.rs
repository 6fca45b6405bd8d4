//! What pwru-rs needs from the kernel's BTF (BPF Type Format).
//!
//! [`KernelBtf`] wraps a parsed vmlinux BTF (by default [`VMLINUX_BTF`], or a file given with
//! `--kernel-btf`), optionally with kernel modules' split BTF on top ([`KernelBtf::from_files`];
//! every query below covers their types too), and answers the questions the tracer asks:
//!
//! - [`KernelBtf::skb_functions`]: which kernel functions take a `struct sk_buff *`, and in which
//!   argument (the kprobe backends attach one program per position),
//! - [`KernelBtf::skb_tracepoints`]: which raw tracepoints carry an skb (and a drop reason),
//! - [`KernelBtf::offsets`]: the byte offsets of the struct fields the eBPF programs read
//!   (Rust eBPF cannot emit CO-RE relocations, so they are resolved here),
//! - [`KernelBtf::drop_reasons`]: the names of `enum skb_drop_reason` values,
//! - [`KernelBtf::field`] / [`KernelBtf::field_in`]: any struct/union member path, described
//!   enough (offset, size, bitfield, type) to generate code that loads it.
//!
//! Parsing uses btf-rs's mmap backend, which only indexes the type section; a full parse of
//! vmlinux with its cache backend takes several times longer (~60-100 ms for ~126k types).

use std::{
    collections::HashMap,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use btf_rs::{Backend, Btf, BtfType, FuncProto, Member, Struct, Type};
use pwru_rs_common::Offsets;

#[cfg(test)]
mod tests;

/// Where the running kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// kprobes read at most this many arguments from registers (pwru-rs has one program per position).
pub const MAX_SKB_ARGS: u8 = pwru_rs_common::contract::MAX_SKB_ARGS as u8;

/// Prefix of the typedefs the kernel emits for every tracepoint:
/// `typedef void (*btf_trace_<name>)(void *__data, <TP_PROTO args>)`.
const TRACE_TYPEDEF_PREFIX: &str = "btf_trace_";

/// Bound on modifier chains (`const volatile typedef ...`) so corrupt BTF with a cycle cannot hang us.
const MAX_MODIFIER_DEPTH: usize = 32;

/// Bound on anonymous struct/union nesting, for the same reason.
const MAX_ANON_DEPTH: usize = 16;

/// Errors from loading kernel BTF or resolving what pwru-rs needs from it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid BTF data")]
    Parse(#[source] btf_rs::Error),
    /// A struct pwru-rs reads is not in the BTF.
    #[error("type `{0}` not found in kernel BTF")]
    MissingType(String),
    /// `field` is the dotted path from `struct ty`, e.g. `ty: "sock", field: "__sk_common.skc_net"`.
    #[error("field `{field}` not found in `struct {ty}`")]
    MissingField { ty: String, field: String },
    /// The field has no byte offset (the eBPF programs only read whole bytes), or its bits
    /// do not fit in one 8-byte load.
    #[error("field `{field}` of `struct {ty}` is a bitfield")]
    Bitfield { ty: String, field: String },
    /// A field path starts from a type that is not a struct or union.
    #[error("type `{0}` is not a struct or union")]
    NotAStruct(String),
}

/// A kernel function taking a `struct sk_buff *`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbFunction {
    pub name: String,
    /// Zero-based index of the first `struct sk_buff *` parameter, below [`MAX_SKB_ARGS`].
    pub skb_arg: u8,
}

/// A raw tracepoint carrying a `struct sk_buff *`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbTracepoint {
    /// Tracepoint name, e.g. `kfree_skb` (without the `btf_trace_` prefix).
    pub name: String,
    /// Zero-based index of the first `struct sk_buff *` among the tracepoint's arguments
    /// (the raw tracepoint context, i.e. not counting the hidden `void *__data`).
    pub skb_arg: u8,
    /// Zero-based index of the first `enum skb_drop_reason` argument, if any.
    pub reason_arg: Option<u8>,
}

/// Names of `enum skb_drop_reason` values, e.g. `3 -> "SKB_DROP_REASON_NO_SOCKET"`.
///
/// Empty when the kernel has no such enum (before 5.17).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropReasons {
    /// Sorted by value; for aliased values the first name in the enum wins.
    by_value: Vec<(u32, String)>,
}

impl DropReasons {
    /// The enumerator name of `value`, if the enum has one.
    pub fn name(&self, value: u32) -> Option<&str> {
        self.by_value
            .binary_search_by_key(&value, |(v, _)| *v)
            .ok()
            .map(|i| self.by_value[i].1.as_str())
    }

    pub fn len(&self) -> usize {
        self.by_value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_value.is_empty()
    }

    /// `(value, name)` pairs sorted by value.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.by_value.iter().map(|(v, n)| (*v, n.as_str()))
    }
}

impl FromIterator<(u32, String)> for DropReasons {
    /// Keeps the first name given for a value, as the kernel's enum order does.
    fn from_iter<I: IntoIterator<Item = (u32, String)>>(pairs: I) -> Self {
        let mut by_value: Vec<(u32, String)> = pairs.into_iter().collect();
        by_value.sort_by_key(|(v, _)| *v); // stable: first name per value stays first
        by_value.dedup_by_key(|(v, _)| *v);
        Self { by_value }
    }
}

const SK_BUFF: &str = "sk_buff";
const SKB_DROP_REASON: &str = "skb_drop_reason";

/// Structs whose fields [`KernelBtf::offsets`] reads. Their ids are collected in the indexing
/// pass so that start-up needs no name index; other names use one built on first use.
const STRUCTS: [&str; 4] = [SK_BUFF, "net_device", "sock", "net"];

/// A type in one of the loaded BTF objects. Object 0 is vmlinux, 1.. are the modules in the
/// order given; vmlinux ids (which every module's split BTF shares) always carry object 0, so
/// two `TypeId`s are equal exactly when they name the same type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId {
    pub obj: u16,
    pub id: u32,
}

/// vmlinux BTF ids for direct reads: [`KernelBtf::rdonly_cast`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdonlyCast {
    /// The kfunc `bpf_rdonly_cast`.
    pub func_id: u32,
    /// The struct the programs cast addresses to.
    pub struct_id: u32,
}

/// A struct/union member found by [`KernelBtf::field`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Byte offset from the start of the root type: of the field, or for a bitfield of the
    /// first byte holding its bits.
    pub offset: u32,
    /// Bytes to read at `offset`: the type's size, or for a bitfield the smallest of 1, 2, 4, 8
    /// bytes holding all its bits.
    pub size: u32,
    pub bitfield: Option<Bitfield>,
    /// The member's type with modifiers and typedefs stripped.
    pub type_id: TypeId,
    pub kind: FieldKind,
}

/// Where a bitfield's bits are in the `size` bytes loaded at [`Field::offset`] (as a
/// little-endian integer): `(value >> shift) & ((1 << bits) - 1)`, then sign-extended from
/// `bits` if the type is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitfield {
    pub shift: u32,
    pub bits: u32,
}

/// What a field's type is, as much as generated code needs to load and compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Int {
        size: u32,
        signed: bool,
        /// `char` (arrays of them are strings) or `bool` per the BTF encoding.
        char: bool,
        bool: bool,
    },
    Enum {
        size: u32,
        signed: bool,
    },
    /// Resolve fields of the pointee with [`KernelBtf::field_in`]; `None` for `void *`.
    Ptr {
        pointee: Option<TypeId>,
        /// The pointee's name, when it is a named type (`net_device` for `skb->dev`).
        pointee_name: Option<String>,
    },
    Array {
        elem: TypeId,
        elem_size: u32,
        len: u32,
        /// An array of `char`-sized integers (`net_device.name`).
        string: bool,
    },
    Struct {
        size: u32,
        name: Option<String>,
    },
    Union {
        size: u32,
        name: Option<String>,
    },
    /// Float, function pointer target, ...: nothing generated code compares.
    Other,
}

/// Parsed kernel BTF (vmlinux, and optionally modules' split BTF on top of it) plus an index of
/// the types pwru-rs queries.
///
/// ```no_run
/// use pwru_rs::btf::KernelBtf;
///
/// let btf = KernelBtf::load(None)?; // /sys/kernel/btf/vmlinux
/// for f in btf.skb_functions() {
///     println!("{}: skb is argument {} (from 0)", f.name, f.skb_arg);
/// }
/// let offsets = btf.offsets()?; // pwru_rs_common::Offsets, for the eBPF programs
/// let dev = btf.field("sk_buff", &["dev"])?; // a pointer: follow it with field_in
/// # Ok::<(), pwru_rs::btf::BtfError>(())
/// ```
pub struct KernelBtf {
    /// `objs[0]` is vmlinux; the others are split BTF on top of it (resolving vmlinux ids too).
    objs: Vec<Btf>,
    /// Module names, for `objs[1..]`.
    modules: Vec<String>,
    /// Last vmlinux type id.
    base_last: u32,
    /// All `BTF_KIND_FUNC` types, in BTF order.
    funcs: Vec<TypeId>,
    /// `(tracepoint name, typedef)` of every `btf_trace_*` typedef, in BTF order.
    trace_typedefs: Vec<(String, TypeId)>,
    /// The structs named `STRUCTS[i]`, in BTF order.
    structs: [Vec<TypeId>; STRUCTS.len()],
    /// What stands for `struct sk_buff`: the struct and any forward declaration of it.
    skb_ids: Vec<TypeId>,
    /// `enum skb_drop_reason`.
    reason_ids: Vec<TypeId>,
    /// Named structs and unions by name, built on the first lookup of a name not in `STRUCTS`.
    by_name: OnceLock<HashMap<String, Vec<TypeId>>>,
}

impl KernelBtf {
    /// Loads `path`, or the running kernel's BTF ([`VMLINUX_BTF`]) when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, BtfError> {
        Self::from_file(path.unwrap_or_else(|| Path::new(VMLINUX_BTF)))
    }

    /// Loads a raw BTF file (the format of `/sys/kernel/btf/vmlinux`, not an ELF file).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        Self::from_files(path, &[])
    }

    /// Loads vmlinux BTF and the split BTF of kernel modules on top of it (the files of
    /// `/sys/kernel/btf/<module>`, named after the file).
    pub fn from_files(vmlinux: &Path, modules: &[PathBuf]) -> Result<Self, BtfError> {
        let base = vmlinux_btf(vmlinux)?;
        let mut split = Vec::with_capacity(modules.len());
        for path in modules {
            let btf = Btf::from_split_file(path, &base).map_err(|e| match e {
                btf_rs::Error::IO(source) => BtfError::Read {
                    path: path.clone(),
                    source,
                },
                other => BtfError::Parse(other),
            })?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            split.push((name, btf));
        }
        Self::from_btfs(base, split)
    }

    /// Parses raw BTF from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BtfError> {
        Self::from_bytes_with_modules(bytes, &[])
    }

    /// Parses vmlinux BTF and `(module name, split BTF)` pairs from memory.
    pub fn from_bytes_with_modules(
        vmlinux: &[u8],
        modules: &[(&str, &[u8])],
    ) -> Result<Self, BtfError> {
        let base = match btf_via_memfd(vmlinux) {
            Ok(btf) => btf,
            Err(e) => {
                log::debug!("cannot use the mmap backend ({e}), parsing BTF in memory");
                Btf::from_bytes(vmlinux).map_err(BtfError::Parse)?
            }
        };
        let split = modules
            .iter()
            .map(|(name, bytes)| {
                Btf::from_split_bytes(bytes, &base)
                    .map(|btf| ((*name).to_owned(), btf))
                    .map_err(BtfError::Parse)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_btfs(base, split)
    }

    /// The vmlinux btf-rs object, for lookups this module does not cover.
    pub fn btf(&self) -> &Btf {
        &self.objs[0]
    }

    /// The loaded modules' names; `TypeId::obj` `i + 1` is `modules()[i]`.
    pub fn modules(&self) -> &[String] {
        &self.modules
    }

    /// Indexes the types we query in a single pass over every object.
    fn from_btfs(base: Btf, modules: Vec<(String, Btf)>) -> Result<Self, BtfError> {
        let (_, base_last) = base.base().type_id_range();
        let (names, split): (Vec<String>, Vec<Btf>) = modules.into_iter().unzip();
        let mut objs = vec![base];
        objs.extend(split);
        let mut this = Self {
            objs,
            modules: names,
            base_last,
            funcs: Vec::new(),
            trace_typedefs: Vec::new(),
            structs: Default::default(),
            skb_ids: Vec::new(),
            reason_ids: Vec::new(),
            by_name: OnceLock::new(),
        };
        for obj in 0..this.objs.len() {
            let btf = &this.objs[obj];
            let (first, last) = match btf.split() {
                Some(split) => split.type_id_range(),
                None => (1, base_last),
            };
            // Module counts are far below u16::MAX.
            let obj = obj as u16;
            for id in first..=last {
                let ty = btf.resolve_type_by_id(id).map_err(BtfError::Parse)?;
                let at = TypeId { obj, id };
                let bt = match &ty {
                    // Function names are only resolved for matches, later.
                    Type::Func(_) => {
                        this.funcs.push(at);
                        continue;
                    }
                    Type::Typedef(t) => t as &dyn BtfType,
                    Type::Struct(s) => s,
                    Type::Fwd(f) => f,
                    Type::Enum(e) => e,
                    Type::Enum64(e) => e,
                    _ => continue,
                };
                if bt.get_name_offset().unwrap_or(0) == 0 {
                    continue; // anonymous
                }
                let name = btf.resolve_name(bt).map_err(BtfError::Parse)?;
                match &ty {
                    Type::Typedef(_) => {
                        if let Some(tp) = name.strip_prefix(TRACE_TYPEDEF_PREFIX) {
                            this.trace_typedefs.push((tp.to_owned(), at));
                        }
                    }
                    Type::Struct(_) => {
                        if name == SK_BUFF {
                            this.skb_ids.push(at);
                        }
                        if let Some(i) = STRUCTS.iter().position(|s| *s == name) {
                            this.structs[i].push(at);
                        }
                    }
                    // A forward declaration still means sk_buff to a function taking a pointer.
                    Type::Fwd(f) if f.is_struct() && name == SK_BUFF => this.skb_ids.push(at),
                    Type::Enum(_) | Type::Enum64(_) if name == SKB_DROP_REASON => {
                        this.reason_ids.push(at)
                    }
                    _ => {}
                }
            }
        }
        Ok(this)
    }

    /// Every kernel function (`BTF_KIND_FUNC`, vmlinux and loaded modules) with a
    /// `struct sk_buff *` parameter (possibly `const`/`volatile`/typedef'd) among its first
    /// [`MAX_SKB_ARGS`], sorted by name.
    ///
    /// `skb_arg` is the zero-based index of the *first* skb parameter. (pwru stops counting after
    /// an skb parameter, so for `f(skb, int, skb)` it records the second argument.) Functions
    /// whose prototype is missing or malformed are skipped. When several functions share a name
    /// (static functions of different files), the first one in BTF order is reported.
    pub fn skb_functions(&self) -> Vec<SkbFunction> {
        let mut memo = SkbPtrMemo::new(self);
        let mut out = Vec::new();
        for &at in &self.funcs {
            let func = match self.ty(at) {
                Some(Type::Func(func)) => func,
                _ => continue,
            };
            let Some(proto) = self.func_proto(at, &func) else {
                log::debug!("BTF func {at:?} has no valid prototype, skipped");
                continue;
            };
            let Some(idx) = proto
                .parameters
                .iter()
                .take(MAX_SKB_ARGS.into())
                .position(|p| self.param_is_skb_ptr(at, p, &mut memo))
            else {
                continue;
            };
            match self.objs[usize::from(at.obj)].resolve_name(&func) {
                Ok(name) => out.push(SkbFunction {
                    name,
                    // idx < MAX_SKB_ARGS, so this fits.
                    skb_arg: idx as u8,
                }),
                Err(e) => log::debug!("BTF func {at:?} has no name ({e}), skipped"),
            }
        }
        // Stable sort: among equal names the first in BTF order stays first and is kept.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|b, a| a.name == b.name);
        out
    }

    /// The first function called `name` (vmlinux first), with its number of parameters.
    pub fn function(&self, name: &str) -> Option<(TypeId, usize)> {
        self.funcs.iter().find_map(|&at| {
            let Some(Type::Func(func)) = self.ty(at) else {
                return None;
            };
            if self.objs[usize::from(at.obj)].resolve_name(&func).ok()? != name {
                return None;
            }
            Some((at, self.func_proto(at, &func)?.parameters.len()))
        })
    }

    /// Raw tracepoints carrying a `struct sk_buff *`, sorted by name.
    ///
    /// Found through the `btf_trace_<name>` typedefs (typedef -> pointer -> function prototype
    /// whose first parameter is the `void *` context and the rest the tracepoint's arguments).
    pub fn skb_tracepoints(&self) -> Vec<SkbTracepoint> {
        let mut memo = SkbPtrMemo::new(self);
        let mut out = Vec::new();
        for (name, at) in &self.trace_typedefs {
            let Some(proto) = self.trace_proto(*at) else {
                log::debug!("BTF typedef btf_trace_{name} is not a tracepoint prototype, skipped");
                continue;
            };
            // trace_proto checked the context parameter is there.
            let args = proto.parameters.get(1..).unwrap_or_default();
            let Some(skb_arg) = args
                .iter()
                .position(|p| self.param_is_skb_ptr(*at, p, &mut memo))
            else {
                continue;
            };
            let reason_arg = args.iter().position(|p| self.param_is_drop_reason(*at, p));
            // Tracepoints have at most a dozen arguments; anything else is corrupt BTF.
            let (Ok(skb_arg), Ok(reason_arg)) = (
                u8::try_from(skb_arg),
                reason_arg.map(u8::try_from).transpose(),
            ) else {
                continue;
            };
            out.push(SkbTracepoint {
                name: name.clone(),
                skb_arg,
                reason_arg,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|b, a| a.name == b.name);
        out
    }

    /// Byte offsets of the fields the eBPF programs read.
    ///
    /// Fields nested in anonymous structs/unions (e.g. `sk_buff.dev`, `sk_buff.mark`) are found
    /// and their offsets summed; paths through named members follow the member's type:
    /// `dev_net` is `net_device.nd_net.net`, `sk_net` is `sock.__sk_common.skc_net.net` and
    /// `net_inum` is `net.ns.inum`. Fails on the first missing type or field, or on a bitfield.
    pub fn offsets(&self) -> Result<Offsets, BtfError> {
        let skb = |field: &str| self.field_offset("sk_buff", &[field]);
        let dev = |field: &str| self.field_offset("net_device", &[field]);
        Ok(Offsets {
            skb_len: skb("len")?,
            skb_mark: skb("mark")?,
            skb_protocol: skb("protocol")?,
            skb_dev: skb("dev")?,
            skb_sk: skb("sk")?,
            skb_head: skb("head")?,
            skb_data: skb("data")?,
            skb_tail: skb("tail")?,
            skb_end: skb("end")?,
            skb_network_header: skb("network_header")?,
            skb_transport_header: skb("transport_header")?,
            skb_mac_header: skb("mac_header")?,
            skb_mac_len: skb("mac_len")?,
            dev_name: dev("name")?,
            dev_ifindex: dev("ifindex")?,
            dev_mtu: dev("mtu")?,
            dev_net: self.field_offset("net_device", &["nd_net", "net"])?,
            sk_net: self.field_offset("sock", &["__sk_common", "skc_net", "net"])?,
            net_inum: self.field_offset("net", &["ns", "inum"])?,
            skb_cb: skb("cb")?,
            ..Offsets::default()
        })
    }

    /// [`offsets`](Self::offsets) with those of `struct xdp_buff` and `struct xdp_rxq_info`
    /// filled in, for `--filter-trace-xdp`.
    pub fn with_xdp_offsets(&self, offsets: Offsets) -> Result<Offsets, BtfError> {
        let xdp = |field: &str| self.field_offset("xdp_buff", &[field]);
        Ok(Offsets {
            xdp_data: xdp("data")?,
            xdp_data_end: xdp("data_end")?,
            xdp_data_hard_start: xdp("data_hard_start")?,
            xdp_rxq: xdp("rxq")?,
            rxq_dev: self.field_offset("xdp_rxq_info", &["dev"])?,
            rxq_queue_index: self.field_offset("xdp_rxq_info", &["queue_index"])?,
            ..offsets
        })
    }

    /// [`offsets`](Self::offsets) with those of `struct bpf_map` filled in, for
    /// `--output-bpfmap`.
    pub fn with_bpf_map_offsets(&self, offsets: Offsets) -> Result<Offsets, BtfError> {
        let map = |field: &str| self.field_offset("bpf_map", &[field]);
        Ok(Offsets {
            bpf_map_id: map("id")?,
            bpf_map_key_size: map("key_size")?,
            bpf_map_value_size: map("value_size")?,
            bpf_map_name: map("name")?,
            htab_elem_key: self.field_offset("htab_elem", &["key"]).unwrap_or(0),
            ..offsets
        })
    }

    /// [`offsets`](Self::offsets) with those `--output-netfilter` reads of `struct nft_pktinfo`,
    /// `nf_hook_state`, `nft_chain`, `nft_table` and `nft_base_chain` filled in (these are in
    /// the nf_tables module's BTF when it is a module: `self` must have it).
    pub fn with_netfilter_offsets(&self, offsets: Offsets) -> Result<Offsets, BtfError> {
        let family = self.field("nft_table", &["family"])?;
        let (shift, mask) = match family.bitfield {
            Some(b) => (b.shift, (1u64 << b.bits) as u32 - 1),
            None => (0, ((1u64 << (8 * family.size.min(4))) - 1) as u32),
        };
        let chain_in_base = self.field_offset("nft_base_chain", &["chain"])?;
        let priority = self.field_offset("nft_base_chain", &["ops", "priority"])?;
        Ok(Offsets {
            nft_pktinfo_skb: self.field_offset("nft_pktinfo", &["skb"])?,
            nft_pktinfo_state: self.field_offset("nft_pktinfo", &["state"])?,
            hook_state_hook: self.field_offset("nf_hook_state", &["hook"])?,
            hook_state_pf: self.field_offset("nf_hook_state", &["pf"])?,
            nft_chain_name: self.field_offset("nft_chain", &["name"])?,
            nft_chain_table: self.field_offset("nft_chain", &["table"])?,
            nft_table_name: self.field_offset("nft_table", &["name"])?,
            nft_table_family: family.offset,
            nft_table_family_shift: shift,
            nft_table_family_mask: mask,
            nft_chain_priority: priority.wrapping_sub(chain_in_base),
            ..offsets
        })
    }

    /// The name of function `type_id` in a BPF program's own BTF (`bytes`, not split): the
    /// program's full name, where the kernel keeps only 15 bytes of it.
    pub fn program_function_name(bytes: &[u8], type_id: u32) -> Option<String> {
        let btf = Btf::from_bytes(bytes).ok()?;
        match btf.resolve_type_by_id(type_id).ok()? {
            Type::Func(func) => btf.resolve_name(&func).ok(),
            _ => None,
        }
    }

    /// What direct reads need (see `pwru_rs_common::Config::cast_btf_id`): the vmlinux BTF ids
    /// of the kfunc `bpf_rdonly_cast` (Linux 6.2+) and of a struct whose first member is an
    /// 8-byte integer at offset 0 (`struct timespec64`), so that a load of 1 to 8 bytes at the
    /// cast pointer is a load within that member. `None` where either is missing.
    pub fn rdonly_cast(&self) -> Option<RdonlyCast> {
        let (func, _) = self.function("bpf_rdonly_cast")?;
        let target = self.struct_id("timespec64").ok()?;
        let first = self.field_in(target, &["tv_sec"]).ok()?;
        let scalar = matches!(first.kind, FieldKind::Int { size: 8, .. }) && first.offset == 0;
        (func.obj == 0 && target.obj == 0 && scalar).then_some(RdonlyCast {
            func_id: func.id,
            struct_id: target.id,
        })
    }

    /// Whether the kernel knows BPF helper `name` (`enum bpf_func_id` has `BPF_FUNC_<name>`).
    pub fn has_bpf_helper(&self, name: &str) -> bool {
        let wanted = format!("BPF_FUNC_{name}");
        let Ok(id) = self.enum_id("bpf_func_id") else {
            return false;
        };
        let btf = &self.objs[usize::from(id.obj)];
        match self.ty(id) {
            Some(Type::Enum(e)) => e
                .members
                .iter()
                .any(|m| btf.resolve_name(m).is_ok_and(|n| n == wanted)),
            _ => false,
        }
    }

    /// Names of the `enum skb_drop_reason` values; empty if the enum is absent.
    pub fn drop_reasons(&self) -> DropReasons {
        let mut by_value = Vec::new();
        // The first definition with members wins (a kernel has exactly one).
        for &at in &self.reason_ids {
            let btf = &self.objs[usize::from(at.obj)];
            match self.ty(at) {
                Some(Type::Enum(e)) => {
                    for m in &e.members {
                        if let Ok(name) = btf.resolve_name(m) {
                            by_value.push((m.val(), name));
                        }
                    }
                }
                Some(Type::Enum64(e)) => {
                    for m in &e.members {
                        if let (Ok(v), Ok(name)) = (u32::try_from(m.val()), btf.resolve_name(m)) {
                            by_value.push((v, name));
                        }
                    }
                }
                _ => {}
            }
            if !by_value.is_empty() {
                break;
            }
        }
        by_value.sort_by_key(|(v, _)| *v);
        by_value.dedup_by_key(|(v, _)| *v);
        DropReasons { by_value }
    }

    /// The first struct or union called `name`, vmlinux first, then the modules in order.
    pub fn struct_id(&self, name: &str) -> Result<TypeId, BtfError> {
        let ids = match STRUCTS.iter().position(|s| *s == name) {
            Some(i) => &self.structs[i],
            None => self
                .by_name
                .get_or_init(|| self.struct_names())
                .get(name)
                .map_or(&[][..], Vec::as_slice),
        };
        ids.first()
            .copied()
            .ok_or_else(|| BtfError::MissingType(name.to_owned()))
    }

    /// Member `path` of `struct root` (or union): each name is looked up in the previous
    /// member's type, through anonymous structs/unions (`["dev"]`, `["__sk_common",
    /// "skc_family"]`). Pointers are not followed: for `skb->dev->ifindex` resolve
    /// `["dev"]`, then `["ifindex"]` in its [`FieldKind::Ptr`] pointee with [`Self::field_in`].
    pub fn field(&self, root: &str, path: &[&str]) -> Result<Field, BtfError> {
        let id = self.struct_id(root)?;
        self.field_from(id, root, path)
    }

    /// [`Self::field`] from a type id (e.g. a pointee). Modifiers, typedefs and a forward
    /// declaration (resolved by name) in front of the struct are fine.
    pub fn field_in(&self, root: TypeId, path: &[&str]) -> Result<Field, BtfError> {
        let name = self
            .type_name(root)
            .unwrap_or_else(|| format!("[{}:{}]", root.obj, root.id));
        self.field_from(root, &name, path)
    }

    /// What type `at` is (through modifiers and typedefs), as [`Field::kind`] says of members.
    pub fn kind_of_type(&self, at: TypeId) -> Option<FieldKind> {
        let (at, ty) = self.peel(at)?;
        Some(self.kind(at, &ty))
    }

    /// Size in bytes of type `at` (through modifiers and typedefs), if it has one.
    pub fn size_of_type(&self, at: TypeId) -> Option<u32> {
        let (at, ty) = self.peel(at)?;
        self.size_of(at, &ty)
    }

    /// The name of a type, if it has one (modifiers and typedefs are not stripped).
    pub fn type_name(&self, at: TypeId) -> Option<String> {
        let ty = self.ty(at)?;
        let bt = ty.as_btf_type()?;
        if bt.get_name_offset().unwrap_or(0) == 0 {
            return None;
        }
        self.objs[usize::from(at.obj)].resolve_name(bt).ok()
    }

    fn field_from(&self, root: TypeId, root_name: &str, path: &[&str]) -> Result<Field, BtfError> {
        let error = |upto: usize| BtfError::MissingField {
            ty: root_name.to_owned(),
            field: path[..upto].join("."),
        };
        let Some((mut at, mut container)) = self.container(root) else {
            return Err(BtfError::NotAStruct(root_name.to_owned()));
        };
        if path.is_empty() {
            return Err(error(0));
        }
        let mut bits: u64 = 0;
        for (i, name) in path.iter().enumerate() {
            let (member, member_bits) = self
                .find_member(at, &container, name, 0)?
                .ok_or_else(|| error(i + 1))?;
            bits += member_bits;
            let member_id = member.get_type_id().ok_or_else(|| error(i + 1))?;
            let (ty_at, ty) = self
                .peel(self.at(at.obj, member_id))
                .ok_or_else(|| error(i + 1))?;
            if i + 1 == path.len() {
                let bitfield_bits = member.bitfield_size().unwrap_or(0);
                return self.describe(root_name, path, bits, bitfield_bits, ty_at, &ty);
            }
            // The next name is looked up in this member's type, which must be a struct/union.
            (at, container) = match ty {
                Type::Struct(s) | Type::Union(s) => (ty_at, s),
                _ => return Err(error(i + 2)),
            };
        }
        unreachable!("the loop returns at the last path element")
    }

    fn describe(
        &self,
        root_name: &str,
        path: &[&str],
        bits: u64,
        bitfield_bits: u32,
        at: TypeId,
        ty: &Type,
    ) -> Result<Field, BtfError> {
        let kind = self.kind(at, ty);
        let type_size = self.size_of(at, ty).unwrap_or(0);
        let too_far = || BtfError::Bitfield {
            ty: root_name.to_owned(),
            field: path.join("."),
        };
        let offset = u32::try_from(bits / 8).map_err(|_| too_far())?;
        let shift = (bits % 8) as u32;
        // A member that is not byte aligned is read like a bitfield of its whole width.
        let width = match (bitfield_bits, shift) {
            (0, 0) => None,
            (0, _) => Some(type_size.saturating_mul(8)),
            (w, _) => Some(w),
        };
        let (size, bitfield) = match width {
            None => (type_size, None),
            Some(w) => {
                let size = [1, 2, 4, 8]
                    .into_iter()
                    .find(|bytes| shift + w <= bytes * 8)
                    .ok_or_else(too_far)?;
                (size, Some(Bitfield { shift, bits: w }))
            }
        };
        Ok(Field {
            offset,
            size,
            bitfield,
            type_id: at,
            kind,
        })
    }

    fn kind(&self, at: TypeId, ty: &Type) -> FieldKind {
        let name = |bt: &dyn BtfType| {
            (bt.get_name_offset().unwrap_or(0) != 0)
                .then(|| self.objs[usize::from(at.obj)].resolve_name(bt).ok())
                .flatten()
        };
        match ty {
            Type::Int(i) => FieldKind::Int {
                size: i.size() as u32,
                signed: i.is_signed(),
                char: i.is_char(),
                bool: i.is_bool(),
            },
            Type::Enum(e) => FieldKind::Enum {
                size: e.size() as u32,
                signed: e.is_signed(),
            },
            Type::Enum64(e) => FieldKind::Enum {
                size: e.size() as u32,
                signed: e.is_signed(),
            },
            Type::Ptr(p) => {
                let pointee = p
                    .get_type_id()
                    .filter(|&id| id != 0)
                    .and_then(|id| self.peel(self.at(at.obj, id)));
                match pointee {
                    Some((_, Type::Void)) | None => FieldKind::Ptr {
                        pointee: None,
                        pointee_name: None,
                    },
                    Some((id, _)) => FieldKind::Ptr {
                        pointee: Some(id),
                        pointee_name: self.type_name(id),
                    },
                }
            }
            Type::Array(a) => {
                let elem = self.at(at.obj, a.get_type_id().unwrap_or(0));
                let (elem, elem_ty) = self.peel(elem).unwrap_or((elem, Type::Void));
                let elem_size = self.size_of(elem, &elem_ty).unwrap_or(0);
                FieldKind::Array {
                    elem,
                    elem_size,
                    len: a.len() as u32,
                    string: matches!(&elem_ty, Type::Int(i) if i.size() == 1),
                }
            }
            Type::Struct(s) => FieldKind::Struct {
                size: s.size() as u32,
                name: name(s),
            },
            Type::Union(s) => FieldKind::Union {
                size: s.size() as u32,
                name: name(s),
            },
            _ => FieldKind::Other,
        }
    }

    /// Size in bytes of a peeled type, if it has one.
    fn size_of(&self, at: TypeId, ty: &Type) -> Option<u32> {
        let size = match ty {
            Type::Int(i) => i.size(),
            Type::Enum(e) => e.size(),
            Type::Enum64(e) => e.size(),
            Type::Float(f) => f.size(),
            Type::Struct(s) | Type::Union(s) => s.size(),
            Type::Ptr(_) => 8,
            Type::Array(a) => {
                let (elem, elem_ty) = self.peel(self.at(at.obj, a.get_type_id()?))?;
                return self.size_of(elem, &elem_ty)?.checked_mul(a.len() as u32);
            }
            _ => return None,
        };
        u32::try_from(size).ok()
    }

    /// Byte offset of `path` from the start of `struct ty`; refuses bitfields.
    fn field_offset(&self, ty: &str, path: &[&str]) -> Result<u32, BtfError> {
        let field = self.field(ty, path)?;
        if field.bitfield.is_some() {
            return Err(BtfError::Bitfield {
                ty: ty.to_owned(),
                field: path.join("."),
            });
        }
        Ok(field.offset)
    }

    /// Finds member `name` of `container` (type `at`), descending into anonymous struct/union
    /// members. Returns the member and its offset in bits from the start of `container`.
    fn find_member(
        &self,
        at: TypeId,
        container: &Struct,
        name: &str,
        depth: usize,
    ) -> Result<Option<(Member, u64)>, BtfError> {
        let btf = &self.objs[usize::from(at.obj)];
        for member in &container.members {
            if member.get_name_offset().unwrap_or(0) == 0 {
                if depth >= MAX_ANON_DEPTH {
                    continue;
                }
                let inner = member
                    .get_type_id()
                    .and_then(|id| self.peel(self.at(at.obj, id)));
                if let Some((inner_at, Type::Struct(inner) | Type::Union(inner))) = inner {
                    if let Some((found, bits)) =
                        self.find_member(inner_at, &inner, name, depth + 1)?
                    {
                        return Ok(Some((found, bits + u64::from(member.bit_offset()))));
                    }
                }
                continue;
            }
            if btf.resolve_name(member).map_err(BtfError::Parse)? == name {
                let bits = u64::from(member.bit_offset());
                return Ok(Some((member.clone(), bits)));
            }
        }
        Ok(None)
    }

    /// The struct/union `at` stands for: through modifiers, and a forward declaration resolved
    /// by name.
    fn container(&self, at: TypeId) -> Option<(TypeId, Struct)> {
        match self.peel(at)? {
            (at, Type::Struct(s) | Type::Union(s)) => Some((at, s)),
            (fwd, Type::Fwd(_)) => {
                let full = self.struct_id(&self.type_name(fwd)?).ok()?;
                match self.ty(full)? {
                    Type::Struct(s) | Type::Union(s) => Some((full, s)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Every named struct and union, for [`Self::struct_id`].
    fn struct_names(&self) -> HashMap<String, Vec<TypeId>> {
        let mut map: HashMap<String, Vec<TypeId>> = HashMap::new();
        for (obj, btf) in self.objs.iter().enumerate() {
            let (first, last) = match btf.split() {
                Some(split) => split.type_id_range(),
                None => (1, self.base_last),
            };
            for id in first..=last {
                let Ok(Type::Struct(s) | Type::Union(s)) = btf.resolve_type_by_id(id) else {
                    continue;
                };
                if s.get_name_offset().unwrap_or(0) == 0 {
                    continue;
                }
                if let Ok(name) = btf.resolve_name(&s) {
                    map.entry(name).or_default().push(TypeId {
                        obj: obj as u16,
                        id,
                    });
                }
            }
        }
        map
    }

    /// The first vmlinux enum called `name` (a scan: for rare questions only).
    fn enum_id(&self, name: &str) -> Result<TypeId, BtfError> {
        let btf = &self.objs[0];
        (1..=self.base_last)
            .find(|&id| match btf.resolve_type_by_id(id) {
                Ok(Type::Enum(e)) => {
                    e.get_name_offset().unwrap_or(0) != 0
                        && btf.resolve_name(&e).is_ok_and(|n| n == name)
                }
                _ => false,
            })
            .map(|id| TypeId { obj: 0, id })
            .ok_or_else(|| BtfError::MissingType(name.to_owned()))
    }

    /// `id` as referenced from a type of object `obj`.
    fn at(&self, obj: u16, id: u32) -> TypeId {
        TypeId {
            obj: if id <= self.base_last { 0 } else { obj },
            id,
        }
    }

    fn ty(&self, at: TypeId) -> Option<Type> {
        self.objs
            .get(usize::from(at.obj))?
            .resolve_type_by_id(at.id)
            .ok()
    }

    /// Follows const/volatile/restrict/typedef/type-tag from `at` to the underlying type.
    fn peel(&self, mut at: TypeId) -> Option<(TypeId, Type)> {
        for _ in 0..MAX_MODIFIER_DEPTH {
            let ty = self.ty(at)?;
            let next = match &ty {
                Type::Const(m) | Type::Volatile(m) | Type::Restrict(m) => m.get_type_id()?,
                Type::Typedef(t) => t.get_type_id()?,
                Type::TypeTag(t) => t.get_type_id()?,
                _ => return Some((at, ty)),
            };
            at = self.at(at.obj, next);
        }
        None
    }

    fn func_proto(&self, at: TypeId, func: &btf_rs::Func) -> Option<FuncProto> {
        match self.ty(self.at(at.obj, func.get_type_id()?)) {
            Some(Type::FuncProto(proto)) => Some(proto),
            _ => None,
        }
    }

    /// `btf_trace_*` typedef -> pointer -> prototype whose first parameter is a `void *`.
    fn trace_proto(&self, typedef: TypeId) -> Option<FuncProto> {
        let obj = typedef.obj;
        let proto = match self.peel(typedef)? {
            (_, Type::Ptr(ptr)) => match self.peel(self.at(obj, ptr.get_type_id()?))? {
                (_, Type::FuncProto(proto)) => proto,
                _ => return None,
            },
            _ => return None,
        };
        let ctx = proto.parameters.first()?;
        match self.peel(self.at(obj, ctx.get_type_id()?))? {
            (_, Type::Ptr(ptr))
                if matches!(
                    self.peel(self.at(obj, ptr.get_type_id()?))?,
                    (_, Type::Void)
                ) =>
            {
                Some(proto)
            }
            _ => None,
        }
    }

    /// Whether parameter `param` of function (or prototype) `of` is an skb pointer.
    fn param_is_skb_ptr(
        &self,
        of: TypeId,
        param: &btf_rs::Parameter,
        memo: &mut SkbPtrMemo,
    ) -> bool {
        let Some(id) = param.get_type_id() else {
            return false;
        };
        let at = self.at(of.obj, id);
        memo.get_or_insert_with(at, || self.is_skb_ptr(at))
    }

    /// Whether type `at` is a (possibly qualified) pointer to a (possibly qualified) sk_buff.
    fn is_skb_ptr(&self, at: TypeId) -> bool {
        let Some((_, Type::Ptr(ptr))) = self.peel(at) else {
            return false;
        };
        ptr.get_type_id()
            .and_then(|pointee| self.peel(self.at(at.obj, pointee)))
            .is_some_and(|(pointee, _)| self.skb_ids.contains(&pointee))
    }

    fn param_is_drop_reason(&self, of: TypeId, param: &btf_rs::Parameter) -> bool {
        param
            .get_type_id()
            .and_then(|id| self.peel(self.at(of.obj, id)))
            .is_some_and(|(at, _)| self.reason_ids.contains(&at))
    }
}

/// vmlinux BTF from a file: mmapped when possible.
fn vmlinux_btf(path: &Path) -> Result<Btf, BtfError> {
    // mmap is the fast path, but sysfs only allows mmap of vmlinux BTF since Linux 6.16;
    // older kernels (and pipes) take the copy below.
    match Btf::from_file_with_backend(path, Backend::Mmap) {
        Ok(btf) => return Ok(btf),
        Err(e) => log::debug!("cannot mmap {} ({e}), reading it instead", path.display()),
    }
    let bytes = fs::read(path).map_err(|source| BtfError::Read {
        path: path.to_owned(),
        source,
    })?;
    match btf_via_memfd(&bytes) {
        Ok(btf) => Ok(btf),
        Err(e) => {
            log::debug!("cannot use the mmap backend ({e}), parsing BTF in memory");
            Btf::from_bytes(&bytes).map_err(BtfError::Parse)
        }
    }
}

/// Per-type cache of "is a pointer to sk_buff": the ~56k kernel functions share a few
/// thousand parameter types. One table per BTF object, indexed by type id.
struct SkbPtrMemo(Vec<Vec<u8>>);

impl SkbPtrMemo {
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;

    fn new(btf: &KernelBtf) -> Self {
        let tables = btf
            .objs
            .iter()
            .map(|b| {
                let last = b.split().map_or(btf.base_last, |s| s.type_id_range().1);
                vec![Self::UNKNOWN; last as usize + 1]
            })
            .collect();
        Self(tables)
    }

    fn get_or_insert_with(&mut self, at: TypeId, f: impl FnOnce() -> bool) -> bool {
        let Some(slot) = self
            .0
            .get_mut(usize::from(at.obj))
            .and_then(|t| t.get_mut(at.id as usize))
        else {
            return false; // invalid id
        };
        if *slot == Self::UNKNOWN {
            *slot = if f() { Self::YES } else { Self::NO };
        }
        *slot == Self::YES
    }
}

/// Parses `bytes` with btf-rs's mmap backend, which only takes a path: the bytes are copied into
/// an anonymous memory file reopened through `/proc/self/fd`. This is what makes loading fast
/// on kernels whose `/sys/kernel/btf/vmlinux` cannot be mmapped.
fn btf_via_memfd(bytes: &[u8]) -> Result<Btf, btf_rs::Error> {
    use std::os::fd::FromRawFd;

    // SAFETY: the name is a valid NUL-terminated string; memfd_create does not keep it.
    let fd = unsafe { libc::memfd_create(c"pwru-rs-btf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    // The mapping made by btf-rs keeps the memory alive after `file` is closed.
    Btf::from_file_with_backend(format!("/proc/self/fd/{fd}"), Backend::Mmap)
}
