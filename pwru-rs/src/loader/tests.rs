//! The contract between userspace and the kernel object: every name pwru-rs uses exists in the
//! built object, with the kind it is used as.

use aya_obj::{generated::bpf_map_type, ProgramSection};
use object::{Object, ObjectSection, ObjectSymbol};
use pwru_rs_common::{contract, Config, FilterTestPacket, Offsets};

use super::embedded_object;

fn parsed() -> aya_obj::Object {
    aya_obj::Object::parse(embedded_object().expect("built with the eBPF programs")).unwrap()
}

#[test]
fn programs_exist_with_their_kinds() {
    let obj = parsed();
    let kind = |name: &str| match &obj.programs.get(name) {
        Some(p) => format!("{:?}", p.section),
        None => panic!("the eBPF object has no program {name}"),
    };
    let kprobe = format!("{:?}", ProgramSection::KProbe);
    let raw_tp = format!("{:?}", ProgramSection::RawTracePoint);
    for name in contract::KPROBE_PROGRAMS.iter().chain(&[
        contract::KPROBE_SKB_0_REASON_1,
        contract::KPROBE_SKB_1_REASON_2,
        contract::KPROBE_SKB_0_FREE,
        contract::KPROBE_UNTRACK_0,
        contract::KPROBE_NON_SKB,
        contract::KPROBE_BPF_HELPER,
        contract::KPROBE_COPY_ENTRY,
    ]) {
        assert_eq!(kind(name), kprobe, "{name}");
    }
    assert_eq!(
        kind(contract::KRETPROBE_COPY),
        format!("{:?}", ProgramSection::KRetProbe)
    );
    for name in contract::RAW_TP_PROGRAMS.iter().chain(&[
        contract::RAW_TP_SKB_0_REASON_2,
        contract::RAW_TP_SKB_0_REASON_2_FREE,
        contract::RAW_TP_SKB_0_FREE,
        contract::RAW_TP_UNTRACK_0,
        contract::FILTER_TEST_PROGRAM,
    ]) {
        assert_eq!(kind(name), raw_tp, "{name}");
    }
    for name in [
        contract::FEXIT_COPY_OF_2,
        contract::FEXIT_COPY_OF_4,
        contract::FEXIT_NFT_DO_CHAIN,
    ]
    .iter()
    .chain(&contract::FEXIT_PSKB)
    {
        assert!(kind(name).starts_with("FExit"), "{name}: {}", kind(name));
    }
    for name in contract::FENTRY_PSKB
        .into_iter()
        .chain([contract::FENTRY_NFT_DO_CHAIN])
    {
        assert!(kind(name).starts_with("FEntry"), "{name}: {}", kind(name));
    }
}

#[test]
fn maps_exist_with_their_types() {
    let obj = parsed();
    for (name, ty) in [
        (contract::EVENTS_MAP, bpf_map_type::BPF_MAP_TYPE_RINGBUF),
        (contract::LOST_MAP, bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY),
        (contract::FILTER_TEST_MAP, bpf_map_type::BPF_MAP_TYPE_ARRAY),
        (contract::TRACKED_MAP, bpf_map_type::BPF_MAP_TYPE_HASH),
        (
            contract::TRACK_FULL_MAP,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        ),
        (
            contract::PSKB_PENDING_MAP,
            bpf_map_type::BPF_MAP_TYPE_LRU_HASH,
        ),
        (
            contract::COPY_PENDING_MAP,
            bpf_map_type::BPF_MAP_TYPE_LRU_HASH,
        ),
        (contract::STACK_SKB_MAP, bpf_map_type::BPF_MAP_TYPE_HASH),
        (contract::SKB_STACK_MAP, bpf_map_type::BPF_MAP_TYPE_HASH),
        (contract::STACKS_MAP, bpf_map_type::BPF_MAP_TYPE_STACK_TRACE),
        (
            contract::SKB_METADATA_MAP,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        ),
        (
            contract::PACKETS_MAP,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        ),
        (contract::NF_ACTIVE_MAP, bpf_map_type::BPF_MAP_TYPE_LRU_HASH),
        (
            contract::NF_SCRATCH_MAP,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        ),
        (
            contract::NETFILTER_MAP,
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
        ),
    ] {
        let map = obj
            .maps
            .get(name)
            .unwrap_or_else(|| panic!("no map {name}"));
        assert_eq!(map.map_type(), ty as u32, "{name}");
    }
    let test_map = &obj.maps[contract::FILTER_TEST_MAP];
    assert_eq!(
        test_map.value_size() as usize,
        size_of::<FilterTestPacket>()
    );
}

#[test]
fn globals_and_stubs_exist_with_their_sizes() {
    let bytes = embedded_object().unwrap();
    let elf = object::read::File::parse(bytes).unwrap();
    let symbol = |name: &str| {
        elf.symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no symbol {name}"))
    };
    for (name, size) in [
        (contract::OFFSETS_GLOBAL, size_of::<Offsets>()),
        (contract::CONFIG_GLOBAL, size_of::<Config>()),
    ] {
        let sym = symbol(name);
        assert_eq!(sym.size() as usize, size, "{name}");
        let section = elf.section_by_index(sym.section_index().unwrap()).unwrap();
        assert!(
            section.name().unwrap().starts_with(".rodata"),
            "{name} must be a read-only global"
        );
    }
    for stub in contract::STUBS {
        let sym = symbol(stub.symbol);
        let section = elf.section_by_index(sym.section_index().unwrap()).unwrap();
        assert_eq!(section.name().unwrap(), stub.section, "{}", stub.symbol);
        assert_eq!(
            sym.size(),
            section.size(),
            "{} is alone in its section",
            stub.symbol
        );
    }
}
