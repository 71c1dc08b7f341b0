//! Draft tokens by prompt lookup: the tokens that followed the latest earlier occurrence of
//! a sequence's last few tokens, in its prompt or in what it has generated. Summaries and
//! brief paragraphs copy names, numbers and phrases from their prompts, so a step can check
//! several of these guesses at once (`schedule`); a wrong guess costs one row of a step and
//! changes nothing, because every token is still the one the model chooses.
//!
//! Written here because the lookup is a few lines over the sequence's own ids, with nothing
//! to configure (the n-gram matching of "prompt lookup decoding", as in vLLM's n-gram
//! proposer).

/// Longest and shortest suffix looked up: longer matches are more often continued, and a
/// one-token match still guesses well in text that copies its prompt.
const LONGEST_MATCH: usize = 3;
const SHORTEST_MATCH: usize = 1;

/// A sequence read as its prompt followed by the tokens generated so far.
pub struct Sequence<'a> {
    pub prompt: &'a [u32],
    pub generated: &'a [u32],
}

impl Sequence<'_> {
    fn len(&self) -> usize {
        self.prompt.len() + self.generated.len()
    }

    fn at(&self, i: usize) -> u32 {
        match i.checked_sub(self.prompt.len()) {
            Some(j) => self.generated[j],
            None => self.prompt[i],
        }
    }

    /// Whether the `n` tokens from `start` equal the sequence's last `n`.
    fn matches_suffix(&self, start: usize, n: usize) -> bool {
        let end = self.len() - n;
        (0..n).all(|i| self.at(start + i) == self.at(end + i))
    }

    /// Up to `most` tokens that followed the latest earlier occurrence of the sequence's
    /// longest suffix (of `LONGEST_MATCH` tokens down to `SHORTEST_MATCH`) that occurred
    /// before with a token after it; none when no suffix did.
    pub fn draft(&self, most: usize) -> Vec<u32> {
        let len = self.len();
        if most == 0 {
            return Vec::new();
        }
        for n in (SHORTEST_MATCH..=LONGEST_MATCH.min(len)).rev() {
            // occurrences that start before the suffix itself does, latest first
            let found = (0..len - n)
                .rev()
                .find(|&start| self.matches_suffix(start, n));
            if let Some(start) = found {
                let from = start + n;
                return (from..len.min(from + most)).map(|i| self.at(i)).collect();
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(prompt: &[u32], generated: &[u32], most: usize) -> Vec<u32> {
        Sequence { prompt, generated }.draft(most)
    }

    #[test]
    fn the_longest_suffix_seen_before_gives_what_followed_it() {
        // "7 8 9" occurred in the prompt, followed by 10 11 12
        assert_eq!(draft(&[1, 7, 8, 9, 10, 11, 12, 2], &[7, 8, 9], 2), [10, 11]);
        // the latest occurrence wins
        assert_eq!(draft(&[5, 6, 1, 5, 6, 2], &[5, 6], 1), [2]);
        // a longer match beats a later, shorter one
        assert_eq!(draft(&[4, 5, 6, 1, 3, 6, 2], &[4, 5, 6], 1), [1]);
    }

    #[test]
    fn the_draft_reaches_into_the_generated_tokens_and_stops_at_the_end() {
        assert_eq!(draft(&[1, 2], &[3, 4, 3], 5), [4, 3]);
        assert_eq!(draft(&[1, 2, 3], &[9], 4), Vec::<u32>::new());
        assert_eq!(draft(&[], &[], 4), Vec::<u32>::new());
        assert_eq!(draft(&[1, 2, 1], &[], 0), Vec::<u32>::new());
    }
}
