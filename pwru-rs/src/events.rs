//! Reading events from the kernel's ring buffer until told to stop.

use std::future::Future;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use pwru_rs_common::Event;
use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
    #[error("waiting on the ring buffer: {0}")]
    Poll(std::io::Error),
    #[error("writing output: {0}")]
    Write(std::io::Error),
}

/// Where events go. `consume` returns false to stop reading (e.g. `--output-limit-lines`).
pub trait Sink {
    fn consume(&mut self, event: &Event) -> std::io::Result<bool>;
    /// Called after each drained batch, so output is timely without a write per event.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Limit,
}

/// How often the ring buffer is drained without a wake-up from the kernel.
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

/// Drains `ring` into `sink` until `stop` resolves or the sink has had enough.
/// Returns the number of events received.
pub async fn run(
    ring: RingBuf<MapData>,
    sink: &mut impl Sink,
    stop: impl Future<Output = ()>,
) -> Result<(u64, StopReason), EventsError> {
    // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open while registered.
    let mut ring =
        unsafe { AsyncFd::register(ring) }.map_err(|e| EventsError::Poll(e.into_parts().1))?;
    let mut received = 0u64;
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
                let more = drain(guard.get_inner_mut(), sink, &mut received)?;
                guard.clear_ready();
                more
            }
            _ = tick.tick() => drain(ring.get_mut(), sink, &mut received)?,
        };
        if !more {
            return Ok((received, StopReason::Limit));
        }
    }
    // Print what was already in the ring buffer when the signal came.
    drain(ring.get_mut(), sink, &mut received)?;
    Ok((received, StopReason::Signal))
}

/// Hands every waiting event to `sink`, then flushes it. False when the sink wants no more.
fn drain(
    ring: &mut RingBuf<MapData>,
    sink: &mut impl Sink,
    received: &mut u64,
) -> Result<bool, EventsError> {
    let mut more = true;
    while let Some(item) = ring.next() {
        let Some(event) = decode(&item) else {
            log::warn!("ignoring a {}-byte ring buffer record", item.len());
            continue;
        };
        *received += 1;
        if !sink.consume(&event).map_err(EventsError::Write)? {
            more = false;
            break;
        }
    }
    sink.flush().map_err(EventsError::Write)?;
    Ok(more)
}

pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: length checked; Event is plain integers, any bit pattern is valid; records are only
    // 8-byte aligned by the kernel, so read unaligned to be safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// Events the kernel side could not hand over because the ring buffer was full, summed over CPUs.
pub fn lost_events(lost: &PerCpuArray<MapData, u64>) -> Result<u64, EventsError> {
    let per_cpu = lost
        .get(&0, 0)
        .map_err(|e| EventsError::Map(crate::loader::LOST_MAP, e))?;
    Ok(per_cpu.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_length_and_reads_fields() {
        let mut ev = Event::zeroed();
        ev.skb = 0xffff_8880_1234_5678;
        ev.len = 98;
        ev.sport = 443;
        // SAFETY: viewing a repr(C) integer struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&ev as *const Event).cast::<u8>(), size_of::<Event>())
        };
        let mut unaligned = vec![0u8; bytes.len() + 1];
        unaligned[1..].copy_from_slice(bytes);
        assert_eq!(decode(&unaligned[1..]), Some(ev));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
    }
}
