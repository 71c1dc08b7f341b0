//! Batches for padded inference: items sorted by length so each batch pads little, each batch
//! bounded by a row count and by a token budget (a padded batch costs rows × longest).

/// Indices of `lengths` grouped into batches, longest items first.
pub fn by_token_budget(lengths: &[usize], max_tokens: usize, max_rows: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = lengths[i].max(1);
        let longest_after = longest.max(len);
        let fits = current.len() < max_rows.max(1)
            && (current.len() + 1) * longest_after <= max_tokens.max(len);
        if !fits && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_within_limits() {
        let lengths = [5, 40, 12, 12, 3, 90, 7, 7, 7, 1];
        let batches = by_token_budget(&lengths, 100, 4);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() <= 4);
            assert!(b.len() == 1 || b.len() * longest <= 100, "{b:?}");
        }
        // Longest first: the 90-token item is alone in the first batch.
        assert_eq!(batches[0], vec![5]);
    }

    #[test]
    fn an_item_over_the_budget_gets_a_batch_of_its_own() {
        assert_eq!(by_token_budget(&[500, 2], 100, 8), vec![vec![0], vec![1]]);
    }
}
