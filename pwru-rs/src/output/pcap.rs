//! `--output-pcap`: every traced event that carries packet bytes becomes a pcapng Enhanced
//! Packet Block (pcap-parser's serializer), so Wireshark and tcpdump show the bytes as the kernel
//! held them at each hook, with the hook in the packet comment. One Interface Description Block
//! per (netns, ifindex, link type), named after the device, added when first seen.

use std::{
    borrow::Cow,
    collections::HashMap,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use pcap_parser::{
    pcapng::{EnhancedPacketBlock, InterfaceDescriptionBlock, SectionHeaderBlock},
    Linktype, OptionCode, PcapNGOption, ToVec,
};

use super::{write_func, write_hex, WallClock};
use crate::events::Event;

pub struct PcapWriter {
    out: BufWriter<File>,
    clock: WallClock,
    snaplen: u32,
    /// (netns, ifindex, link type) → interface id, in the order their blocks were written.
    interfaces: HashMap<(u32, u32, u32), u32>,
    comment: Vec<u8>,
}

fn option(code: OptionCode, value: Vec<u8>) -> PcapNGOption<'static> {
    PcapNGOption {
        code,
        len: value.len() as u16,
        value: Cow::Owned(value),
    }
}

fn serialize(block: &mut impl ToVec) -> std::io::Result<Vec<u8>> {
    block
        .to_vec()
        .map_err(|e| std::io::Error::other(format!("pcapng: {e:?}")))
}

impl PcapWriter {
    /// Creates `path` (replacing it) and writes the section header.
    pub fn create(path: &Path, clock: WallClock, snaplen: u32) -> std::io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 16, File::create(path)?);
        let mut shb = SectionHeaderBlock {
            block_type: 0,
            block_len1: 0,
            bom: 0,
            major_version: 1,
            minor_version: 0,
            section_len: -1,
            options: vec![option(
                OptionCode::ShbUserAppl,
                format!("pwru-rs {}", env!("CARGO_PKG_VERSION")).into_bytes(),
            )],
            block_len2: 0,
        };
        out.write_all(&serialize(&mut shb)?)?;
        Ok(Self {
            out,
            clock,
            snaplen,
            interfaces: HashMap::new(),
            comment: Vec::new(),
        })
    }

    /// Writes `e` as a packet when it carries bytes (an skb without a MAC or network header
    /// has none), at the wall-clock time of its kernel time.
    pub fn write(&mut self, e: &Event<'_>) -> std::io::Result<()> {
        self.write_at(e, self.clock.wall_ns(e.ts_ns))
    }

    /// [`write`](Self::write) at wall-clock time `ts` (ns since the epoch): a replayed trace's.
    pub fn write_at(&mut self, e: &Event<'_>, ts: u64) -> std::io::Result<()> {
        let Some(packet) = e.packet else {
            return Ok(());
        };
        let key = (e.netns, e.ifindex, packet.link);
        let if_id = match self.interfaces.get(&key) {
            Some(&id) => id,
            None => self.add_interface(e, packet.link)?,
        };
        self.comment.clear();
        self.comment.extend_from_slice(b"func=");
        write_func(e, &mut self.comment);
        self.comment.extend_from_slice(b" skb=");
        write_hex(&mut self.comment, e.skb);
        let _ = write!(
            self.comment,
            " netns={} iface={}:{} mark={:#x}",
            e.netns,
            String::from_utf8_lossy(e.ifname),
            e.ifindex,
            e.mark
        );
        if let Some(reason) = &e.reason {
            self.comment.extend_from_slice(b" reason=");
            super::write_reason(reason, &mut self.comment);
        }
        let mut epb = EnhancedPacketBlock {
            block_type: 0,
            block_len1: 0,
            if_id,
            ts_high: (ts >> 32) as u32,
            ts_low: ts as u32,
            caplen: packet.bytes.len() as u32,
            origlen: packet.orig_len,
            data: packet.bytes,
            options: vec![PcapNGOption {
                code: OptionCode::Comment,
                len: self.comment.len() as u16,
                value: Cow::Borrowed(&self.comment),
            }],
            block_len2: 0,
        };
        let block = serialize(&mut epb)?;
        self.out.write_all(&block)
    }

    fn add_interface(&mut self, e: &Event<'_>, link: u32) -> std::io::Result<u32> {
        let id = self.interfaces.len() as u32;
        let name = if e.ifname.is_empty() {
            format!("ifindex{}", e.ifindex)
        } else {
            String::from_utf8_lossy(e.ifname).into_owned()
        };
        let mut idb = InterfaceDescriptionBlock {
            block_type: 0,
            block_len1: 0,
            linktype: Linktype(link as i32),
            reserved: 0,
            snaplen: self.snaplen,
            options: vec![
                option(OptionCode::IfName, name.into_bytes()),
                option(
                    OptionCode::IfDescription,
                    format!("netns {} ifindex {}", e.netns, e.ifindex).into_bytes(),
                ),
            ],
            block_len2: 0,
            // Nanoseconds, as the kernel's clock.
            if_tsresol: 9,
            if_tsoffset: 0,
        };
        self.out.write_all(&serialize(&mut idb)?)?;
        self.interfaces.insert((e.netns, e.ifindex, link), id);
        Ok(id)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use pcap_parser::pcapng::{parse_pcapng, Block};

    use super::*;
    use crate::events::{PacketBytes, Reason};

    fn event<'a>(ifname: &'a [u8], ifindex: u32, packet: Option<PacketBytes<'a>>) -> Event<'a> {
        Event {
            skb: 0xffff_8880_0a1b_2c00,
            reason: Some(Reason {
                code: 3,
                name: Some("SKB_DROP_REASON_NO_SOCKET"),
            }),
            netns: 4_026_531_840,
            mark: 0x42,
            ifindex,
            ifname,
            packet,
            ..Event::sample(0, "kfree_skb", 1_000_000_007)
        }
    }

    #[test]
    fn packets_read_back_with_interfaces_times_and_comments() {
        let path = std::env::temp_dir().join(format!("pwru-rs-unit-{}.pcapng", std::process::id()));
        let frame = [0xaau8; 30];
        let clock = WallClock::fixed(5_000_000_000, 0);
        let mut w = PcapWriter::create(&path, clock, 64).unwrap();
        let eth = |len| PacketBytes {
            link: pwru_rs_common::record::LINK_ETHERNET,
            orig_len: len,
            bytes: &frame,
        };
        w.write(&event(b"veth0", 7, Some(eth(98)))).unwrap();
        // Same device and link type: no new interface. Another link type: a second one.
        w.write(&event(b"veth0", 7, Some(eth(60)))).unwrap();
        let raw = PacketBytes {
            link: pwru_rs_common::record::LINK_RAW,
            orig_len: 30,
            bytes: &frame[..30],
        };
        w.write(&event(b"", 0, Some(raw))).unwrap();
        // Nothing to write without bytes.
        w.write(&event(b"veth0", 7, None)).unwrap();
        w.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);

        let (rest, capture) = parse_pcapng(&bytes).expect("valid pcapng");
        assert!(rest.is_empty());
        let blocks = &capture.sections[0].blocks;
        let idbs: Vec<_> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::InterfaceDescription(i) => Some(i),
                _ => None,
            })
            .collect();
        let epbs: Vec<_> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::EnhancedPacket(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(idbs.len(), 2);
        assert_eq!(epbs.len(), 3);
        assert_eq!(idbs[0].linktype, Linktype::ETHERNET);
        assert_eq!(idbs[1].linktype, Linktype::RAW);
        let opt = |options: &[PcapNGOption], code| {
            options
                .iter()
                .find(|o| o.code == code)
                .map(|o| String::from_utf8_lossy(o.as_bytes().unwrap()).into_owned())
        };
        assert_eq!(
            opt(&idbs[0].options, OptionCode::IfName).as_deref(),
            Some("veth0")
        );
        assert_eq!(
            opt(&idbs[1].options, OptionCode::IfName).as_deref(),
            Some("ifindex0")
        );
        assert_eq!(
            opt(&idbs[0].options, OptionCode::IfDescription).as_deref(),
            Some("netns 4026531840 ifindex 7")
        );
        assert_eq!([epbs[0].if_id, epbs[1].if_id, epbs[2].if_id], [0, 0, 1]);
        assert_eq!((epbs[0].caplen, epbs[0].origlen), (30, 98));
        assert_eq!(&epbs[0].data[..30], &frame);
        // Wall-clock ns: the kernel time plus the clock's offset.
        let ts = ((epbs[0].ts_high as u64) << 32) | epbs[0].ts_low as u64;
        assert_eq!(ts, 6_000_000_007);
        assert_eq!(
            opt(&epbs[0].options, OptionCode::Comment).as_deref(),
            Some(
                "func=kfree_skb(SKB_DROP_REASON_NO_SOCKET) skb=0xffff88800a1b2c00 \
                 netns=4026531840 iface=veth0:7 mark=0x42 reason=SKB_DROP_REASON_NO_SOCKET"
            )
        );
    }

    /// Userspace cost per packet. Run with:
    /// `cargo test --release -p pwru-rs --lib output::pcap::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_writer() {
        let frame = [0x55u8; 256];
        let e = event(
            b"eth0",
            2,
            Some(PacketBytes {
                link: pwru_rs_common::record::LINK_ETHERNET,
                orig_len: 1514,
                bytes: &frame,
            }),
        );
        let mut w = PcapWriter::create(Path::new("/dev/null"), WallClock::now(), 256).unwrap();
        let n = 1_000_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            w.write(&e).unwrap();
        }
        w.flush().unwrap();
        println!(
            "pcap writer: {:.0} ns per 256-byte packet",
            started.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
