//! Which row wins for each dedupe key, in compact memory.
//!
//! A key is stored as 16 bytes: short keys (≤ 15 bytes, the common case for
//! ids) are packed verbatim, so they can never collide; longer keys are
//! stored as a 120-bit XXH3 hash (collision odds ~1e-24 for a billion keys).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEPARATOR: u8 = 0x1f;
const HASHED_MARK: u8 = 0xff;

#[derive(Default)]
pub(crate) struct KeyPacker {
    scratch: Vec<u8>,
}

impl KeyPacker {
    pub fn pack<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]>) -> u128 {
        self.scratch.clear();
        for (i, p) in parts.enumerate() {
            if i > 0 {
                self.scratch.push(SEPARATOR);
            }
            self.scratch.extend_from_slice(p);
        }
        let mut packed = [0u8; 16];
        if self.scratch.len() <= 15 {
            packed[..self.scratch.len()].copy_from_slice(&self.scratch);
            packed[15] = self.scratch.len() as u8;
        } else {
            packed = xxhash_rust::xxh3::xxh3_128(&self.scratch).to_le_bytes();
            packed[15] = HASHED_MARK;
        }
        u128::from_le_bytes(packed)
    }
}

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

#[derive(Clone, Copy)]
struct Best {
    event_time: i64,
    ordinal: u64,
}

#[derive(Default)]
pub(crate) struct WinnerIndex {
    best: HashMap<u128, Best, BuildHasherDefault<PackedKeyHasher>>,
    /// One bit per row ordinal, built by `into_winners`.
    bits: Vec<u64>,
}

impl WinnerIndex {
    /// Sized for about `rows` keys up front: growing a table of a million
    /// entries rehashes every one of them several times over.
    pub fn with_expected_rows(rows: usize) -> WinnerIndex {
        WinnerIndex {
            best: HashMap::with_capacity_and_hasher(rows, Default::default()),
            bits: Vec::new(),
        }
    }

    /// Offer a valid row; rows are offered in file order, so on an equal
    /// event time the earlier row stays.
    pub fn offer(&mut self, key: u128, event_time: i64, ordinal: u64) {
        self.best
            .entry(key)
            .and_modify(|b| {
                if event_time > b.event_time {
                    *b = Best {
                        event_time,
                        ordinal,
                    }
                }
            })
            .or_insert(Best {
                event_time,
                ordinal,
            });
    }

    /// Freeze into a bitset and free the map before the writing pass.
    pub fn into_winners(self) -> WinnerIndex {
        let max = self.best.values().map(|b| b.ordinal + 1).max().unwrap_or(0);
        let mut bits = vec![0u64; max.div_ceil(64) as usize];
        for b in self.best.values() {
            bits[(b.ordinal / 64) as usize] |= 1 << (b.ordinal % 64);
        }
        WinnerIndex {
            best: HashMap::default(),
            bits,
        }
    }

    pub fn is_winner(&self, ordinal: u64) -> bool {
        self.bits
            .get((ordinal / 64) as usize)
            .is_some_and(|w| w & (1 << (ordinal % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_exact_and_long_keys_hashed() {
        let mut p = KeyPacker::default();
        let a = p.pack([b"abc".as_slice()].into_iter());
        let b = p.pack([b"abd".as_slice()].into_iter());
        assert_ne!(a, b);
        // Composite keys are separated, so ("ab","c") != ("a","bc").
        let c1 = p.pack([b"ab".as_slice(), b"c"].into_iter());
        let c2 = p.pack([b"a".as_slice(), b"bc"].into_iter());
        assert_ne!(c1, c2);
        let long1 = p.pack([b"a-very-long-order-identifier-1".as_slice()].into_iter());
        let long2 = p.pack([b"a-very-long-order-identifier-2".as_slice()].into_iter());
        assert_ne!(long1, long2);
        assert_eq!((long1 >> 120) as u8, HASHED_MARK);
    }

    #[test]
    fn latest_wins_and_ties_keep_first() {
        let mut idx = WinnerIndex::default();
        idx.offer(1, 10, 0);
        idx.offer(1, 10, 1); // tie: first stays
        idx.offer(2, 5, 2);
        idx.offer(2, 7, 3); // later event time wins
        idx.offer(2, 6, 4);
        let w = idx.into_winners();
        assert!(w.is_winner(0) && !w.is_winner(1));
        assert!(!w.is_winner(2) && w.is_winner(3) && !w.is_winner(4));
        assert!(!w.is_winner(1000));
    }
}
