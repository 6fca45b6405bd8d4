//! Text or JSON lines into a writer: formatted into one buffer, written once per drained batch.

use std::io::Write;

use super::{group::Grouper, pcap::PcapWriter, summary::Summary, Printer};
use crate::events::{Event, Sink};

pub struct OutputSink {
    printer: Printer,
    writer: Box<dyn Write>,
    buf: Vec<u8>,
    remaining: Option<u64>,
    /// `--output-pcap`, beside the text or JSON output.
    pcap: Option<PcapWriter>,
    /// `--summary`, and whether it is written as JSON.
    summary: Option<(Summary, bool)>,
    /// `--output-group-by-skb`.
    grouper: Option<Grouper>,
}

/// Write out once this much is buffered, even within a batch.
const FLUSH_AT: usize = 1 << 16;

impl OutputSink {
    /// `limit`: stop after this many events (`--output-limit-lines`; 0 or none: no limit).
    pub fn new(printer: Printer, writer: Box<dyn Write>, limit: Option<u64>) -> Self {
        let mut buf = Vec::with_capacity(FLUSH_AT);
        printer.write_header(&mut buf);
        Self {
            printer,
            writer,
            buf,
            // pwru's convention: 0 means no limit.
            remaining: limit.filter(|&n| n > 0),
            pcap: None,
            summary: None,
            grouper: None,
        }
    }

    /// With `--output-group-by-skb`: events are written per packet, as blocks.
    pub fn with_grouper(mut self, grouper: Option<Grouper>) -> Self {
        self.grouper = grouper;
        self
    }

    /// With `--summary`: events are counted for [`finish`](Self::finish).
    pub fn with_summary(mut self, on: bool, json: bool) -> Self {
        self.summary = on.then(|| (Summary::default(), json));
        self
    }

    /// Writes the summary (with `--summary`) after the trace, and flushes.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(grouper) = &mut self.grouper {
            grouper.finish(&mut self.buf);
            if grouper.flushed_early > 0 {
                log::warn!(
                    "--output-group-by-skb: {} packets written before their end (more held at once than --output-group-max-packets)",
                    grouper.flushed_early
                );
            }
        }
        self.flush()?;
        if let Some((summary, json)) = self.summary.take() {
            super::summary::write(&summary.finish(), json, &mut self.writer)?;
            self.writer.flush()?;
        }
        Ok(())
    }

    /// With `--output-pcap`: each event's packet goes there too.
    pub fn with_pcap(mut self, pcap: Option<PcapWriter>) -> Self {
        self.pcap = pcap;
        self
    }
}

impl Sink for OutputSink {
    fn consume(&mut self, event: &Event<'_>) -> std::io::Result<bool> {
        match &mut self.grouper {
            Some(grouper) => grouper.add(&self.printer, event, &mut self.buf),
            None => self.printer.write_event(event, &mut self.buf),
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.write(event)?;
        }
        if let Some((summary, _)) = &mut self.summary {
            summary.record(event);
        }
        if self.buf.len() >= FLUSH_AT {
            self.writer.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(match &mut self.remaining {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n > 0
            }
            None => true,
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(grouper) = &mut self.grouper {
            grouper.expire(monotonic_ns(), &mut self.buf);
        }
        self.writer.write_all(&self.buf)?;
        self.buf.clear();
        if let Some(pcap) = &mut self.pcap {
            pcap.flush()?;
        }
        self.writer.flush()
    }
}

/// CLOCK_MONOTONIC in ns: the clock of the events' kernel times (`bpf_ktime_get_ns`).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
