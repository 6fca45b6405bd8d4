//! Running an injected filter in the kernel on a given packet (BPF_PROG_TEST_RUN), so tests and
//! benchmarks can hold the translation to libpcap's own matcher. Needs root.

use aya::{
    maps::{Array, MapData},
    programs::RawTracePoint,
    Ebpf, EbpfLoader,
};
use pwru_rs_common::{
    contract::{FILTER_TEST_MAP as TEST_MAP, FILTER_TEST_PROGRAM as TEST_PROGRAM},
    FilterTestPacket, FILTER_TEST_MAX,
};

use super::{PcapFilter, View};
use crate::{
    btf::RdonlyCast,
    loader::{self, sys},
};

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error(transparent)]
    Patch(#[from] crate::object::PatchError),
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
        Self::with_direct_loads(filter, None)
    }

    /// The filter translated with direct packet loads (`direct`, as
    /// [`crate::session::direct_reads_here`] finds it; `None`: as [`FilterTester::new`]).
    pub fn with_direct_loads(
        filter: &PcapFilter,
        direct: Option<RdonlyCast>,
    ) -> Result<Self, TestRunError> {
        let object = loader::embedded_object().map_err(|e| TestRunError::Load(e.to_string()))?;
        let object = crate::object::patch(
            object,
            &crate::object::Patches {
                injections: filter.injections_with(direct),
                rdonly_cast: direct.map(|c| c.func_id),
                ..Default::default()
            },
        )?;
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(object.as_bytes())
            .map_err(|e| TestRunError::Load(e.to_string()))?;
        let prog_fd = loader::program_fd(&mut ebpf, TEST_PROGRAM, |program| {
            <&mut RawTracePoint>::try_from(program)?.load()
        })
        .map_err(|e| TestRunError::Load(e.to_string()))?;
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
        match sys::prog_test_run(self.prog_fd).map_err(TestRunError::Run)? {
            1 => Ok(true),
            0 => Ok(false),
            other => Err(TestRunError::Load(format!("test program returned {other}"))),
        }
    }
}
