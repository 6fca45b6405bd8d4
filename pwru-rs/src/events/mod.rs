//! From the kernel's ring buffer to the sinks: read each record, decode it ([`decode`]), resolve
//! it into an [`Event`] ([`Enricher`]), hand it to a [`Sink`] (text, JSON, and later formats).

mod decode;
mod enrich;
mod model;
pub mod stacks;

use std::future::Future;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use tokio::io::unix::AsyncFd;

pub use decode::{decode, encode, encode_with, AlignedRecord, DecodeError, Record};
pub use enrich::{Enricher, HookTable};
pub use model::{
    BpfMapAccess, Dump, Event, Frame, Hook, MetaValue, MetadataField, NetfilterChain, PacketBytes,
    Reason, SkbMetadata, Stack, Stamp, TrackedBy, Tuple, ValueKind, Verdict, XdpPacket,
};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
    #[error("waiting on the ring buffer: {0}")]
    Poll(std::io::Error),
    #[error("writing output: {0}")]
    Write(std::io::Error),
}

/// Where events go. `consume` returns false to stop reading (e.g. `--output-limit-lines`).
pub trait Sink {
    fn consume(&mut self, event: &Event<'_>) -> std::io::Result<bool>;
    /// Called after each drained batch, so output is timely without a write per event.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Limit,
    /// The reader of the output went away (`pwru-rs … | head`): a normal end, not an error.
    OutputClosed,
}

/// What reading saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records decoded and handed on.
    pub received: u64,
    /// Records that did not decode (logged once each kind, never printed).
    pub malformed: u64,
}

/// How often the ring buffer is drained without a wake-up from the kernel.
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

/// Decoding, enrichment and the sink, in that order.
pub struct Pipeline<'s, S: Sink> {
    pub enricher: Enricher,
    pub sink: &'s mut S,
    pub counts: Counts,
    last_error: Option<DecodeError>,
    /// For records that are not 8-byte aligned (the kernel's are).
    realigned: AlignedRecord,
    /// `crate::fault::PANIC_AFTER`.
    panic_after: Option<u64>,
}

impl<'s, S: Sink> Pipeline<'s, S> {
    pub fn new(enricher: Enricher, sink: &'s mut S) -> Self {
        Self {
            enricher,
            sink,
            counts: Counts::default(),
            last_error: None,
            realigned: AlignedRecord::default(),
            panic_after: crate::fault::panic_after(),
        }
    }

    /// Handles one ring-buffer record; false when the sink wants no more.
    #[inline]
    pub fn push(&mut self, bytes: &[u8]) -> Result<bool, EventsError> {
        let bytes = if (bytes.as_ptr() as usize).is_multiple_of(8) {
            bytes
        } else {
            self.realigned.copy_of(bytes)
        };
        let record = match decode(bytes) {
            Ok(record) => record,
            Err(e) => {
                self.counts.malformed += 1;
                if self.last_error != Some(e) {
                    log::warn!("ignoring a malformed {}-byte record: {e}", bytes.len());
                    self.last_error = Some(e);
                }
                return Ok(true);
            }
        };
        self.counts.received += 1;
        if self.panic_after.is_some_and(|n| self.counts.received > n) {
            panic!("{} reached", crate::fault::PANIC_AFTER);
        }
        let event = self.enricher.enrich(&record);
        self.sink.consume(&event).map_err(EventsError::Write)
    }

    pub fn flush(&mut self) -> Result<(), EventsError> {
        self.sink.flush().map_err(EventsError::Write)
    }
}

/// Drains `ring` into `pipeline` until `stop` resolves, the sink has had enough or its reader
/// went away.
pub async fn run<S: Sink>(
    ring: RingBuf<MapData>,
    pipeline: &mut Pipeline<'_, S>,
    stop: impl Future<Output = ()>,
) -> Result<StopReason, EventsError> {
    match run_until(ring, pipeline, stop).await {
        Err(EventsError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(StopReason::OutputClosed)
        }
        other => other,
    }
}

async fn run_until<S: Sink>(
    ring: RingBuf<MapData>,
    pipeline: &mut Pipeline<'_, S>,
    stop: impl Future<Output = ()>,
) -> Result<StopReason, EventsError> {
    // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open while registered.
    let mut ring =
        unsafe { AsyncFd::register(ring) }.map_err(|e| EventsError::Poll(e.into_parts().1))?;
    tokio::pin!(stop);
    // The kernel side wakes us only once `Config::wakeup_bytes` wait; the rest is drained on
    // this tick, so a lone packet still shows within a few tens of milliseconds.
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let more = tokio::select! {
            biased;
            () = &mut stop => break,
            guard = ring.readable_mut() => {
                let mut guard = guard.map_err(EventsError::Poll)?;
                let more = drain(guard.get_inner_mut(), pipeline)?;
                guard.clear_ready();
                more
            }
            _ = tick.tick() => drain(ring.get_mut(), pipeline)?,
        };
        if !more {
            return Ok(StopReason::Limit);
        }
    }
    // Print what was already in the ring buffer when the signal came.
    drain(ring.get_mut(), pipeline)?;
    Ok(StopReason::Signal)
}

/// Hands every waiting record to the pipeline, then flushes it. False when the sink wants no more.
fn drain<S: Sink>(
    ring: &mut RingBuf<MapData>,
    pipeline: &mut Pipeline<'_, S>,
) -> Result<bool, EventsError> {
    let mut more = true;
    while let Some(item) = ring.next() {
        if !pipeline.push(&item)? {
            more = false;
            break;
        }
    }
    pipeline.flush()?;
    Ok(more)
}

/// A per-CPU counter of the kernel side (`LOST`: ring buffer full; `TRACK_FULL`), summed over CPUs.
pub fn per_cpu_count(
    counter: &PerCpuArray<MapData, u64>,
    name: &'static str,
) -> Result<u64, EventsError> {
    let per_cpu = counter.get(&0, 0).map_err(|e| EventsError::Map(name, e))?;
    Ok(per_cpu.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cli::TimestampChoice, output::WallClock};

    struct Collect(Vec<u64>, usize);
    impl Sink for Collect {
        fn consume(&mut self, event: &Event<'_>) -> std::io::Result<bool> {
            self.0.push(event.skb);
            Ok(self.0.len() < self.1)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counts_malformed_records_and_stops_when_the_sink_says() {
        let mut sink = Collect(Vec::new(), 2);
        let enricher = Enricher::new(
            HookTable::default(),
            Default::default(),
            TimestampChoice::None,
            WallClock::fixed(0, 0),
        );
        let mut pipeline = Pipeline::new(enricher, &mut sink);
        let meta = pwru_rs_common::record::Meta {
            skb: 7,
            ..Default::default()
        };
        let good = encode(&meta, None);
        assert!(pipeline.push(&good).unwrap());
        assert!(
            pipeline.push(&good[..10]).unwrap(),
            "a bad record is skipped"
        );
        assert!(pipeline.push(&[0xff; 200]).unwrap());
        assert!(!pipeline.push(&good).unwrap(), "the sink had enough");
        assert_eq!(
            pipeline.counts,
            Counts {
                received: 2,
                malformed: 2
            }
        );
        assert_eq!(sink.0, [7, 7]);
    }
}
