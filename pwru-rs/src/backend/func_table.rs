//! The kprobe-multi function table (`contract::FUNC_TABLE_MAP`): a perfect hash of the linked
//! functions' addresses, built by hash and displace. Each function falls into a bucket
//! (`contract::func_bucket`); buckets, the fullest first, each get the smallest seed that puts
//! all their functions into free slots of their own (`contract::func_slot`). At most half the
//! slots are used, so a seed is found in a few tries.

use pwru_rs_common::{
    contract::{func_bucket, func_slot},
    FuncSlot,
};

/// The table's size (as `Config::func_slot_bits`) for up to `functions` functions: at least
/// twice as many slots, plus room.
pub fn slot_bits(functions: usize) -> u32 {
    (2 * functions + 256).next_power_of_two().trailing_zeros()
}

/// Seeds tried per bucket before giving up (never reached at half load: the odds that a
/// bucket of k functions finds its slots taken are below 1 - 2^-k per seed).
const MAX_SEEDS: u32 = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FuncTableError {
    #[error("{functions} functions do not fit the kprobe-multi function table of {slots} slots")]
    TooMany { functions: usize, slots: usize },
    #[error("no seed places the functions of bucket {0} of the kprobe-multi function table")]
    NoSeed(usize),
}

/// The table's `1 << bits` slots holding `functions` (address, `func_args_entry`); an address
/// given twice keeps its first entry.
pub fn build(functions: &[(u64, u32)], bits: u32) -> Result<Vec<FuncSlot>, FuncTableError> {
    let slots = 1usize << bits;
    let mut buckets: Vec<Vec<(u64, u32)>> = vec![Vec::new(); slots / 2];
    let mut seen = std::collections::HashSet::new();
    for &(ip, args) in functions {
        if ip != 0 && seen.insert(ip) {
            buckets[func_bucket(ip, bits) as usize].push((ip, args));
        }
    }
    if 2 * seen.len() > slots {
        return Err(FuncTableError::TooMany {
            functions: seen.len(),
            slots,
        });
    }
    let mut order: Vec<usize> = (0..buckets.len())
        .filter(|&b| !buckets[b].is_empty())
        .collect();
    order.sort_by_key(|&b| std::cmp::Reverse(buckets[b].len()));
    let mut table = vec![FuncSlot::default(); slots];
    let mut at = Vec::new();
    for b in order {
        let bucket = &buckets[b];
        let seed = (0..MAX_SEEDS)
            .find(|&seed| {
                at.clear();
                for &(ip, _) in bucket {
                    let i = func_slot(ip, seed, bits) as usize;
                    if table[i].ip != 0 || at.contains(&i) {
                        return false;
                    }
                    at.push(i);
                }
                true
            })
            .ok_or(FuncTableError::NoSeed(b))?;
        for (&i, &(ip, args)) in at.iter().zip(bucket) {
            table[i].ip = ip;
            table[i].args = args;
        }
        table[b].seed = seed;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel program does (pwru-rs-ebpf/src/kprobe.rs, `func_args`).
    fn lookup(table: &[FuncSlot], ip: u64, bits: u32) -> Option<u32> {
        let seed = table[func_bucket(ip, bits) as usize].seed;
        let slot = table[func_slot(ip, seed, bits) as usize];
        (slot.ip == ip).then_some(slot.args)
    }

    #[test]
    fn every_function_is_found_and_nothing_else() {
        // Kernel text addresses, 16-aligned and irregularly spaced, as function entries are.
        let functions: Vec<(u64, u32)> = (0..2300u64)
            .map(|k| {
                (
                    0xffff_ffff_8100_0000 + 16 * (k * k % 7919 + 3 * k),
                    k as u32 % 300,
                )
            })
            .collect();
        let bits = slot_bits(functions.len());
        let table = build(&functions, bits).unwrap();
        assert_eq!(table.len(), 1 << bits);
        for &(ip, args) in &functions {
            assert_eq!(lookup(&table, ip, bits), Some(args), "{ip:#x}");
        }
        // (0 would match a free slot: no function is there, the kernel never asks for it.)
        for ip in [1, 0xffff_ffff_8100_0008, 0xffff_ffff_a000_0000] {
            assert_eq!(lookup(&table, ip, bits), None, "{ip:#x}");
        }
        // Each function once.
        let used = table.iter().filter(|s| s.ip != 0).count();
        assert_eq!(used, functions.len());
    }

    #[test]
    fn small_tables_and_duplicates() {
        let bits = slot_bits(0);
        assert!(build(&[], bits)
            .unwrap()
            .iter()
            .all(|s| *s == FuncSlot::default()));
        let table = build(&[(0xffff_ffff_8123_4560, 5), (0xffff_ffff_8123_4560, 7)], 2).unwrap();
        assert_eq!(lookup(&table, 0xffff_ffff_8123_4560, 2), Some(5));
        assert_eq!(
            build(&[(16, 0), (32, 0), (48, 0)], 2),
            Err(FuncTableError::TooMany {
                functions: 3,
                slots: 4
            })
        );
    }
}
