//! Ring-buffer records → [`Record`]: every length checked before anything is read, so a short,
//! long or garbled record is an error to count, never a panic or a misread. The sections are
//! read in place (the kernel aligns ring-buffer records to 8 bytes); [`AlignedRecord`] copies a
//! record that is not.

use super::{Dump, PacketBytes};
use pwru_rs_common::record::{
    BpfMap, Cb, DumpHeader, Meta, Netfilter, PacketHeader, RecordHeader, SectionHeader, Tuple, Xdp,
    KIND_SKB, SECTION_BPF_MAP, SECTION_CB, SECTION_META, SECTION_NETFILTER, SECTION_PACKET,
    SECTION_PADDING, SECTION_SHINFO_DUMP, SECTION_SKB_DUMP, SECTION_SKB_METADATA,
    SECTION_TUNNEL_TUPLE, SECTION_TUPLE, SECTION_XDP, VERSION,
};

/// The sections of one skb record, where they are in the ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub meta: &'a Meta,
    pub tuple: Option<&'a Tuple>,
    pub cb: Option<&'a Cb>,
    pub skb_dump: Option<Dump<'a>>,
    pub shinfo_dump: Option<Dump<'a>>,
    /// Present when the packet is an XDP program's (`--filter-trace-xdp`).
    pub xdp: Option<&'a Xdp>,
    /// `--output-pcap`: the packet's first bytes.
    pub packet: Option<PacketBytes<'a>>,
    /// `--output-skb-metadata`: the values' little-endian words.
    pub skb_metadata: Option<&'a [u8]>,
    /// `--output-tunnel`: a tunnel packet's inner tuple.
    pub tunnel_tuple: Option<&'a Tuple>,
    /// `--output-netfilter`: the base chain of an `nft_do_chain` exit.
    pub netfilter: Option<&'a Netfilter>,
    /// `--output-bpfmap`: a traced program's map operation.
    pub bpf_map: Option<&'a BpfMap>,
}

/// Section payloads need this alignment to be read in place.
const ALIGN: usize = 8;
const _: () = assert!(align_of::<Meta>() <= ALIGN && align_of::<Tuple>() <= ALIGN);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record header says {header} bytes, the ring buffer holds {actual}")]
    Length { header: u32, actual: usize },
    #[error("record kind {0} is unknown")]
    Kind(u16),
    #[error("record version {0}, this pwru-rs reads version {VERSION}")]
    Version(u16),
    #[error("section at byte {at} runs past the end of the record")]
    Truncated { at: usize },
    #[error("section kind {kind} has {len} bytes, expected {expected}")]
    SectionSize {
        kind: u16,
        len: u32,
        expected: usize,
    },
    #[error("section kind {0} appears twice")]
    Duplicate(u16),
    #[error("the record has no metadata section")]
    NoMeta,
    #[error("the record is not 8-byte aligned")]
    Misaligned,
}

/// Decodes one record. Section kinds this version does not know are skipped (a newer kernel
/// side may add some); known ones must have exactly their size.
#[inline]
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    if !(bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        return Err(DecodeError::Misaligned);
    }
    let header: &RecordHeader = view(bytes, 0).ok_or(DecodeError::Short(bytes.len()))?;
    // The ring buffer rounds records up to 8 bytes; the header has the real length.
    if header.len as usize > bytes.len() || (header.len as usize) < size_of::<RecordHeader>() {
        return Err(DecodeError::Length {
            header: header.len,
            actual: bytes.len(),
        });
    }
    if header.kind != KIND_SKB {
        return Err(DecodeError::Kind(header.kind));
    }
    if header.version != VERSION {
        return Err(DecodeError::Version(header.version));
    }
    let bytes = &bytes[..header.len as usize];
    if let Some(record) = decode_usual(bytes) {
        return Ok(record);
    }
    decode_sections(bytes)
}

const META_HEADER: SectionHeader = SectionHeader {
    kind: SECTION_META,
    _reserved: 0,
    len: size_of::<Meta>() as u32,
};
const PADDING_HEADER: SectionHeader = SectionHeader {
    kind: SECTION_PADDING,
    _reserved: 0,
    len: size_of::<Tuple>() as u32,
};
const TUPLE_HEADER: SectionHeader = SectionHeader {
    kind: SECTION_TUPLE,
    _reserved: 0,
    len: size_of::<Tuple>() as u32,
};

/// The layouts the kernel side writes (`SkbRecord`, with or without its tuple), read at fixed
/// offsets: the hot path, one comparison per section header instead of the walk.
#[inline]
fn decode_usual(bytes: &[u8]) -> Option<Record<'_>> {
    const META_AT: usize = size_of::<RecordHeader>();
    const TUPLE_AT: usize = META_AT + size_of::<SectionHeader>() + size_of::<Meta>();
    const END: usize = TUPLE_AT + size_of::<SectionHeader>() + size_of::<Tuple>();
    const _: () = assert!(META_AT.is_multiple_of(ALIGN) && TUPLE_AT.is_multiple_of(ALIGN));
    let has_tuple = match bytes.len() {
        TUPLE_AT => false,
        END => true,
        _ => return None,
    };
    // SAFETY: `decode` checked that `bytes` is ALIGN-aligned, the offsets are multiples of ALIGN
    // and in bounds (the length is one of the two above); the types are plain integers.
    let at = |offset: usize| unsafe { bytes.as_ptr().add(offset) };
    let meta_header = unsafe { &*at(META_AT).cast::<SectionHeader>() };
    if *meta_header != META_HEADER {
        return None;
    }
    let meta = unsafe { &*at(META_AT + size_of::<SectionHeader>()).cast::<Meta>() };
    let tuple = if has_tuple {
        // A record built in place has the tuple's bytes either way: a tuple, or padding.
        match unsafe { *at(TUPLE_AT).cast::<SectionHeader>() } {
            TUPLE_HEADER => {
                Some(unsafe { &*at(TUPLE_AT + size_of::<SectionHeader>()).cast::<Tuple>() })
            }
            PADDING_HEADER => None,
            _ => return None,
        }
    } else {
        None
    };
    Some(Record {
        meta,
        tuple,
        cb: None,
        skb_dump: None,
        shinfo_dump: None,
        xdp: None,
        packet: None,
        skb_metadata: None,
        tunnel_tuple: None,
        netfilter: None,
        bpf_map: None,
    })
}

/// Any well-formed record: sections in any order, unknown kinds skipped.
fn decode_sections(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let mut at = size_of::<RecordHeader>();
    let (mut meta, mut tuple, mut cb, mut xdp) = (None, None, None, None);
    let (mut tunnel_tuple, mut netfilter, mut bpf_map) = (None, None, None);
    let (mut skb_dump, mut shinfo_dump, mut packet, mut skb_metadata) = (None, None, None, None);
    while at < bytes.len() {
        let section: SectionHeader = *view(bytes, at).ok_or(DecodeError::Truncated { at })?;
        let payload = at + size_of::<SectionHeader>();
        let end = payload
            .checked_add(section.len as usize)
            .filter(|&end| end <= bytes.len())
            .ok_or(DecodeError::Truncated { at })?;
        match section.kind {
            SECTION_META => set_once(&mut meta, section, bytes, payload)?,
            SECTION_TUPLE => set_once(&mut tuple, section, bytes, payload)?,
            SECTION_TUNNEL_TUPLE => set_once(&mut tunnel_tuple, section, bytes, payload)?,
            SECTION_NETFILTER => set_once(&mut netfilter, section, bytes, payload)?,
            SECTION_BPF_MAP => set_once(&mut bpf_map, section, bytes, payload)?,
            SECTION_CB => set_once(&mut cb, section, bytes, payload)?,
            SECTION_XDP => set_once(&mut xdp, section, bytes, payload)?,
            SECTION_PACKET => packet_once(&mut packet, section, &bytes[payload..end])?,
            SECTION_SKB_DUMP => dump_once(&mut skb_dump, section, &bytes[payload..end])?,
            SECTION_SHINFO_DUMP => dump_once(&mut shinfo_dump, section, &bytes[payload..end])?,
            SECTION_SKB_METADATA => {
                if !section.len.is_multiple_of(8) {
                    return Err(DecodeError::SectionSize {
                        kind: section.kind,
                        len: section.len,
                        expected: section.len.next_multiple_of(8) as usize,
                    });
                }
                if skb_metadata.replace(&bytes[payload..end]).is_some() {
                    return Err(DecodeError::Duplicate(section.kind));
                }
            }
            _ => {}
        }
        // Payloads keep the 8-byte alignment the kernel side gives them.
        at = end.next_multiple_of(8);
    }
    Ok(Record {
        meta: meta.ok_or(DecodeError::NoMeta)?,
        tuple,
        cb,
        skb_dump,
        shinfo_dump,
        xdp,
        packet,
        skb_metadata,
        tunnel_tuple,
        netfilter,
        bpf_map,
    })
}

/// A section whose payload is a header `H` then bytes: `(len, full)` from the header must be the
/// bytes' length and at least that (the whole object's length, of which these bytes are the
/// first). `make` builds the slot's value from the header and the bytes.
fn header_then_bytes_once<'a, H: Copy, T>(
    slot: &mut Option<T>,
    section: SectionHeader,
    payload: &'a [u8],
    lengths: impl Fn(&H) -> (u32, u32),
    make: impl FnOnce(&H, &'a [u8]) -> T,
) -> Result<(), DecodeError> {
    let bad = || DecodeError::SectionSize {
        kind: section.kind,
        len: section.len,
        expected: size_of::<H>(),
    };
    let header: &H = view(payload, 0).ok_or_else(bad)?;
    let bytes = &payload[size_of::<H>()..];
    let (len, full) = lengths(header);
    if len as usize != bytes.len() || full < len {
        return Err(bad());
    }
    if slot.is_some() {
        return Err(DecodeError::Duplicate(section.kind));
    }
    *slot = Some(make(header, bytes));
    Ok(())
}

/// A packet section's payload: a [`PacketHeader`] whose `len` is the rest of the payload.
fn packet_once<'a>(
    slot: &mut Option<PacketBytes<'a>>,
    section: SectionHeader,
    payload: &'a [u8],
) -> Result<(), DecodeError> {
    header_then_bytes_once(
        slot,
        section,
        payload,
        |h: &PacketHeader| (h.len, h.orig_len),
        |h, bytes| PacketBytes {
            link: h.link,
            orig_len: h.orig_len,
            bytes,
        },
    )
}

/// A dump section's payload: a [`DumpHeader`] whose `len` is the rest of the payload.
fn dump_once<'a>(
    slot: &mut Option<Dump<'a>>,
    section: SectionHeader,
    payload: &'a [u8],
) -> Result<(), DecodeError> {
    header_then_bytes_once(
        slot,
        section,
        payload,
        |h: &DumpHeader| (h.len, h.full_len),
        |h, text| Dump {
            text,
            full_len: h.full_len,
        },
    )
}

fn set_once<'a, T: Copy>(
    slot: &mut Option<&'a T>,
    section: SectionHeader,
    bytes: &'a [u8],
    payload: usize,
) -> Result<(), DecodeError> {
    if section.len as usize != size_of::<T>() {
        return Err(DecodeError::SectionSize {
            kind: section.kind,
            len: section.len,
            expected: size_of::<T>(),
        });
    }
    if slot.is_some() {
        return Err(DecodeError::Duplicate(section.kind));
    }
    *slot = view(bytes, payload);
    Ok(())
}

/// The `T` at `at`, if the bytes are there and aligned for it. `T` must be plain integers (any
/// bit pattern valid): the record types are #[repr(C)] integer aggregates.
#[inline]
fn view<T: Copy>(bytes: &[u8], at: usize) -> Option<&T> {
    let end = at.checked_add(size_of::<T>())?;
    let src = bytes.get(at..end)?;
    if !(src.as_ptr() as usize).is_multiple_of(align_of::<T>()) {
        return None;
    }
    // SAFETY: in bounds and aligned (checked above); any bit pattern is a valid T; the borrow
    // of `bytes` keeps the memory alive and unchanged.
    Some(unsafe { &*src.as_ptr().cast::<T>() })
}

/// A record copied into 8-byte aligned storage, for bytes that are not (kept and reused, so
/// no allocation per record).
#[derive(Default)]
pub struct AlignedRecord {
    words: Vec<u64>,
    len: usize,
}

impl AlignedRecord {
    /// Copies `bytes` in; returns the aligned copy.
    pub fn copy_of(&mut self, bytes: &[u8]) -> &[u8] {
        self.words.clear();
        self.words.resize(bytes.len().div_ceil(8), 0);
        self.len = bytes.len();
        // SAFETY: u64 storage of at least bytes.len() bytes, viewed as bytes.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), bytes.len())
        };
        dst.copy_from_slice(bytes);
        dst
    }

    /// The last copy.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the u64 storage were written by `copy_of`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// The wire form of a record, as the kernel side writes it (tests and benchmarks).
pub fn encode(meta: &Meta, tuple: Option<&Tuple>) -> Vec<u8> {
    encode_with(meta, tuple, None, &[])
}

/// [`encode`] with the optional sections: `skb->cb` and dumps (`(section kind, text,
/// full length)`).
pub fn encode_with(
    meta: &Meta,
    tuple: Option<&Tuple>,
    cb: Option<&Cb>,
    dumps: &[(u16, &[u8], u32)],
) -> Vec<u8> {
    fn push<T: Copy>(out: &mut Vec<u8>, value: &T) {
        // SAFETY: viewing a #[repr(C)] integer aggregate without padding as bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
        out.extend_from_slice(bytes);
    }
    fn section<T: Copy>(out: &mut Vec<u8>, kind: u16, payload: &T) {
        push(
            out,
            &SectionHeader {
                kind,
                _reserved: 0,
                len: size_of::<T>() as u32,
            },
        );
        push(out, payload);
    }
    let mut out = Vec::with_capacity(256);
    push(&mut out, &RecordHeader::default());
    section(&mut out, SECTION_META, meta);
    if let Some(tuple) = tuple {
        section(&mut out, SECTION_TUPLE, tuple);
    }
    if let Some(cb) = cb {
        section(&mut out, SECTION_CB, cb);
    }
    for &(kind, text, full_len) in dumps {
        push(
            &mut out,
            &SectionHeader {
                kind,
                _reserved: 0,
                len: (size_of::<DumpHeader>() + text.len()) as u32,
            },
        );
        push(
            &mut out,
            &DumpHeader {
                len: text.len() as u32,
                full_len,
            },
        );
        out.extend_from_slice(text);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    let header = RecordHeader {
        kind: KIND_SKB,
        version: VERSION,
        len: out.len() as u32,
    };
    let mut head = Vec::new();
    push(&mut head, &header);
    out[..head.len()].copy_from_slice(&head);
    out
}

#[cfg(test)]
mod tests {
    use pwru_rs_common::record::{SkbRecord, IP_V4, SKB_RECORD_NO_TUPLE};

    use super::*;

    const META: usize = size_of::<Meta>();

    fn meta() -> Meta {
        Meta {
            skb: 0xffff_8880_1234_5678,
            len: 98,
            ..Default::default()
        }
    }

    fn tuple() -> Tuple {
        Tuple {
            ip_version: IP_V4,
            sport: 443,
            ..Default::default()
        }
    }

    /// `bytes` at an 8-aligned address, then decoded.
    fn decoded(bytes: &[u8]) -> Result<(Meta, Option<Tuple>), DecodeError> {
        let mut buf = AlignedRecord::default();
        let r = decode(buf.copy_of(bytes))?;
        Ok((*r.meta, r.tuple.copied()))
    }

    #[test]
    fn round_trips_and_matches_the_kernel_layout() {
        let bytes = encode(&meta(), Some(&tuple()));
        assert_eq!(
            bytes.len(),
            size_of::<SkbRecord>(),
            "same layout as SkbRecord"
        );
        // Padded by the ring buffer: still read right.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xee; 8]);
        assert_eq!(decoded(&padded), Ok((meta(), Some(tuple()))));
        let bytes = encode(&meta(), None);
        assert_eq!(bytes.len(), SKB_RECORD_NO_TUPLE);
        assert_eq!(decoded(&bytes), Ok((meta(), None)));
    }

    #[test]
    fn a_record_built_in_place_without_a_tuple_has_padding_there() {
        let mut bytes = encode(&meta(), Some(&tuple()));
        let at = SKB_RECORD_NO_TUPLE;
        bytes[at..at + 2].copy_from_slice(&SECTION_PADDING.to_le_bytes());
        bytes[at + 8..].fill(0xee);
        assert_eq!(decoded(&bytes), Ok((meta(), None)));
        // The same through the general walk (sections in another order would take it).
        let mut aligned = AlignedRecord::default();
        let r = decode_sections(aligned.copy_of(&bytes)).unwrap();
        assert_eq!((r.meta, r.tuple), (&meta(), None));
    }

    #[test]
    fn misaligned_bytes_are_refused_not_misread() {
        let bytes = encode(&meta(), None);
        let mut buf = vec![0u64; bytes.len() / 8 + 1];
        // SAFETY: viewing u64 storage as bytes.
        let raw =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) };
        raw[1..=bytes.len()].copy_from_slice(&bytes);
        assert_eq!(decode(&raw[1..=bytes.len()]), Err(DecodeError::Misaligned));
    }

    #[test]
    fn rejects_bad_records_without_panicking() {
        let good = encode(&meta(), Some(&tuple()));
        assert_eq!(decoded(&good[..4]), Err(DecodeError::Short(4)));
        assert!(matches!(
            decoded(&good[..good.len() - 1]),
            Err(DecodeError::Length { .. })
        ));
        let patched = |at: usize, value: &[u8]| {
            let mut b = good.clone();
            b[at..at + value.len()].copy_from_slice(value);
            decoded(&b)
        };
        assert_eq!(patched(0, &7u16.to_le_bytes()), Err(DecodeError::Kind(7)));
        assert_eq!(
            patched(2, &9u16.to_le_bytes()),
            Err(DecodeError::Version(9))
        );
        // The meta section claims one byte more than it has.
        assert!(matches!(
            patched(12, &97u32.to_le_bytes()),
            Err(DecodeError::SectionSize { .. })
        ));
        // The tuple section claims to run past the end.
        assert!(matches!(
            patched(8 + 8 + META + 4, &4000u32.to_le_bytes()),
            Err(DecodeError::Truncated { .. })
        ));
        // The tuple section relabelled as a second meta section.
        assert_eq!(
            patched(8 + 8 + META, &SECTION_META.to_le_bytes()),
            Err(DecodeError::SectionSize {
                kind: SECTION_META,
                len: 40,
                expected: META
            })
        );
        // Every prefix and every single-byte corruption decodes or errors; none panics.
        for n in 0..good.len() {
            let _ = decoded(&good[..n]);
            for v in [0u8, 1, 0x7f, 0xff] {
                let _ = patched(n, &[v]);
            }
        }
    }

    #[test]
    fn sections_in_another_order_decode_the_same() {
        let bytes = encode(&meta(), Some(&tuple()));
        // meta and tuple swapped: the walk, not the fixed-offset path, reads it.
        let (head, m, t) = (&bytes[..8], &bytes[8..16 + META], &bytes[16 + META..]);
        let swapped = [head, t, m].concat();
        let mut buf = AlignedRecord::default();
        assert_eq!(decode_usual(buf.copy_of(&swapped)), None);
        assert_eq!(decoded(&swapped), Ok((meta(), Some(tuple()))));
    }

    #[test]
    fn optional_sections_decode() {
        let cb = Cb {
            words: [1, 2, 3, 4, 5],
            _pad: 0,
        };
        let bytes = encode_with(
            &meta(),
            None,
            Some(&cb),
            &[
                (
                    SECTION_SKB_DUMP,
                    b"(struct sk_buff){\n .len = (unsigned int)98,\n}",
                    45,
                ),
                (SECTION_SHINFO_DUMP, b"cut", 4000),
            ],
        );
        let mut buf = AlignedRecord::default();
        let r = decode(buf.copy_of(&bytes)).unwrap();
        assert_eq!(r.cb, Some(&cb));
        assert_eq!(r.tuple, None);
        let skb = r.skb_dump.unwrap();
        assert!(skb.text.starts_with(b"(struct sk_buff){"));
        assert_eq!(skb.full_len, 45);
        assert_eq!(
            r.shinfo_dump,
            Some(Dump {
                text: b"cut",
                full_len: 4000
            })
        );
        // A dump header that disagrees with its section is refused.
        let mut bad = bytes.clone();
        let skb_at = 8 + (8 + META) + 32;
        bad[skb_at + 8..skb_at + 12].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(
            decode(buf.copy_of(&bad)),
            Err(DecodeError::SectionSize { .. })
        ));
    }

    #[test]
    fn skips_unknown_sections() {
        let mut bytes = encode(&meta(), Some(&tuple()));
        let extra = SectionHeader {
            kind: 99,
            _reserved: 0,
            len: 5,
        };
        // SAFETY: plain integers.
        let raw: [u8; 8] = unsafe { std::mem::transmute(extra) };
        bytes.extend_from_slice(&raw);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        let len = bytes.len() as u32;
        bytes[4..8].copy_from_slice(&len.to_le_bytes());
        assert_eq!(decoded(&bytes), Ok((meta(), Some(tuple()))));
    }

    #[test]
    fn xdp_records_decode_as_the_kernel_lays_them_out() {
        use pwru_rs_common::record::{XdpRecord, XDP_RECORD_NO_TUPLE};
        let xdp = Xdp {
            rx_queue: 3,
            _pad: 0,
        };
        let header = |kind, len: usize| SectionHeader {
            kind,
            _reserved: 0,
            len: len as u32,
        };
        let record = XdpRecord {
            header: RecordHeader {
                kind: KIND_SKB,
                version: VERSION,
                len: size_of::<XdpRecord>() as u32,
            },
            meta_header: header(SECTION_META, size_of::<Meta>()),
            meta: meta(),
            xdp_header: header(SECTION_XDP, size_of::<Xdp>()),
            xdp,
            tuple_header: header(SECTION_TUPLE, size_of::<Tuple>()),
            tuple: tuple(),
        };
        // SAFETY: plain integers without padding (sizes asserted in the common crate).
        let mut bytes: Vec<u8> = unsafe {
            std::slice::from_raw_parts(
                (&record as *const XdpRecord).cast::<u8>(),
                size_of::<XdpRecord>(),
            )
        }
        .to_vec();
        let mut buf = AlignedRecord::default();
        let r = decode(buf.copy_of(&bytes)).unwrap();
        assert_eq!(
            (r.meta, r.tuple, r.xdp),
            (&meta(), Some(&tuple()), Some(&xdp))
        );
        // Without its tuple: the first XDP_RECORD_NO_TUPLE bytes.
        bytes.truncate(XDP_RECORD_NO_TUPLE);
        bytes[4..8].copy_from_slice(&(XDP_RECORD_NO_TUPLE as u32).to_le_bytes());
        let r = decode(buf.copy_of(&bytes)).unwrap();
        assert_eq!((r.tuple, r.xdp), (None, Some(&xdp)));
    }

    #[test]
    fn packet_section_decodes_and_is_checked() {
        let with_packet = |len: u32, orig_len: u32, bytes: &[u8]| {
            let mut record = encode(&meta(), Some(&tuple()));
            let header = SectionHeader {
                kind: SECTION_PACKET,
                _reserved: 0,
                len: (size_of::<PacketHeader>() + bytes.len()) as u32,
            };
            let packet = PacketHeader {
                len,
                orig_len,
                link: 1,
                _pad: 0,
            };
            // SAFETY: plain integers.
            record.extend_from_slice(&unsafe {
                std::mem::transmute::<SectionHeader, [u8; 8]>(header)
            });
            record.extend_from_slice(&unsafe {
                std::mem::transmute::<PacketHeader, [u8; 16]>(packet)
            });
            record.extend_from_slice(bytes);
            record.resize(record.len().next_multiple_of(8), 0);
            let total = (record.len() - (8 - bytes.len() % 8) % 8) as u32;
            record[4..8].copy_from_slice(&total.to_le_bytes());
            record
        };
        let mut buf = AlignedRecord::default();
        let bytes = with_packet(5, 98, &[1, 2, 3, 4, 5]);
        let r = decode(buf.copy_of(&bytes)).unwrap();
        assert_eq!(
            r.packet,
            Some(PacketBytes {
                link: 1,
                orig_len: 98,
                bytes: &[1, 2, 3, 4, 5]
            })
        );
        assert_eq!(r.tuple, Some(&tuple()));
        // A length that disagrees with the bytes, or more bytes than the packet has: refused.
        let bytes = with_packet(4, 98, &[1, 2, 3, 4, 5]);
        assert!(matches!(
            decode(buf.copy_of(&bytes)),
            Err(DecodeError::SectionSize { .. })
        ));
        let bytes = with_packet(5, 3, &[1, 2, 3, 4, 5]);
        assert!(matches!(
            decode(buf.copy_of(&bytes)),
            Err(DecodeError::SectionSize { .. })
        ));
    }
}
