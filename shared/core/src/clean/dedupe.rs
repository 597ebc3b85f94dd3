//! Which row wins for each dedupe key, in compact memory: keys packed into
//! 16 bytes by [`crate::keys::KeyPacker`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are either verbatim bytes or already a hash: one multiply-fold
/// spreads them well enough for the table, without hashing twice.
#[derive(Default)]
pub(crate) struct PackedKeyHasher(u64);

impl Hasher for PackedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        let m = ((self.0 ^ v) as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

/// A valid row's position: the index of its range among all inputs'
/// ranges, and its position among that range's valid rows (which is also
/// its position among the range's kept candidates). Ordered as the rows
/// are in the input.
pub(crate) type RowId = u64;
const RANGE_SHIFT: u32 = 40;

pub(crate) fn row_id(range: usize, index: u64) -> RowId {
    ((range as u64) << RANGE_SHIFT) | index
}

fn split_row_id(row: RowId) -> (usize, u64) {
    (
        (row >> RANGE_SHIFT) as usize,
        row & ((1 << RANGE_SHIFT) - 1),
    )
}

#[derive(Clone, Copy)]
struct Candidate {
    key: u128,
    event_time: i64,
    row: RowId,
}

impl Candidate {
    /// The latest event time wins; on a tie, the row earlier in the input.
    fn beats(&self, other: &Candidate) -> bool {
        self.event_time > other.event_time
            || (self.event_time == other.event_time && self.row < other.row)
    }
}

fn fold(key: u128) -> u64 {
    let mut h = PackedKeyHasher::default();
    h.write_u128(key);
    h.finish()
}

/// Valid rows offered for dedupe, scattered by key hash into partitions
/// small enough that resolving one stays in cache. A single table of a
/// million keys costs a cache miss per row; sequential appends to a few
/// hundred buffers do not. One buffer per scanning thread.
pub(crate) struct Candidates {
    partitions: Vec<Vec<Candidate>>,
    bits: u32,
}

impl Candidates {
    /// Partitions for about `total_rows` rows (every thread's buffer has
    /// the same): a few thousand per partition, so its table fits in L2,
    /// but at most 512 of them. Every partition is a stream of stores to
    /// its own pages, and past a few hundred the scatter misses the TLB on
    /// nearly every row: at 5M rows, 2,048 partitions scanned in 3.0–4.7 s
    /// and 512 in 2.4–4.3 s (six alternating runs), while resolving the
    /// larger partitions took 7 ms more. Room is reserved for about
    /// `reserved_rows` of them, this buffer's share.
    pub fn new(total_rows: usize, reserved_rows: usize) -> Candidates {
        let bits = (total_rows / 4096)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .min(9);
        // Reserved up front: growing by doubling copies every candidate
        // again and can hold twice the memory at the moment it grows. The
        // reservation is all resident once touched where the heap is on
        // huge pages, hence an estimate that runs only a little high; past
        // 16M rows (512 MiB of address space) the buffers grow instead.
        let per_partition = reserved_rows.min(16 << 20) / (1 << bits) + 64;
        Candidates {
            partitions: (0..1usize << bits)
                .map(|_| Vec::with_capacity(per_partition))
                .collect(),
            bits,
        }
    }

    pub fn offer(&mut self, key: u128, event_time: i64, row: RowId) {
        // Bits 32.. pick the partition; the table inside a partition uses
        // the low bits and the top 7, which stay spread.
        let p = ((fold(key) >> 32) as usize) & ((1 << self.bits) - 1);
        self.partitions[p].push(Candidate {
            key,
            event_time,
            row,
        });
    }
}

/// Which rows won, as one bit per valid row of each range.
pub(crate) struct Winners {
    ranges: Vec<Vec<u64>>,
}

impl Winners {
    /// Resolve every partition (spread over `threads`) into winner bits;
    /// `range_rows[r]` is how many valid rows range `r` has.
    pub fn resolve(buffers: Vec<Candidates>, range_rows: &[u64], threads: usize) -> Winners {
        let partitions = buffers.first().map_or(0, |b| b.partitions.len());
        debug_assert!(buffers.iter().all(|b| b.partitions.len() == partitions));
        let threads = threads.clamp(1, partitions.max(1));
        let resolve_share = |share: usize| -> Vec<RowId> {
            let mut winners = Vec::new();
            let mut best: HashMap<u128, Candidate, BuildHasherDefault<PackedKeyHasher>> =
                HashMap::default();
            for p in (share..partitions).step_by(threads) {
                best.clear();
                best.reserve(buffers.iter().map(|b| b.partitions[p].len()).sum());
                for c in buffers.iter().flat_map(|b| &b.partitions[p]) {
                    best.entry(c.key)
                        .and_modify(|b| {
                            if c.beats(b) {
                                *b = *c
                            }
                        })
                        .or_insert(*c);
                }
                winners.extend(best.values().map(|c| c.row));
            }
            winners
        };
        let lists = super::on_threads(threads, resolve_share);
        drop(buffers);
        let mut ranges: Vec<Vec<u64>> = range_rows
            .iter()
            .map(|&rows| vec![0u64; rows.div_ceil(64) as usize])
            .collect();
        for row in lists.into_iter().flatten() {
            let (range, index) = split_row_id(row);
            ranges[range][(index / 64) as usize] |= 1 << (index % 64);
        }
        Winners { ranges }
    }

    pub fn is_winner(&self, range: usize, index: u64) -> bool {
        self.ranges
            .get(range)
            .and_then(|bits| bits.get((index / 64) as usize))
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_wins_and_ties_keep_first_across_ranges_and_buffers() {
        // Two scanning threads' buffers; range 1 follows range 0 in the file.
        let mut a = Candidates::new(100_000, 100_000);
        let mut b = Candidates::new(100_000, 100_000);
        assert!(a.partitions.len() > 1);
        b.offer(1, 10, row_id(1, 0)); // tie with an earlier row: loses
        a.offer(1, 10, row_id(0, 3));
        a.offer(2, 5, row_id(0, 0));
        b.offer(2, 7, row_id(1, 1)); // later event time wins
        a.offer(2, 6, row_id(0, 1));
        let w = Winners::resolve(vec![a, b], &[4, 2], 2);
        assert!(w.is_winner(0, 3) && !w.is_winner(1, 0));
        assert!(!w.is_winner(0, 0) && w.is_winner(1, 1) && !w.is_winner(0, 1));
        assert!(!w.is_winner(0, 2) && !w.is_winner(5, 0));
    }

    #[test]
    fn many_keys_resolve_like_a_single_table() {
        let mut bufs: Vec<Candidates> = (0..3).map(|_| Candidates::new(50_000, 20_000)).collect();
        let mut expected = std::collections::HashMap::new();
        for i in 0..50_000u64 {
            let key = (i * 7919 % 10_007) as u128;
            let time = (i % 13) as i64;
            let row = row_id((i / 1000) as usize, i % 1000);
            bufs[(i % 3) as usize].offer(key, time, row);
            let e = expected.entry(key).or_insert((time, row));
            if time > e.0 || (time == e.0 && row < e.1) {
                *e = (time, row);
            }
        }
        let w = Winners::resolve(bufs, &[1000; 50], 2);
        let winners: std::collections::HashSet<RowId> = expected.values().map(|v| v.1).collect();
        for i in 0..50_000u64 {
            let row = row_id((i / 1000) as usize, i % 1000);
            assert_eq!(
                w.is_winner((i / 1000) as usize, i % 1000),
                winners.contains(&row)
            );
        }
    }
}
