//! Groups a brief's sources into stories: articles whose English headlines name the same
//! company, person or product are one story, written as one paragraph that cites them all.

use std::collections::BTreeSet;

use crate::language::names::english_name_words;

/// The words of a headline that can identify its story: its names of three letters or more.
fn story_names(headline: &str) -> BTreeSet<String> {
    english_name_words(headline, 3)
}

/// Stories as lists of indices into `headlines`, in order of their first article; an article
/// shares a story with every article whose headline names something its own does.
pub fn group(headlines: &[&str]) -> Vec<Vec<usize>> {
    let names: Vec<BTreeSet<String>> = headlines.iter().map(|h| story_names(h)).collect();
    let mut story_of: Vec<Option<usize>> = vec![None; headlines.len()];
    let mut stories: Vec<Vec<usize>> = Vec::new();
    for i in 0..headlines.len() {
        if story_of[i].is_some() {
            continue;
        }
        let story = stories.len();
        stories.push(vec![i]);
        story_of[i] = Some(story);
        // Everything linked to the story so far joins it.
        let mut k = 0;
        while k < stories[story].len() {
            let member = stories[story][k];
            for j in 0..headlines.len() {
                if story_of[j].is_none() && !names[member].is_disjoint(&names[j]) {
                    story_of[j] = Some(story);
                    stories[story].push(j);
                }
            }
            k += 1;
        }
        stories[story].sort_unstable();
    }
    stories
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headlines_naming_the_same_company_make_one_story() {
        let headlines = [
            "CleanSpark bets strong on AI: executive hires with 40 years of experience",
            "CleanSpark announced a major initiative in the infrastructure of AI data centers",
            "CleanSpark appointed Jifri Tomás, who led a data center program in Saudi Arabia",
            "NVIDIA has invested $680 million in a British AI company",
            "Cryptocurrency miners are now using AI as a new source of income",
        ];
        assert_eq!(group(&headlines), [vec![0, 1, 2], vec![3], vec![4]]);
    }
}
