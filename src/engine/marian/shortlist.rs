//! Marian's binary lexical shortlist: for each source token, the target tokens most likely to
//! appear in its translation. Restricting the output layer to their union (plus the most
//! frequent target tokens) cuts the largest matrix product of every decoding step.

use std::path::Path;

use crate::error::{Error, Result};

pub struct Shortlist {
    /// Target ids 0..first are always allowed (the most frequent words, `</s>` included).
    first: u32,
    /// `offsets[s]..offsets[s + 1]` indexes `lists` for source token `s`.
    offsets: Vec<u64>,
    lists: Vec<u32>,
}

impl Shortlist {
    /// Layout: six `u64` (magic, checksum, first, best, offsets length, lists length), the
    /// offsets as `u64`, the lists as `u32`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let fail =
            |problem: &str| Error::input(path, format!("not a Marian binary shortlist: {problem}"));
        let word = |i: usize| -> Option<u64> {
            bytes
                .get(i * 8..i * 8 + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let header: Vec<u64> = (0..6)
            .map(word)
            .collect::<Option<_>>()
            .ok_or_else(|| fail("header cut short"))?;
        let (first, n_offsets, n_lists) = (header[2], header[4] as usize, header[5] as usize);
        let lists_start = 48 + 8 * n_offsets;
        if bytes.len() != lists_start + 4 * n_lists || n_offsets < 2 {
            return Err(fail("sizes in the header do not match the file"));
        }
        let offsets: Vec<u64> = bytes[48..lists_start]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let lists: Vec<u32> = bytes[lists_start..]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.last() != Some(&(n_lists as u64)) {
            return Err(fail("offset table out of order or out of range"));
        }
        Ok(Shortlist {
            first: first as u32,
            offsets,
            lists,
        })
    }

    /// Sorted target ids allowed for source tokens `sources`: their lists plus the most
    /// frequent target ids.
    pub fn allowed(&self, sources: impl IntoIterator<Item = u32>, vocab: usize) -> Vec<u32> {
        let mut keep = vec![false; vocab];
        keep.iter_mut()
            .take(self.first as usize)
            .for_each(|k| *k = true);
        for s in sources {
            let s = s as usize;
            if s + 1 >= self.offsets.len() {
                continue;
            }
            for &t in &self.lists[self.offsets[s] as usize..self.offsets[s + 1] as usize] {
                if let Some(k) = keep.get_mut(t as usize) {
                    *k = true;
                }
            }
        }
        keep.iter()
            .enumerate()
            .filter(|(_, &k)| k)
            .map(|(i, _)| i as u32)
            .collect()
    }
}
