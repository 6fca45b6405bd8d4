//! What pwru-rs needs from the kernel's BTF (BPF Type Format).
//!
//! [`KernelBtf`] wraps a parsed vmlinux BTF (by default [`VMLINUX_BTF`], or a file given with
//! `--kernel-btf`) and answers the questions the tracer asks at start-up:
//!
//! - [`KernelBtf::skb_functions`]: which kernel functions take a `struct sk_buff *`, and in which
//!   argument (the kprobe backends attach one program per position),
//! - [`KernelBtf::skb_tracepoints`]: which raw tracepoints carry an skb (and a drop reason),
//! - [`KernelBtf::offsets`]: the byte offsets of the struct fields the eBPF programs read
//!   (Rust eBPF cannot emit CO-RE relocations, so they are resolved here),
//! - [`KernelBtf::drop_reasons`]: the names of `enum skb_drop_reason` values.
//!
//! Parsing uses btf-rs's mmap backend, which only indexes the type section; a full parse of
//! vmlinux with its cache backend takes several times longer (~60-100 ms for ~126k types).

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use btf_rs::{Backend, Btf, BtfType, FuncProto, Member, Struct, Type};
use pwru_rs_common::Offsets;

#[cfg(test)]
mod tests;

/// Where the running kernel exposes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// kprobes read at most this many arguments from registers (pwru-rs has one program per position).
pub const MAX_SKB_POS: u8 = 5;

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
    /// The field has no byte offset (the eBPF programs only read whole bytes).
    #[error("field `{field}` of `struct {ty}` is a bitfield")]
    Bitfield { ty: String, field: String },
}

/// A kernel function taking a `struct sk_buff *`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbFunction {
    pub name: String,
    /// 1-based position of the first `struct sk_buff *` parameter, in `1..=MAX_SKB_POS`.
    pub skb_pos: u8,
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
/// pass so that no query has to scan all types again.
const STRUCTS: [&str; 4] = [SK_BUFF, "net_device", "sock", "net"];

/// Parsed kernel BTF plus an index of the types pwru-rs queries.
///
/// ```no_run
/// use pwru_rs::btf::KernelBtf;
///
/// let btf = KernelBtf::load(None)?; // /sys/kernel/btf/vmlinux
/// for f in btf.skb_functions() {
///     println!("{}: skb is argument {}", f.name, f.skb_pos);
/// }
/// let offsets = btf.offsets()?; // pwru_rs_common::Offsets, for the eBPF programs
/// # Ok::<(), pwru_rs::btf::BtfError>(())
/// ```
pub struct KernelBtf {
    btf: Btf,
    /// One past the highest type id.
    nr_types: u32,
    /// Ids of all `BTF_KIND_FUNC` types, in BTF order.
    funcs: Vec<u32>,
    /// `(tracepoint name, typedef id)` of every `btf_trace_*` typedef, in BTF order.
    trace_typedefs: Vec<(String, u32)>,
    /// Ids of the structs named `STRUCTS[i]`, in BTF order.
    structs: [Vec<u32>; STRUCTS.len()],
    /// Ids that stand for `struct sk_buff`: the struct and any forward declaration of it.
    skb_ids: Vec<u32>,
    /// Ids of `enum skb_drop_reason`.
    reason_ids: Vec<u32>,
}

impl KernelBtf {
    /// Loads `path`, or the running kernel's BTF ([`VMLINUX_BTF`]) when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, BtfError> {
        Self::from_file(path.unwrap_or_else(|| Path::new(VMLINUX_BTF)))
    }

    /// Loads a raw BTF file (the format of `/sys/kernel/btf/vmlinux`, not an ELF file).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        // mmap is the fast path, but sysfs only allows mmap of vmlinux BTF since Linux 6.16;
        // older kernels (and pipes) take the copy below.
        match Btf::from_file_with_backend(path, Backend::Mmap) {
            Ok(btf) => return Self::from_btf(btf),
            Err(e) => log::debug!("cannot mmap {} ({e}), reading it instead", path.display()),
        }
        let bytes = fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Parses raw BTF from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BtfError> {
        let btf = match btf_via_memfd(bytes) {
            Ok(btf) => btf,
            Err(e) => {
                log::debug!("cannot use the mmap backend ({e}), parsing BTF in memory");
                Btf::from_bytes(bytes).map_err(BtfError::Parse)?
            }
        };
        Self::from_btf(btf)
    }

    /// The underlying btf-rs object, for lookups this module does not cover.
    pub fn btf(&self) -> &Btf {
        &self.btf
    }

    /// Indexes the types we query in a single pass over the whole BTF.
    fn from_btf(btf: Btf) -> Result<Self, BtfError> {
        let (_, last_id) = btf.base().type_id_range();
        let mut funcs = Vec::new();
        let mut trace_typedefs = Vec::new();
        let mut structs: [Vec<u32>; STRUCTS.len()] = Default::default();
        let mut skb_ids = Vec::new();
        let mut reason_ids = Vec::new();
        for id in 1..=last_id {
            let ty = btf.resolve_type_by_id(id).map_err(BtfError::Parse)?;
            let bt = match &ty {
                // Function names are only resolved for matches, later.
                Type::Func(_) => {
                    funcs.push(id);
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
                        trace_typedefs.push((tp.to_owned(), id));
                    }
                }
                Type::Struct(_) => {
                    if name == SK_BUFF {
                        skb_ids.push(id);
                    }
                    if let Some(i) = STRUCTS.iter().position(|s| *s == name) {
                        structs[i].push(id);
                    }
                }
                // A forward declaration still means sk_buff to a function taking a pointer.
                Type::Fwd(f) if f.is_struct() && name == SK_BUFF => skb_ids.push(id),
                Type::Enum(_) | Type::Enum64(_) if name == SKB_DROP_REASON => reason_ids.push(id),
                _ => {}
            }
        }
        Ok(Self {
            btf,
            nr_types: last_id.saturating_add(1),
            funcs,
            trace_typedefs,
            structs,
            skb_ids,
            reason_ids,
        })
    }

    /// Every kernel function (`BTF_KIND_FUNC`) with a `struct sk_buff *` parameter (possibly
    /// `const`/`volatile`/typedef'd) in positions `1..=MAX_SKB_POS`, sorted by name.
    ///
    /// `skb_pos` is the position of the *first* skb parameter. (pwru stops counting after an skb
    /// parameter, so for `f(skb, int, skb)` it records position 2.) Functions whose prototype is
    /// missing or malformed are skipped. When several functions share a name (static functions
    /// of different files), the first one in BTF order is reported.
    pub fn skb_functions(&self) -> Vec<SkbFunction> {
        let mut memo = SkbPtrMemo::new(self.nr_types);
        let mut out = Vec::new();
        for &id in &self.funcs {
            let func = match self.btf.resolve_type_by_id(id) {
                Ok(Type::Func(func)) => func,
                _ => continue,
            };
            let Some(proto) = self.func_proto(&func) else {
                log::debug!("BTF func [{id}] has no valid prototype, skipped");
                continue;
            };
            let Some(idx) = proto
                .parameters
                .iter()
                .take(MAX_SKB_POS.into())
                .position(|p| self.param_is_skb_ptr(p, &mut memo))
            else {
                continue;
            };
            match self.btf.resolve_name(&func) {
                Ok(name) => out.push(SkbFunction {
                    name,
                    // idx < MAX_SKB_POS, so this fits.
                    skb_pos: idx as u8 + 1,
                }),
                Err(e) => log::debug!("BTF func [{id}] has no name ({e}), skipped"),
            }
        }
        // Stable sort: among equal names the first in BTF order stays first and is kept.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|b, a| a.name == b.name);
        out
    }

    /// Raw tracepoints carrying a `struct sk_buff *`, sorted by name.
    ///
    /// Found through the `btf_trace_<name>` typedefs (typedef -> pointer -> function prototype
    /// whose first parameter is the `void *` context and the rest the tracepoint's arguments).
    pub fn skb_tracepoints(&self) -> Vec<SkbTracepoint> {
        let mut memo = SkbPtrMemo::new(self.nr_types);
        let mut out = Vec::new();
        for (name, id) in &self.trace_typedefs {
            let Some(proto) = self.trace_proto(*id) else {
                log::debug!("BTF typedef btf_trace_{name} is not a tracepoint prototype, skipped");
                continue;
            };
            // trace_proto checked the context parameter is there.
            let args = proto.parameters.get(1..).unwrap_or_default();
            let Some(skb_arg) = args
                .iter()
                .position(|p| self.param_is_skb_ptr(p, &mut memo))
            else {
                continue;
            };
            let reason_arg = args.iter().position(|p| self.param_is_drop_reason(p));
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
            _pad: 0,
        })
    }

    /// Names of the `enum skb_drop_reason` values; empty if the enum is absent.
    pub fn drop_reasons(&self) -> DropReasons {
        let mut by_value = Vec::new();
        // The first definition with members wins (a kernel has exactly one).
        for &id in &self.reason_ids {
            match self.btf.resolve_type_by_id(id) {
                Ok(Type::Enum(e)) => {
                    for m in &e.members {
                        if let Ok(name) = self.btf.resolve_name(m) {
                            by_value.push((m.val(), name));
                        }
                    }
                }
                Ok(Type::Enum64(e)) => {
                    for m in &e.members {
                        if let (Ok(v), Ok(name)) =
                            (u32::try_from(m.val()), self.btf.resolve_name(m))
                        {
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

    /// Byte offset of `path` (member names, each one looked up in the previous member's type,
    /// through anonymous structs/unions) from the start of `struct ty`.
    fn field_offset(&self, ty: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut container = self
            .struct_by_name(ty)
            .ok_or_else(|| BtfError::MissingType(ty.to_owned()))?;
        let mut bits: u64 = 0;
        for (i, field) in path.iter().enumerate() {
            let missing = || BtfError::MissingField {
                ty: ty.to_owned(),
                field: path[..=i].join("."),
            };
            let (member, member_bits) = self
                .find_member(&container, field, 0)?
                .ok_or_else(missing)?;
            if member.bitfield_size().unwrap_or(0) != 0 || member_bits % 8 != 0 {
                return Err(BtfError::Bitfield {
                    ty: ty.to_owned(),
                    field: path[..=i].join("."),
                });
            }
            bits += member_bits;
            if i + 1 < path.len() {
                // The next component is looked up in this member's type; if that is not a
                // struct/union, the next field cannot exist.
                let next_missing = || BtfError::MissingField {
                    ty: ty.to_owned(),
                    field: path[..=i + 1].join("."),
                };
                container = match self.member_type(&member) {
                    Some(Type::Struct(s) | Type::Union(s)) => s,
                    _ => return Err(next_missing()),
                };
            }
        }
        u32::try_from(bits / 8).map_err(|_| BtfError::Bitfield {
            ty: ty.to_owned(),
            field: path.join("."),
        })
    }

    /// Finds member `name` of `container`, descending into anonymous struct/union members.
    /// Returns the member and its offset in bits from the start of `container`.
    fn find_member(
        &self,
        container: &Struct,
        name: &str,
        depth: usize,
    ) -> Result<Option<(Member, u64)>, BtfError> {
        for member in &container.members {
            if member.get_name_offset().unwrap_or(0) == 0 {
                if depth >= MAX_ANON_DEPTH {
                    continue;
                }
                if let Some(Type::Struct(inner) | Type::Union(inner)) = self.member_type(member) {
                    if let Some((found, bits)) = self.find_member(&inner, name, depth + 1)? {
                        return Ok(Some((found, bits + u64::from(member.bit_offset()))));
                    }
                }
                continue;
            }
            if self.btf.resolve_name(member).map_err(BtfError::Parse)? == name {
                let bits = u64::from(member.bit_offset());
                return Ok(Some((member.clone(), bits)));
            }
        }
        Ok(None)
    }

    /// The type of a struct member, modifiers and typedefs stripped.
    fn member_type(&self, member: &Member) -> Option<Type> {
        self.peel(member.get_type_id()?).map(|(_, ty)| ty)
    }

    /// The first struct called `name` (one of `STRUCTS`).
    fn struct_by_name(&self, name: &str) -> Option<Struct> {
        let i = STRUCTS.iter().position(|s| *s == name)?;
        self.structs[i]
            .iter()
            .find_map(|&id| match self.btf.resolve_type_by_id(id) {
                Ok(Type::Struct(s)) => Some(s),
                _ => None,
            })
    }

    /// Follows const/volatile/restrict/typedef/type-tag from `id` to the underlying type.
    fn peel(&self, mut id: u32) -> Option<(u32, Type)> {
        for _ in 0..MAX_MODIFIER_DEPTH {
            let ty = self.btf.resolve_type_by_id(id).ok()?;
            match &ty {
                Type::Const(m) | Type::Volatile(m) | Type::Restrict(m) => id = m.get_type_id()?,
                Type::Typedef(t) => id = t.get_type_id()?,
                Type::TypeTag(t) => id = t.get_type_id()?,
                _ => return Some((id, ty)),
            }
        }
        None
    }

    fn func_proto(&self, func: &btf_rs::Func) -> Option<FuncProto> {
        match self.btf.resolve_type_by_id(func.get_type_id()?) {
            Ok(Type::FuncProto(proto)) => Some(proto),
            _ => None,
        }
    }

    /// `btf_trace_*` typedef -> pointer -> prototype whose first parameter is a `void *`.
    fn trace_proto(&self, typedef_id: u32) -> Option<FuncProto> {
        let proto = match self.peel(typedef_id)? {
            (_, Type::Ptr(ptr)) => match self.peel(ptr.get_type_id()?)? {
                (_, Type::FuncProto(proto)) => proto,
                _ => return None,
            },
            _ => return None,
        };
        let ctx = proto.parameters.first()?;
        match self.peel(ctx.get_type_id()?)? {
            (_, Type::Ptr(ptr)) if matches!(self.peel(ptr.get_type_id()?)?, (_, Type::Void)) => {
                Some(proto)
            }
            _ => None,
        }
    }

    fn param_is_skb_ptr(&self, param: &btf_rs::Parameter, memo: &mut SkbPtrMemo) -> bool {
        let Some(id) = param.get_type_id() else {
            return false;
        };
        memo.get_or_insert_with(id, || self.is_skb_ptr(id))
    }

    /// Whether type `id` is a (possibly qualified) pointer to a (possibly qualified) sk_buff.
    fn is_skb_ptr(&self, id: u32) -> bool {
        let Some((_, Type::Ptr(ptr))) = self.peel(id) else {
            return false;
        };
        ptr.get_type_id()
            .and_then(|pointee| self.peel(pointee))
            .is_some_and(|(pointee, _)| self.skb_ids.contains(&pointee))
    }

    fn param_is_drop_reason(&self, param: &btf_rs::Parameter) -> bool {
        param
            .get_type_id()
            .and_then(|id| self.peel(id))
            .is_some_and(|(id, _)| self.reason_ids.contains(&id))
    }
}

/// Per-type-id cache of "is a pointer to sk_buff": the ~56k kernel functions share a few
/// thousand parameter types.
struct SkbPtrMemo(Vec<u8>);

impl SkbPtrMemo {
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;

    fn new(nr_types: u32) -> Self {
        Self(vec![Self::UNKNOWN; nr_types as usize])
    }

    fn get_or_insert_with(&mut self, id: u32, f: impl FnOnce() -> bool) -> bool {
        let Some(slot) = self.0.get_mut(id as usize) else {
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
