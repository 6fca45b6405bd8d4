//! `--summary`: what the trace saw, at exit (also after Ctrl-C): hooks by hits, drops by reason
//! and by function, the distinct paths packets took and the most common ones, and the time
//! between consecutive hooks of the same skb (p50/p99) for the most frequent transitions. A
//! table per part (comfy-table) after text output; one final `{"summary":{…}}` line with JSON.
//!
//! Bounded: at most [`MAX_OPEN_PATHS`] skbs' paths are followed at once (the oldest is closed
//! early when more come), each of at most [`MAX_PATH_HOPS`] hooks, and at most
//! [`MAX_SAMPLES`] hop times are kept per transition (every one is counted).

use std::{
    collections::{hash_map::Entry, HashMap},
    io::Write,
};

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::{Deserialize, Serialize};

use super::{duration, is_life_end, write_reason};
use crate::events::{Event, Hook};

/// skbs whose path is followed at once.
pub const MAX_OPEN_PATHS: usize = 65_536;
/// Hooks kept of one path (later ones are counted, not kept).
pub const MAX_PATH_HOPS: usize = 64;
/// Hop times kept per transition for its percentiles.
pub const MAX_SAMPLES: usize = 10_000;
/// Rows shown per table.
const TOP: usize = 20;

#[derive(Default)]
pub struct Summary {
    events: u64,
    /// Hook names, interned: their index is their id.
    names: Vec<String>,
    ids: HashMap<String, u32>,
    hits: Vec<u64>,
    drops_by_reason: HashMap<String, u64>,
    drops_by_func: HashMap<u32, u64>,
    /// skb → its path so far and its last event's time.
    open: HashMap<u64, OpenPath>,
    /// Order the open paths were started in, to close the oldest when full.
    opened: std::collections::VecDeque<(u64, u64)>,
    paths: HashMap<Vec<u32>, u64>,
    /// Paths closed early for lack of room.
    closed_early: u64,
    hops: HashMap<(u32, u32), Hop>,
    /// `--output-netfilter`: (chain label, hook, verdict) → packets.
    netfilter: HashMap<(String, String, String), u64>,
}

struct OpenPath {
    hooks: Vec<u32>,
    last_ns: u64,
    /// Distinguishes this path from an earlier one of the same address in `opened`.
    serial: u64,
}

#[derive(Default)]
struct Hop {
    count: u64,
    samples: Vec<u64>,
}

/// The `--output-json` form: the value of the final line's `summary` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSummary {
    /// Events traced.
    pub events: u64,
    /// Every hook that fired, most hits first.
    pub hooks: Vec<JsonCount>,
    /// Drops by reason name, most first.
    pub drops_by_reason: Vec<JsonCount>,
    /// Drops by the function that reported them, most first.
    pub drops_by_func: Vec<JsonCount>,
    /// Distinct paths (each skb's hooks in order, from its first event to its end or exit).
    pub distinct_paths: u64,
    /// The most common paths, most first.
    pub paths: Vec<JsonPath>,
    /// Paths closed before their end for lack of room.
    pub paths_closed_early: u64,
    /// The most frequent transitions between consecutive hooks of one skb.
    pub hops: Vec<JsonHop>,
    /// `--output-netfilter`: verdicts by nftables base chain, most first (empty without).
    #[serde(default)]
    pub netfilter: Vec<JsonChainVerdicts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonChainVerdicts {
    /// As nft lists it: `inet filter input`.
    pub chain: String,
    pub hook: String,
    /// `NF_ACCEPT`, `NF_DROP`, …
    pub verdict: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCount {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPath {
    pub hooks: Vec<String>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonHop {
    pub from: String,
    pub to: String,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

impl Summary {
    pub fn record(&mut self, e: &Event<'_>) {
        self.events += 1;
        let name = match e.hook {
            Hook::Known(name) => name,
            Hook::Unknown(_) => "unknown",
        };
        let id = self.intern(name);
        self.hits[id as usize] += 1;
        if let Some(reason) = &e.reason {
            let mut text = Vec::new();
            write_reason(reason, &mut text);
            *self
                .drops_by_reason
                .entry(String::from_utf8_lossy(&text).into_owned())
                .or_default() += 1;
            *self.drops_by_func.entry(id).or_default() += 1;
        }
        if let (Some(nf), Some(verdict)) = (&e.netfilter, &e.verdict) {
            let verdict = match verdict.name {
                Some(name) => name.to_owned(),
                None => verdict.code.to_string(),
            };
            *self
                .netfilter
                .entry((nf.label(), nf.hook.to_owned(), verdict))
                .or_default() += 1;
        }
        // A chain's exit after the chain freed what it dropped: that skb's path ended there.
        if e.netfilter.is_some() && e.verdict.is_some() && !self.open.contains_key(&e.skb) {
            return;
        }
        self.follow(e.skb, id, e.ts_ns);
        if is_life_end(name) {
            self.close(e.skb);
        }
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        self.hits.push(0);
        id
    }

    fn follow(&mut self, skb: u64, id: u32, ts_ns: u64) {
        let serial = self.events;
        match self.open.entry(skb) {
            Entry::Occupied(mut open) => {
                let path = open.get_mut();
                let from = *path.hooks.last().expect("a path has a first hook");
                let hop = self.hops.entry((from, id)).or_default();
                hop.count += 1;
                if hop.samples.len() < MAX_SAMPLES {
                    hop.samples.push(ts_ns.saturating_sub(path.last_ns));
                }
                if path.hooks.len() < MAX_PATH_HOPS {
                    path.hooks.push(id);
                }
                path.last_ns = ts_ns;
            }
            Entry::Vacant(slot) => {
                slot.insert(OpenPath {
                    hooks: vec![id],
                    last_ns: ts_ns,
                    serial,
                });
                self.opened.push_back((skb, serial));
                while self.open.len() > MAX_OPEN_PATHS {
                    let Some((oldest, serial)) = self.opened.pop_front() else {
                        break;
                    };
                    if self.open.get(&oldest).is_some_and(|p| p.serial == serial) {
                        self.close(oldest);
                        self.closed_early += 1;
                    }
                }
            }
        }
    }

    fn close(&mut self, skb: u64) {
        if let Some(path) = self.open.remove(&skb) {
            *self.paths.entry(path.hooks).or_default() += 1;
        }
        // Keep the queue from growing with paths closed by their end.
        if self.opened.len() > 2 * MAX_OPEN_PATHS {
            let open = &self.open;
            self.opened
                .retain(|(skb, serial)| open.get(skb).is_some_and(|p| p.serial == *serial));
        }
    }

    /// Everything, the paths still open included (the trace stopped during their life).
    pub fn finish(mut self) -> JsonSummary {
        let open: Vec<u64> = self.open.keys().copied().collect();
        for skb in open {
            self.close(skb);
        }
        let name = |id: u32| self.names[id as usize].clone();
        let mut hooks: Vec<JsonCount> = self
            .hits
            .iter()
            .enumerate()
            .map(|(id, &count)| JsonCount {
                name: name(id as u32),
                count,
            })
            .collect();
        sort_counts(&mut hooks);
        let mut drops_by_reason: Vec<JsonCount> = self
            .drops_by_reason
            .iter()
            .map(|(reason, &count)| JsonCount {
                name: reason.clone(),
                count,
            })
            .collect();
        sort_counts(&mut drops_by_reason);
        let mut drops_by_func: Vec<JsonCount> = self
            .drops_by_func
            .iter()
            .map(|(&id, &count)| JsonCount {
                name: name(id),
                count,
            })
            .collect();
        sort_counts(&mut drops_by_func);
        let mut paths: Vec<JsonPath> = self
            .paths
            .iter()
            .map(|(hooks, &count)| JsonPath {
                hooks: hooks.iter().map(|&id| name(id)).collect(),
                count,
            })
            .collect();
        paths.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.hooks.cmp(&b.hooks)));
        paths.truncate(TOP);
        let mut hops: Vec<JsonHop> = self
            .hops
            .iter_mut()
            .map(|(&(from, to), hop)| {
                hop.samples.sort_unstable();
                JsonHop {
                    from: name(from),
                    to: name(to),
                    count: hop.count,
                    p50_ns: percentile(&hop.samples, 50),
                    p99_ns: percentile(&hop.samples, 99),
                }
            })
            .collect();
        hops.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
        });
        hops.truncate(TOP);
        let mut netfilter: Vec<JsonChainVerdicts> = self
            .netfilter
            .into_iter()
            .map(|((chain, hook, verdict), count)| JsonChainVerdicts {
                chain,
                hook,
                verdict,
                count,
            })
            .collect();
        netfilter.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.chain, &a.verdict).cmp(&(&b.chain, &b.verdict)))
        });
        JsonSummary {
            events: self.events,
            hooks,
            drops_by_reason,
            drops_by_func,
            distinct_paths: self.paths.len() as u64,
            paths,
            paths_closed_early: self.closed_early,
            hops,
            netfilter,
        }
    }
}

fn sort_counts(counts: &mut [JsonCount]) {
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
}

/// The `p`th percentile of sorted `samples` (nearest rank); 0 for none.
fn percentile(samples: &[u64], p: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let rank = (samples.len() * p).div_ceil(100).max(1);
    samples[rank - 1]
}

/// Writes `s` as JSON (`{"summary":…}`, one line) or as tables.
pub fn write(s: &JsonSummary, json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({ "summary": s });
        return writeln!(out, "{line}");
    }
    let table = |header: &[&str], rows: Vec<Vec<String>>| {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(header.to_vec());
        for row in rows {
            t.add_row(row);
        }
        t
    };
    let counts = |c: &[JsonCount]| -> Vec<Vec<String>> {
        c.iter()
            .take(TOP)
            .map(|c| vec![c.name.clone(), c.count.to_string()])
            .collect()
    };
    let more = |n: usize| {
        if n > TOP {
            format!(" ({} more not shown)", n - TOP)
        } else {
            String::new()
        }
    };
    writeln!(out, "\nSummary: {} events\n", s.events)?;
    writeln!(out, "Hooks by hits{}:", more(s.hooks.len()))?;
    writeln!(out, "{}", table(&["hook", "hits"], counts(&s.hooks)))?;
    if !s.drops_by_reason.is_empty() {
        writeln!(out, "\nDrops by reason:")?;
        writeln!(
            out,
            "{}",
            table(&["reason", "drops"], counts(&s.drops_by_reason))
        )?;
        writeln!(out, "\nDrops by function:")?;
        writeln!(
            out,
            "{}",
            table(&["function", "drops"], counts(&s.drops_by_func))
        )?;
    }
    if !s.netfilter.is_empty() {
        writeln!(
            out,
            "\nNetfilter verdicts by chain{}:",
            more(s.netfilter.len())
        )?;
        let rows = s
            .netfilter
            .iter()
            .take(TOP)
            .map(|v| {
                vec![
                    v.chain.clone(),
                    v.hook.clone(),
                    v.verdict.clone(),
                    v.count.to_string(),
                ]
            })
            .collect();
        writeln!(
            out,
            "{}",
            table(&["chain", "hook", "verdict", "packets"], rows)
        )?;
    }
    writeln!(
        out,
        "\nPaths: {} distinct{}; the most common:",
        s.distinct_paths,
        if s.paths_closed_early > 0 {
            format!(
                " ({} followed only in part: more skbs at once than {MAX_OPEN_PATHS})",
                s.paths_closed_early
            )
        } else {
            String::new()
        }
    )?;
    let paths = s
        .paths
        .iter()
        .map(|p| vec![p.count.to_string(), p.hooks.join(" → ")])
        .collect();
    writeln!(out, "{}", table(&["skbs", "path"], paths))?;
    writeln!(
        out,
        "\nHops (consecutive hooks of one skb), the most frequent:"
    )?;
    let hops = s
        .hops
        .iter()
        .map(|h| {
            vec![
                format!("{} → {}", h.from, h.to),
                h.count.to_string(),
                duration(h.p50_ns),
                duration(h.p99_ns),
            ]
        })
        .collect();
    writeln!(out, "{}", table(&["hop", "count", "p50", "p99"], hops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Reason;

    fn event(
        skb: u64,
        hook: &'static str,
        ts_ns: u64,
        reason: Option<&'static str>,
    ) -> Event<'static> {
        let mut e = Event::sample(skb, hook, ts_ns);
        e.reason = reason.map(|name| Reason {
            code: 2,
            name: Some(name),
        });
        e
    }

    #[test]
    fn counts_paths_drops_and_hop_times() {
        let mut s = Summary::default();
        // Two skbs take the same path and end in consume_skb; a third is dropped.
        for (skb, base) in [(1, 0), (2, 10_000)] {
            s.record(&event(skb, "ip_rcv", base, None));
            s.record(&event(skb, "icmp_rcv", base + 1_000 * skb, None));
            s.record(&event(skb, "consume_skb", base + 5_000, None));
        }
        s.record(&event(3, "ip_rcv", 50_000, None));
        s.record(&event(
            3,
            "kfree_skb",
            50_400,
            Some("SKB_DROP_REASON_NO_SOCKET"),
        ));
        // Still open at exit: its path counts too.
        s.record(&event(4, "ip_rcv", 60_000, None));
        let j = s.finish();
        assert_eq!(j.events, 9);
        assert_eq!(j.hooks.iter().map(|c| c.count).sum::<u64>(), 9);
        assert_eq!(
            j.hooks[0],
            JsonCount {
                name: "ip_rcv".into(),
                count: 4
            }
        );
        assert_eq!(
            j.drops_by_reason,
            vec![JsonCount {
                name: "SKB_DROP_REASON_NO_SOCKET".into(),
                count: 1
            }]
        );
        assert_eq!(
            j.drops_by_func,
            vec![JsonCount {
                name: "kfree_skb".into(),
                count: 1
            }]
        );
        assert_eq!(j.distinct_paths, 3);
        assert_eq!(
            j.paths[0],
            JsonPath {
                hooks: vec!["ip_rcv".into(), "icmp_rcv".into(), "consume_skb".into()],
                count: 2
            }
        );
        let hop = j
            .hops
            .iter()
            .find(|h| h.from == "ip_rcv" && h.to == "icmp_rcv")
            .unwrap();
        // 1000 and 2000 ns: nearest-rank p50 is the first, p99 the second.
        assert_eq!((hop.count, hop.p50_ns, hop.p99_ns), (2, 1_000, 2_000));
        let mut text = Vec::new();
        write(&j, false, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("ip_rcv → icmp_rcv → consume_skb"), "{text}");
        assert!(text.contains("SKB_DROP_REASON_NO_SOCKET"), "{text}");
        let mut line = Vec::new();
        write(&j, true, &mut line).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let back: JsonSummary = serde_json::from_value(back["summary"].clone()).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn netfilter_verdicts_by_chain() {
        let mut s = Summary::default();
        let chain = |skb, ts, code: Option<i32>, name: &'static [u8]| {
            let mut e = event(skb, "nft_do_chain", ts, None);
            e.netfilter = Some(crate::events::NetfilterChain {
                family: "ip",
                table: b"filter",
                chain: name,
                hook: "input",
                priority: 0,
            });
            e.verdict = code.map(crate::events::Verdict::netfilter);
            e
        };
        for skb in 1..=3 {
            s.record(&chain(skb, skb * 100, None, b"INPUT"));
            s.record(&chain(skb, skb * 100 + 1, Some(1), b"INPUT"));
        }
        s.record(&chain(4, 1_000, None, b"INPUT"));
        s.record(&event(
            4,
            "kfree_skb_reason",
            1_001,
            Some("SKB_DROP_REASON_NETFILTER_DROP"),
        ));
        // The exit of a chain that freed what it dropped comes after the drop.
        s.record(&chain(4, 1_002, Some(1 << 16 | 2), b"INPUT"));
        let j = s.finish();
        assert_eq!(j.events, 9);
        assert_eq!(j.hooks.iter().map(|c| c.count).sum::<u64>(), 9);
        let verdicts: Vec<(&str, &str, u64)> = j
            .netfilter
            .iter()
            .map(|v| (v.chain.as_str(), v.verdict.as_str(), v.count))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("ip filter INPUT", "NF_ACCEPT", 3),
                ("ip filter INPUT", "NF_DROP", 1)
            ]
        );
        // The late exit opens no path of its own.
        assert_eq!(j.distinct_paths, 2);
        let mut text = Vec::new();
        write(&j, false, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("Netfilter verdicts by chain:"), "{text}");
        assert!(text.contains("ip filter INPUT"), "{text}");
    }

    #[test]
    fn open_paths_are_bounded() {
        let mut s = Summary::default();
        for skb in 0..(MAX_OPEN_PATHS as u64 + 10) {
            s.record(&event(skb, "ip_rcv", skb, None));
        }
        assert_eq!(s.open.len(), MAX_OPEN_PATHS);
        let j = s.finish();
        assert_eq!(j.paths_closed_early, 10);
        assert_eq!(j.paths[0].count, MAX_OPEN_PATHS as u64 + 10);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(1_234), "1.2µs");
        assert_eq!(duration(3_400_000), "3.4ms");
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[5], 99), 5);
    }
}
