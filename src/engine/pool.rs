//! Work on candle's thread pool (the one its own ops use, so the cores are never
//! oversubscribed), in grabs that shrink as the work runs out.
//!
//! candle's `execute_chunked` hands out fixed grabs of an eighth of a thread's share: the
//! thread that takes the last one works alone while the other spins, about half a grab
//! at the end of every matrix product (a profile of the sample run found the main thread
//! computing with the worker idle in a tenth of its product samples). Written here because
//! candle's pool has no guided schedule and rayon's would be a second pool beside it.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `work(range)` over every item of `0..items` once, on all of candle's pool threads: each
/// grab takes the larger of `min_grab` and a share of what is left (guided scheduling), so the
/// last grabs are small and the threads finish together. Items must not depend on each other.
pub fn for_each_guided(items: usize, min_grab: usize, work: impl Fn(Range<usize>) + Sync) {
    if items == 0 {
        return;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let cursor = AtomicUsize::new(0);
    let min_grab = min_grab.max(1);
    // One of candle's items per thread, each then grabbing from the shared cursor (a thread
    // that takes two of candle's items finds nothing left the second time). As with candle's
    // own calls, the work must not call into the pool again.
    pool.execute_chunked(threads, |_| {
        let mut start = cursor.load(Ordering::Relaxed);
        while start < items {
            let grab = ((items - start) / (2 * threads)).max(min_grab);
            let end = items.min(start + grab);
            match cursor.compare_exchange_weak(start, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    work(start..end);
                    start = cursor.load(Ordering::Relaxed);
                }
                Err(now) => start = now,
            }
        }
    });
}

/// Output vectors for a pool pass that writes every value, not zeroed first: outputs of
/// megabytes were zeroed on the main thread alone before the pool wrote them. Each is handed
/// out as an address (an integer, so that pool closures can share it); dropped unfilled, they
/// are empty.
pub struct UnzeroedOutputs(Vec<(Vec<f32>, usize)>);

impl UnzeroedOutputs {
    pub fn new() -> Self {
        UnzeroedOutputs(Vec::new())
    }

    /// A new output of `len` values; returns its address.
    pub fn push(&mut self, len: usize) -> usize {
        let mut out = Vec::with_capacity(len);
        let address = out.as_mut_ptr() as usize;
        self.0.push((out, len));
        address
    }

    /// The outputs, in the order they were pushed.
    ///
    /// # Safety
    /// Every value of every output was written through its address.
    pub unsafe fn assume_filled(self) -> Vec<Vec<f32>> {
        self.0
            .into_iter()
            .map(|(mut out, len)| {
                // SAFETY: within the capacity, and written (the caller's promise)
                unsafe { out.set_len(len) };
                out
            })
            .collect()
    }
}

impl Default for UnzeroedOutputs {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is visited exactly once, for any count and grab.
    #[test]
    fn each_item_runs_once() {
        for items in [0, 1, 2, 3, 17, 1000, 4099] {
            for min_grab in [0, 1, 7, 5000] {
                let seen: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                for_each_guided(items, min_grab, |range| {
                    for i in range {
                        seen[i].fetch_add(1, Ordering::Relaxed);
                    }
                });
                assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1));
            }
        }
    }
}
