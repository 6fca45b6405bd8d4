//! Running an injected filter in the kernel on a given packet (BPF_PROG_TEST_RUN), so tests and
//! benchmarks can hold the translation to libpcap's own matcher. Needs root.

use std::os::fd::{AsFd, AsRawFd};

use aya::{
    maps::{Array, MapData},
    programs::RawTracePoint,
    Ebpf, EbpfLoader,
};
use pwru_rs_common::{FilterTestPacket, FILTER_TEST_MAX};

use super::{patch_object, FilterError, PcapFilter, View};
use crate::loader::EBPF_OBJECT;

const TEST_PROGRAM: &str = "pwru_filter_test";
const TEST_MAP: &str = "FILTER_TEST";

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("loading: {0}")]
    Load(String),
    #[error("BPF_PROG_TEST_RUN: {0}")]
    Run(std::io::Error),
    #[error("packet of {0} bytes is longer than the test program takes ({FILTER_TEST_MAX})")]
    TooLong(usize),
}

/// The filter test program with one expression injected.
pub struct FilterTester {
    _ebpf: Ebpf,
    packet: Array<MapData, FilterTestPacket>,
    prog_fd: i32,
}

impl FilterTester {
    pub fn new(filter: &PcapFilter) -> Result<Self, TestRunError> {
        let object = patch_object(EBPF_OBJECT, Some(filter))?;
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(object.as_bytes())
            .map_err(|e| TestRunError::Load(e.to_string()))?;
        let prog: &mut RawTracePoint = ebpf
            .program_mut(TEST_PROGRAM)
            .ok_or_else(|| TestRunError::Load(format!("no program {TEST_PROGRAM}")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| TestRunError::Load(e.to_string()))?;
        prog.load().map_err(|e| {
            TestRunError::Load(crate::loader::describe_program_error(TEST_PROGRAM, &e))
        })?;
        let prog_fd = prog
            .fd()
            .map_err(|e| TestRunError::Load(e.to_string()))?
            .as_fd()
            .as_raw_fd();
        let packet = Array::try_from(
            ebpf.take_map(TEST_MAP)
                .ok_or_else(|| TestRunError::Load(format!("no map {TEST_MAP}")))?,
        )
        .map_err(|e| TestRunError::Load(e.to_string()))?;
        Ok(Self {
            _ebpf: ebpf,
            packet,
            prog_fd,
        })
    }

    /// The kernel's verdict for `packet` seen as `view`.
    pub fn matches(&mut self, packet: &[u8], view: View) -> Result<bool, TestRunError> {
        if packet.len() > FILTER_TEST_MAX {
            return Err(TestRunError::TooLong(packet.len()));
        }
        let mut input = FilterTestPacket {
            len: packet.len() as u32,
            l3: (view == View::Raw) as u32,
            data: [0; FILTER_TEST_MAX],
        };
        input.data[..packet.len()].copy_from_slice(packet);
        self.packet
            .set(0, input, 0)
            .map_err(|e| TestRunError::Load(e.to_string()))?;
        match test_run(self.prog_fd).map_err(TestRunError::Run)? {
            1 => Ok(true),
            0 => Ok(false),
            other => Err(TestRunError::Load(format!("test program returned {other}"))),
        }
    }
}

/// `bpf(BPF_PROG_TEST_RUN)` on a raw-tracepoint program with no context; returns its result.
fn test_run(prog_fd: i32) -> std::io::Result<i32> {
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut attr = TestAttr {
        prog_fd: prog_fd as u32,
        ..Default::default()
    };
    // SAFETY: a valid, fully initialised attr of the size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(attr.retval as i32)
}
