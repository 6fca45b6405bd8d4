//! The few `bpf()` commands aya 0.14 does not expose the way pwru-rs needs them, on aya-obj's
//! generated `union bpf_attr` (zeroed, so fields a kernel does not know stay zero, which every
//! kernel accepts).

use std::{
    ffi::CString,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use aya_obj::generated::{
    bpf_attach_type, bpf_attr, bpf_cmd, bpf_func_info, bpf_insn, bpf_line_info, bpf_prog_type,
};

use super::verifier;

fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a union of plain integer structs; all-zero is its documented default.
    unsafe { std::mem::zeroed() }
}

/// `bpf(cmd, attr)`; returns the kernel's non-negative result.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<i64> {
    // SAFETY: `attr` is a valid bpf_attr of the size passed; pointers inside it are the caller's,
    // valid for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// A command that returns a new fd.
fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A program to load by hand.
pub struct ProgLoad<'a> {
    /// For messages and the kernel's program name (15 bytes at most are kept).
    pub name: &'a str,
    pub prog_type: bpf_prog_type,
    pub expected_attach_type: Option<bpf_attach_type>,
    /// BTF id of the attach target (fentry/fexit), with the program fd it lives in
    /// (`attach_prog_fd`) when the target is a BPF program, or the module's BTF object fd
    /// (`attach_btf_obj_fd`, the same field) when it is a module function.
    pub attach_btf_id: u32,
    pub attach_prog_fd: Option<BorrowedFd<'a>>,
    pub insns: &'a [bpf_insn],
    /// The program's BTF function and line records, so that `bpftool prog dump` shows its
    /// functions by name and its source lines (and `bpftool prog show` its full name).
    pub btf: Option<ProgBtf<'a>>,
}

/// A program's BTF: the object's BTF loaded in the kernel and the program's records in it,
/// `bpf_func_info` and `bpf_line_info` structs back to back.
#[derive(Clone, Copy)]
pub struct ProgBtf<'a> {
    pub fd: BorrowedFd<'a>,
    pub func_info: &'a [u8],
    pub line_info: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProgLoadError {
    pub error: std::io::Error,
    /// The verifier's log; empty when the kernel refused the program before verifying it
    /// (e.g. an attach type this kernel does not know).
    pub log: String,
    /// One line: what the kernel said and, when it verified, the verifier's verdict.
    pub message: String,
}

impl ProgLoadError {
    /// True when the verifier ran and rejected the program (a bug to report, not a missing
    /// kernel feature).
    pub fn verifier_rejected(&self) -> bool {
        !verifier::verdict(&self.log).is_empty()
    }
}

const LICENSE: &std::ffi::CStr = c"GPL";

/// `BPF_PROG_LOAD`; on failure loads once more with the verifier's log to say why.
pub fn prog_load(p: &ProgLoad<'_>) -> Result<OwnedFd, ProgLoadError> {
    let mut name = [0 as libc::c_char; 16];
    for (dst, src) in name.iter_mut().zip(p.name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = zeroed_attr();
        // SAFETY: writing plain fields of the BPF_PROG_LOAD member of a zeroed union.
        let load = unsafe { &mut attr.__bindgen_anon_3 };
        load.prog_type = p.prog_type as u32;
        load.insn_cnt = p.insns.len() as u32;
        load.insns = p.insns.as_ptr() as u64;
        load.license = LICENSE.as_ptr() as u64;
        load.prog_name = name;
        if let Some(t) = p.expected_attach_type {
            load.expected_attach_type = t as u32;
        }
        load.attach_btf_id = p.attach_btf_id;
        if let Some(fd) = p.attach_prog_fd {
            load.__bindgen_anon_1.attach_prog_fd = fd.as_raw_fd() as u32;
        }
        if let Some(btf) = p.btf {
            let (func, line) = (size_of::<bpf_func_info>(), size_of::<bpf_line_info>());
            load.prog_btf_fd = btf.fd.as_raw_fd() as u32;
            load.func_info_rec_size = func as u32;
            load.func_info = btf.func_info.as_ptr() as u64;
            load.func_info_cnt = (btf.func_info.len() / func) as u32;
            load.line_info_rec_size = line as u32;
            load.line_info = btf.line_info.as_ptr() as u64;
            load.line_info_cnt = (btf.line_info.len() / line) as u32;
        }
        if let Some(log) = log {
            load.log_level = 1;
            load.log_size = log.len() as u32;
            load.log_buf = log.as_mut_ptr() as u64;
        }
        bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    attempt(None).map_err(|error| {
        let mut buf = vec![0u8; 1 << 20];
        let _ = attempt(Some(&mut buf));
        let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
        let log = String::from_utf8_lossy(&buf[..end]).into_owned();
        let message = verifier::describe(p.name, &error, &log);
        ProgLoadError {
            error,
            log,
            message,
        }
    })
}

/// `BPF_MAP_UPDATE_ELEM` of `key` → `value` (sized as the map's key and value).
pub fn map_update(map_fd: RawFd, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    let mut attr = zeroed_attr();
    // SAFETY: writing plain fields of the map-element member of a zeroed union.
    unsafe {
        let elem = &mut attr.__bindgen_anon_2;
        elem.map_fd = map_fd as u32;
        elem.key = key.as_ptr() as u64;
        elem.__bindgen_anon_1.value = value.as_ptr() as u64;
    }
    bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_BTF_LOAD`: BTF data into the kernel, for programs to refer to.
pub fn btf_load(data: &[u8]) -> std::io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    // SAFETY: writing plain fields of the BPF_BTF_LOAD member of a zeroed union.
    let load = unsafe { &mut attr.__bindgen_anon_7 };
    load.btf = data.as_ptr() as u64;
    load.btf_size = data.len() as u32;
    bpf_fd(bpf_cmd::BPF_BTF_LOAD, &mut attr)
}

/// `BPF_LINK_CREATE` of a kprobe-multi link: `prog` on every address at once.
pub fn link_kprobe_multi(prog: BorrowedFd<'_>, addresses: &[u64]) -> std::io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    // SAFETY: writing plain fields of the BPF_LINK_CREATE member of a zeroed union.
    unsafe {
        let link = &mut attr.link_create;
        link.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
        link.attach_type = bpf_attach_type::BPF_TRACE_KPROBE_MULTI as u32;
        link.__bindgen_anon_3.kprobe_multi.cnt = addresses.len() as u32;
        link.__bindgen_anon_3.kprobe_multi.addrs = addresses.as_ptr() as u64;
    }
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// `BPF_RAW_TRACEPOINT_OPEN` with a BPF cookie (Linux 6.10+; older kernels fail with E2BIG).
pub fn raw_tracepoint_open(name: &str, prog_fd: i32, cookie: u64) -> std::io::Result<OwnedFd> {
    let name = CString::new(name).map_err(std::io::Error::other)?;
    let mut attr = zeroed_attr();
    attr.raw_tracepoint.name = name.as_ptr() as u64;
    attr.raw_tracepoint.prog_fd = prog_fd as u32;
    attr.raw_tracepoint.cookie = cookie;
    bpf_fd(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}

/// `BPF_RAW_TRACEPOINT_OPEN` of a tracing program (fentry/fexit: the target was given at load).
pub fn tracing_attach(prog: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let mut attr = zeroed_attr();
    attr.raw_tracepoint.prog_fd = prog.as_raw_fd() as u32;
    bpf_fd(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}

/// The kernel's BTF object of module `module` (`BPF_BTF_GET_NEXT_ID`, `_GET_FD_BY_ID`,
/// `OBJ_GET_INFO_BY_FD`): what a program attached to one of its functions names as
/// `attach_btf_obj_fd`. `None` when no loaded BTF object has that name.
pub fn module_btf_fd(module: &str) -> std::io::Result<Option<OwnedFd>> {
    use aya_obj::generated::bpf_btf_info;
    let mut id = 0u32;
    while let Some(next) = next_id(bpf_cmd::BPF_BTF_GET_NEXT_ID, id)? {
        id = next;
        // Freed meanwhile: skipped.
        let Some(fd) = fd_by_id(bpf_cmd::BPF_BTF_GET_FD_BY_ID, id)? else {
            continue;
        };
        let mut name = [0u8; 64];
        // SAFETY: bpf_btf_info is plain integers; all-zero is valid.
        let mut info: bpf_btf_info = unsafe { std::mem::zeroed() };
        info.name = name.as_mut_ptr() as u64;
        info.name_len = name.len() as u32;
        obj_info(fd.as_fd(), &mut info)?;
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if info.kernel_btf != 0 && &name[..len] == module.as_bytes() {
            return Ok(Some(fd));
        }
    }
    Ok(None)
}

/// The next id after `id` of a BPF object kind (`BPF_PROG_GET_NEXT_ID`, `BPF_BTF_GET_NEXT_ID`);
/// `None` after the last.
fn next_id(cmd: bpf_cmd, id: u32) -> std::io::Result<Option<u32>> {
    let mut attr = zeroed_attr();
    attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
    match bpf(cmd, &mut attr) {
        // SAFETY: the kernel filled in next_id.
        Ok(_) => Ok(Some(unsafe { attr.__bindgen_anon_6.next_id })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An fd of the object with this id (`BPF_PROG_GET_FD_BY_ID`, `BPF_BTF_GET_FD_BY_ID`); `None`
/// when it is gone.
fn fd_by_id(cmd: bpf_cmd, id: u32) -> std::io::Result<Option<OwnedFd>> {
    let mut attr = zeroed_attr();
    match cmd {
        bpf_cmd::BPF_BTF_GET_FD_BY_ID => attr.__bindgen_anon_6.__bindgen_anon_1.btf_id = id,
        bpf_cmd::BPF_MAP_GET_FD_BY_ID => attr.__bindgen_anon_6.__bindgen_anon_1.map_id = id,
        _ => attr.__bindgen_anon_6.__bindgen_anon_1.prog_id = id,
    }
    match bpf_fd(cmd, &mut attr) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (a `bpf_*_info`, its pointers set by the caller).
fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> std::io::Result<()> {
    let mut attr = zeroed_attr();
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<T>() as u32;
    attr.info.info = info as *mut T as u64;
    bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// A loaded BPF program, as `--filter-trace-tc` / `-xdp` need to know it.
#[derive(Debug)]
pub struct LoadedProgram {
    pub id: u32,
    pub fd: OwnedFd,
    pub prog_type: u32,
    /// The kernel's copy of its name (15 bytes at most).
    pub name: String,
    /// Its BTF object's id (0: none).
    pub btf_id: u32,
    /// The BTF type id of its entry function (the first `func_info`), when it has BTF.
    pub entry_type_id: Option<u32>,
    /// Where its JITed entry function is (what `bpf_get_func_ip` in fentry on it returns).
    pub address: Option<u64>,
}

/// Every loaded BPF program of one of `types` (`BPF_PROG_TYPE_*`), in id order. Programs freed
/// while this runs are skipped.
pub fn loaded_programs(types: &[bpf_prog_type]) -> std::io::Result<Vec<LoadedProgram>> {
    use aya_obj::generated::bpf_prog_info;
    let mut found = Vec::new();
    let mut id = 0;
    while let Some(next) = next_id(bpf_cmd::BPF_PROG_GET_NEXT_ID, id)? {
        id = next;
        let Some(fd) = fd_by_id(bpf_cmd::BPF_PROG_GET_FD_BY_ID, id)? else {
            continue;
        };
        // SAFETY: bpf_prog_info is plain integers; all-zero is valid.
        let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
        obj_info(fd.as_fd(), &mut info)?;
        if !types.iter().any(|&t| t as u32 == info.type_) {
            continue;
        }
        // Again with room for the first function record and the first JITed symbol.
        let (nr_func_info, rec_size) = (info.nr_func_info, info.func_info_rec_size);
        let mut func_info = vec![0u8; (nr_func_info * rec_size) as usize];
        let mut ksyms = vec![0u64; info.nr_jited_ksyms as usize];
        // SAFETY: as above.
        let mut more: bpf_prog_info = unsafe { std::mem::zeroed() };
        more.nr_func_info = nr_func_info;
        more.func_info_rec_size = rec_size;
        more.func_info = func_info.as_mut_ptr() as u64;
        more.nr_jited_ksyms = ksyms.len() as u32;
        more.jited_ksyms = ksyms.as_mut_ptr() as u64;
        obj_info(fd.as_fd(), &mut more)?;
        let entry_type_id = (nr_func_info > 0 && rec_size as usize >= size_of::<bpf_func_info>())
            .then(|| {
                // SAFETY: the buffer holds at least one record of at least this size; unaligned
                // read of plain integers.
                unsafe { func_info.as_ptr().cast::<bpf_func_info>().read_unaligned() }.type_id
            });
        let name_len = info.name.iter().position(|&c| c == 0).unwrap_or(16);
        let name = info.name[..name_len]
            .iter()
            .map(|&c| c as u8 as char)
            .collect();
        found.push(LoadedProgram {
            id,
            fd,
            prog_type: info.type_,
            name,
            btf_id: info.btf_id,
            entry_type_id,
            address: ksyms.first().copied().filter(|&a| a != 0),
        });
    }
    Ok(found)
}

/// A loaded program's instructions as the kernel runs them (after the verifier's rewrites), raw
/// 8-byte `struct bpf_insn`s. A helper call's `imm` is then the helper's address less
/// `__bpf_call_base`'s, unless the kernel hides addresses from this process (`kptr_restrict`),
/// when it is 0.
pub fn xlated_insns(fd: BorrowedFd<'_>) -> std::io::Result<Vec<u64>> {
    use aya_obj::generated::bpf_prog_info;
    // SAFETY: bpf_prog_info is plain integers; all-zero is valid.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    obj_info(fd, &mut info)?;
    let mut insns = vec![0u64; info.xlated_prog_len as usize / 8];
    // SAFETY: as above.
    let mut with_insns: bpf_prog_info = unsafe { std::mem::zeroed() };
    with_insns.xlated_prog_len = (insns.len() * 8) as u32;
    with_insns.xlated_prog_insns = insns.as_mut_ptr() as u64;
    obj_info(fd, &mut with_insns)?;
    insns.truncate(with_insns.xlated_prog_len as usize / 8);
    Ok(insns)
}

/// The id of the map `fd` refers to.
pub fn map_id(fd: RawFd) -> std::io::Result<u32> {
    use aya_obj::generated::bpf_map_info;
    // SAFETY: plain integers; all-zero is valid.
    let mut info: bpf_map_info = unsafe { std::mem::zeroed() };
    // SAFETY: the caller's map fd, open for the call.
    obj_info(unsafe { BorrowedFd::borrow_raw(fd) }, &mut info)?;
    Ok(info.id)
}

/// The names of every loaded BPF map (the kernel's copies, 15 bytes at most), in id order:
/// what a test checks nothing of pwru-rs's is left by.
pub fn loaded_map_names() -> std::io::Result<Vec<String>> {
    use aya_obj::generated::bpf_map_info;
    let mut names = Vec::new();
    let mut id = 0;
    while let Some(next) = next_id(bpf_cmd::BPF_MAP_GET_NEXT_ID, id)? {
        id = next;
        let Some(fd) = fd_by_id(bpf_cmd::BPF_MAP_GET_FD_BY_ID, id)? else {
            continue;
        };
        // SAFETY: plain integers; all-zero is valid.
        let mut info: bpf_map_info = unsafe { std::mem::zeroed() };
        obj_info(fd.as_fd(), &mut info)?;
        let len = info.name.iter().position(|&c| c == 0).unwrap_or(16);
        names.push(info.name[..len].iter().map(|&c| c as u8 as char).collect());
    }
    Ok(names)
}

/// The raw BTF of the BTF object with this id (a program's), `None` when it is gone.
pub fn btf_data(id: u32) -> std::io::Result<Option<Vec<u8>>> {
    use aya_obj::generated::bpf_btf_info;
    let Some(fd) = fd_by_id(bpf_cmd::BPF_BTF_GET_FD_BY_ID, id)? else {
        return Ok(None);
    };
    // SAFETY: plain integers; all-zero is valid.
    let mut info: bpf_btf_info = unsafe { std::mem::zeroed() };
    obj_info(fd.as_fd(), &mut info)?;
    let mut data = vec![0u8; info.btf_size as usize];
    // SAFETY: as above.
    let mut with_data: bpf_btf_info = unsafe { std::mem::zeroed() };
    with_data.btf = data.as_mut_ptr() as u64;
    with_data.btf_size = data.len() as u32;
    obj_info(fd.as_fd(), &mut with_data)?;
    data.truncate(with_data.btf_size as usize);
    Ok(Some(data))
}

/// `BPF_PROG_TEST_RUN` without input; returns the program's return value.
pub fn prog_test_run(prog_fd: i32) -> std::io::Result<u32> {
    let mut attr = zeroed_attr();
    attr.test.prog_fd = prog_fd as u32;
    bpf(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
    // SAFETY: the kernel filled in the test member.
    Ok(unsafe { attr.test.retval })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layout_is_the_kernels() {
        // Field offsets of `union bpf_attr` the kernel ABI fixes.
        let attr = zeroed_attr();
        let base = &attr as *const bpf_attr as usize;
        // SAFETY: taking addresses of union fields, not reading them.
        unsafe {
            assert_eq!(&raw const attr.raw_tracepoint.cookie as usize - base, 16);
            assert_eq!(&raw const attr.test.retval as usize - base, 4);
            assert_eq!(
                &raw const attr.link_create.__bindgen_anon_3.kprobe_multi.addrs as usize - base,
                32
            );
            assert_eq!(
                &raw const attr.__bindgen_anon_3.expected_attach_type as usize - base,
                68
            );
        }
    }
}
