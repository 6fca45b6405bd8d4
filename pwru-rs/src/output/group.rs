//! `--output-group-by-skb`: one story per packet. Events are held per skb (with
//! `--filter-track-skb`, per lineage: an skb and the clones and copies made of it, by
//! `parent_skb`) and written as one block when the packet's life ends (every skb of the lineage
//! freed) or when it has been quiet for the timeout, with the time from each hook to the next
//! and, at the end, the drop if there was one.
//!
//! Bounded: at most `max_packets` packets are held at once; when one more comes, the one held
//! longest is written early, marked so, and counted.

use std::collections::{HashMap, VecDeque};

use super::{duration, is_life_end, write_hex, write_reason, Printer};
use crate::events::{Event, Hook};

pub struct Grouper {
    json: bool,
    max_packets: usize,
    timeout_ns: u64,
    /// Packets held, by group id.
    groups: HashMap<u64, Group>,
    /// skb → its packet's group id.
    skbs: HashMap<u64, u64>,
    /// (group id, time) of every event, oldest first: a group whose last event is the front's
    /// has been quiet longest (entries of groups touched since, or closed, are skipped).
    activity: VecDeque<(u64, u64)>,
    next_id: u64,
    /// Packets written before their end for lack of room.
    pub flushed_early: u64,
    line: Vec<u8>,
}

struct Group {
    /// The skb the packet was first seen as.
    root: u64,
    /// Every skb of the lineage seen.
    members: Vec<u64>,
    /// Its events, formatted, with their time and hook.
    events: Vec<Held>,
    /// skbs of the lineage whose life has not ended.
    open: usize,
    last_ns: u64,
    /// The drop, when the last event reported one: (function, reason).
    drop: Option<(String, String)>,
    /// `--output-netfilter`: the base chain the packet is in or was dropped by (nft's label,
    /// hook), which a drop is then blamed on.
    nf_drop: Option<(String, String)>,
}

struct Held {
    ts_ns: u64,
    func: String,
    bytes: Vec<u8>,
}

/// Why a packet's block is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Every skb of it was freed.
    End,
    /// Quiet for the timeout, or the trace stopped.
    Quiet,
    /// More packets than the bound.
    Room,
}

impl Grouper {
    pub fn new(json: bool, max_packets: usize, timeout_ns: u64) -> Self {
        Self {
            json,
            max_packets: max_packets.max(1),
            timeout_ns,
            groups: HashMap::new(),
            skbs: HashMap::new(),
            activity: VecDeque::new(),
            next_id: 0,
            flushed_early: 0,
            line: Vec::new(),
        }
    }

    /// Holds `e` (formatted by `printer`); writes into `out` the blocks this closes.
    pub fn add(&mut self, printer: &Printer, e: &Event<'_>, out: &mut Vec<u8>) {
        self.expire(e.ts_ns, out);
        let gid = match self.skbs.get(&e.skb) {
            Some(&gid) => gid,
            // A chain's exit after the chain freed what it dropped: that packet's block is
            // written, ending in the drop that names the chain.
            None if e.netfilter.is_some() && e.verdict.is_some() => return,
            None => {
                // A clone or copy joins its parent's packet.
                let parent = e.parent_skb.and_then(|p| self.skbs.get(&p).copied());
                let gid = match parent {
                    Some(gid) => {
                        if let Some(g) = self.groups.get_mut(&gid) {
                            g.open += 1;
                            g.members.push(e.skb);
                        }
                        gid
                    }
                    None => self.start(e, out),
                };
                self.skbs.insert(e.skb, gid);
                gid
            }
        };
        self.line.clear();
        printer.write_event(e, &mut self.line);
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        let name = match e.hook {
            Hook::Known(name) => name,
            Hook::Unknown(_) => "unknown",
        };
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        g.events.push(Held {
            ts_ns: e.ts_ns,
            func: name.to_owned(),
            bytes: self.line.clone(),
        });
        g.last_ns = e.ts_ns;
        if let Some(nf) = &e.netfilter {
            // Inside a chain (its entry, or a drop there) or dropped by it: the chain to blame
            // for a drop; a chain that let the packet go is not.
            let blamed = match &e.verdict {
                Some(v) => v.name == Some("NF_DROP"),
                None => true,
            };
            g.nf_drop = blamed.then(|| (nf.label(), nf.hook.to_owned()));
        }
        g.drop = e.reason.as_ref().map(|r| {
            let mut reason = Vec::new();
            write_reason(r, &mut reason);
            (
                name.to_owned(),
                String::from_utf8_lossy(&reason).into_owned(),
            )
        });
        let ended = is_life_end(name) && {
            g.open = g.open.saturating_sub(1);
            g.open == 0
        };
        if is_life_end(name) {
            self.skbs.remove(&e.skb);
        }
        self.activity.push_back((gid, e.ts_ns));
        if self.activity.len() > 4 * self.max_packets + 1024 {
            // Keep only each packet's last event: the queue stays in proportion to the packets.
            let groups = &self.groups;
            self.activity
                .retain(|(gid, ts)| groups.get(gid).is_some_and(|g| g.last_ns == *ts));
        }
        if ended {
            self.close(gid, Close::End, out);
        }
    }

    fn start(&mut self, e: &Event<'_>, out: &mut Vec<u8>) -> u64 {
        while self.groups.len() >= self.max_packets {
            let Some(gid) = self.quietest() else {
                break;
            };
            self.close(gid, Close::Room, out);
        }
        let gid = self.next_id;
        self.next_id += 1;
        self.groups.insert(
            gid,
            Group {
                root: e.skb,
                members: vec![e.skb],
                events: Vec::new(),
                open: 1,
                last_ns: e.ts_ns,
                drop: None,
                nf_drop: None,
            },
        );
        gid
    }

    /// The open group quiet for longest, its activity entries up to its last event dropped.
    fn quietest(&mut self) -> Option<u64> {
        while let Some((gid, ts)) = self.activity.pop_front() {
            if self.groups.get(&gid).is_some_and(|g| g.last_ns == ts) {
                return Some(gid);
            }
        }
        // Groups without events yet (just started): any.
        self.groups.keys().next().copied()
    }

    /// Writes the packets quiet for the timeout at kernel time `now_ns`.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<u8>) {
        while let Some(&(gid, ts)) = self.activity.front() {
            if now_ns.saturating_sub(ts) < self.timeout_ns {
                break;
            }
            self.activity.pop_front();
            // Its last event, not an earlier one: quiet since.
            if self.groups.get(&gid).is_some_and(|g| g.last_ns == ts) {
                self.close(gid, Close::Quiet, out);
            }
        }
    }

    /// Writes every packet held (the trace stopped).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        while let Some(gid) = self.quietest() {
            self.close(gid, Close::Quiet, out);
        }
    }

    fn close(&mut self, gid: u64, why: Close, out: &mut Vec<u8>) {
        let Some(g) = self.groups.remove(&gid) else {
            return;
        };
        if why == Close::Room {
            self.flushed_early += 1;
        }
        for skb in &g.members {
            if self.skbs.get(skb) == Some(&gid) {
                self.skbs.remove(skb);
            }
        }
        if self.json {
            write_json(&g, why, out);
        } else {
            write_text(&g, why, out);
        }
    }
}

/// `+1.2µs`: the time since the previous hook.
fn delta(ns: u64) -> String {
    format!("+{}", duration(ns))
}

fn write_text(g: &Group, why: Close, out: &mut Vec<u8>) {
    let first = g.events.first().map_or(0, |e| e.ts_ns);
    let last = g.events.last().map_or(0, |e| e.ts_ns);
    out.extend_from_slice(b"skb ");
    write_hex(out, g.root);
    out.extend_from_slice(
        format!(
            ": {} events in {}{}\n",
            g.events.len(),
            duration(last - first),
            match why {
                Close::End => "",
                Close::Quiet => " (not freed yet)",
                Close::Room => " (written early: too many packets at once)",
            }
        )
        .as_bytes(),
    );
    let mut previous = first;
    for e in &g.events {
        out.extend_from_slice(format!("  {:>8}  ", delta(e.ts_ns - previous)).as_bytes());
        out.extend_from_slice(&e.bytes);
        out.push(b'\n');
        previous = e.ts_ns;
    }
    if let Some((func, reason)) = &g.drop {
        out.extend_from_slice(format!("  dropped at {func}: {reason}").as_bytes());
        if let Some((chain, hook)) = &g.nf_drop {
            out.extend_from_slice(format!(", by nftables chain {chain} (hook {hook})").as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

fn write_json(g: &Group, why: Close, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"packet\":\"");
    write_hex(out, g.root);
    out.extend_from_slice(b"\",\"end\":\"");
    out.extend_from_slice(match why {
        Close::End => b"freed".as_slice(),
        Close::Quiet => b"quiet",
        Close::Room => b"room",
    });
    out.extend_from_slice(b"\",\"events\":[");
    for (i, e) in g.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.bytes);
    }
    out.extend_from_slice(b"],\"hops\":[");
    for (i, pair) in g.events.windows(2).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let hop = serde_json::json!({
            "from": pair[0].func,
            "to": pair[1].func,
            "ns": pair[1].ts_ns - pair[0].ts_ns,
        });
        out.extend_from_slice(hop.to_string().as_bytes());
    }
    out.extend_from_slice(b"],\"drop\":");
    match &g.drop {
        Some((func, reason)) => {
            let netfilter = g
                .nf_drop
                .as_ref()
                .map(|(chain, hook)| serde_json::json!({ "chain": chain, "hook": hook }));
            out.extend_from_slice(
                serde_json::json!({ "func": func, "reason": reason, "netfilter": netfilter })
                    .to_string()
                    .as_bytes(),
            )
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cli::TimestampChoice,
        events::Reason,
        output::{JsonEvent, PrinterConfig, WallClock},
    };

    fn printer(json: bool) -> Printer {
        Printer::new(
            PrinterConfig {
                json,
                timestamp: TimestampChoice::None,
                output_meta: true,
                output_tuple: true,
                output_skb_cb: false,
                netns_names_width: None,
                output_caller: false,
                output_tunnel: false,
                packet_bytes: false,
            },
            WallClock::fixed(0, 0),
        )
    }

    fn event(skb: u64, hook: &'static str, ts_ns: u64) -> Event<'static> {
        Event::sample(skb, hook, ts_ns)
    }

    #[test]
    fn a_packet_is_one_block_when_its_life_ends() {
        let p = printer(false);
        let mut g = Grouper::new(false, 16, 1_000_000_000);
        let mut out = Vec::new();
        g.add(&p, &event(0xa, "ip_rcv", 1_000), &mut out);
        g.add(&p, &event(0xb, "ip_rcv", 1_500), &mut out);
        g.add(&p, &event(0xa, "icmp_rcv", 2_200), &mut out);
        assert!(out.is_empty(), "nothing ended yet");
        g.add(&p, &event(0xa, "consume_skb", 5_000), &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("skb 0xa: 3 events in 4.0µs\n"), "{text}");
        assert!(text.contains("    +1.2µs  0xa"), "{text}");
        assert!(!text.contains("0xb"), "{text}");
        // The other is dropped: its block ends with the drop.
        out.clear();
        let mut drop = event(0xb, "kfree_skb", 9_000);
        drop.reason = Some(Reason {
            code: 3,
            name: Some("SKB_DROP_REASON_NO_SOCKET"),
        });
        g.add(&p, &drop, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("  dropped at kfree_skb: SKB_DROP_REASON_NO_SOCKET\n\n"),
            "{text}"
        );
    }

    fn chain_event(
        hook: &'static str,
        ts_ns: u64,
        verdict: Option<i32>,
        chain: &'static [u8],
    ) -> Event<'static> {
        let mut e = event(0xa, hook, ts_ns);
        e.netfilter = Some(crate::events::NetfilterChain {
            family: "inet",
            table: b"filter",
            chain,
            hook: "input",
            priority: 0,
        });
        e.verdict = verdict.map(crate::events::Verdict::netfilter);
        e
    }

    fn netfilter_drop() -> Event<'static> {
        let mut drop = event(0xa, "kfree_skb_reason", 4_000);
        drop.reason = Some(Reason {
            code: 11,
            name: Some("SKB_DROP_REASON_NETFILTER_DROP"),
        });
        drop
    }

    #[test]
    fn a_netfilter_drop_names_the_chain_that_dropped_it() {
        let p = printer(false);
        // The chain frees what it drops (6.8+): entry, drop inside, then the exit, late.
        let mut g = Grouper::new(false, 16, 1_000_000_000);
        let mut out = Vec::new();
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_000, None, b"early"),
            &mut out,
        );
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_500, Some(1), b"early"),
            &mut out,
        );
        g.add(
            &p,
            &chain_event("nft_do_chain", 2_000, None, b"input"),
            &mut out,
        );
        g.add(&p, &netfilter_drop(), &mut out);
        g.add(
            &p,
            &chain_event("nft_do_chain", 5_000, Some(1 << 16 | 2), b"input"),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("skb 0xa: 4 events"),
            "the late exit starts no block: {text}"
        );
        assert!(
            text.ends_with("  dropped at kfree_skb_reason: SKB_DROP_REASON_NETFILTER_DROP, by nftables chain inet filter input (hook input)\n\n"),
            "{text}"
        );
        // The chain returns NF_DROP and the hook frees it (older kernels), in JSON.
        let p = printer(true);
        let mut g = Grouper::new(true, 16, 1_000_000_000);
        let mut out = Vec::new();
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_000, None, b"input"),
            &mut out,
        );
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_500, Some(0), b"input"),
            &mut out,
        );
        g.add(&p, &netfilter_drop(), &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            line["drop"]["netfilter"],
            serde_json::json!({ "chain": "inet filter input", "hook": "input" })
        );
        // A chain that accepted is not blamed for a later drop.
        let mut g = Grouper::new(true, 16, 1_000_000_000);
        let mut out = Vec::new();
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_000, None, b"input"),
            &mut out,
        );
        g.add(
            &p,
            &chain_event("nft_do_chain", 1_500, Some(1), b"input"),
            &mut out,
        );
        g.add(&p, &netfilter_drop(), &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["drop"]["netfilter"], serde_json::Value::Null);
    }

    #[test]
    fn clones_join_their_parent_and_the_packet_ends_with_the_last() {
        let p = printer(true);
        let mut g = Grouper::new(true, 16, 1_000_000_000);
        let mut out = Vec::new();
        g.add(&p, &event(0xa, "ip_rcv", 1_000), &mut out);
        let mut clone = event(0xc, "dev_queue_xmit", 2_000);
        clone.parent_skb = Some(0xa);
        g.add(&p, &clone, &mut out);
        g.add(&p, &event(0xa, "kfree_skbmem", 3_000), &mut out);
        assert!(out.is_empty(), "the clone lives on");
        g.add(&p, &event(0xc, "kfree_skbmem", 4_000), &mut out);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["packet"], "0xa");
        assert_eq!(line["end"], "freed");
        let events: Vec<JsonEvent> = serde_json::from_value(line["events"].clone()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[1].skb, "0xc");
        assert_eq!(line["hops"][0]["ns"], 1_000);
        assert_eq!(line["hops"][0]["to"], "dev_queue_xmit");
        assert_eq!(line["drop"], serde_json::Value::Null);
    }

    #[test]
    fn quiet_packets_and_too_many_packets_are_written_and_counted() {
        let p = printer(false);
        let mut g = Grouper::new(false, 2, 1_000);
        let mut out = Vec::new();
        g.add(&p, &event(0xa, "ip_rcv", 0), &mut out);
        g.add(&p, &event(0xb, "ip_rcv", 10), &mut out);
        // A third packet: the one quiet longest goes, early.
        g.add(&p, &event(0xc, "ip_rcv", 20), &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("skb 0xa: 1 events in 0ns (written early: too many packets at once)"),
            "{text}"
        );
        assert_eq!(g.flushed_early, 1);
        out.clear();
        g.expire(1_015, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("skb 0xb: 1 events in 0ns (not freed yet)"),
            "{text}"
        );
        assert!(!text.contains("0xc"), "{text}");
        out.clear();
        g.finish(&mut out);
        assert!(String::from_utf8(out).unwrap().starts_with("skb 0xc"));
    }
}
