//! Names across scripts: an Arabic word and an English (or any Latin-script) word reduced to
//! the same consonant skeleton, so that جيفري توماس and "Jeffrey Thomas", or لاس فيغاس and
//! "Las Vegas", match despite spelling variants. Vowels are dropped (Arabic writes few of
//! them and English spells them freely) and consonants that the two scripts render
//! interchangeably share one class (g/j/k/q, s/z/sh/th, t/ṭ, d/ḍ/dh, b/p, f/v). Written here
//! because no crate transliterates Arabic names for matching rather than for display.

/// Whether `c` is a letter of the Arabic script (base letters and presentation forms).
pub fn is_arabic(c: char) -> bool {
    matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        && c.is_alphabetic()
}

/// The consonant class of an Arabic letter; `None` for vowels, hamza carriers and marks.
fn arabic_class(c: char) -> Option<char> {
    Some(match c {
        'ب' | 'پ' => 'b',
        'ت' | 'ط' => 't',
        'ث' | 'س' | 'ص' | 'ش' | 'ز' | 'ظ' => 's',
        'ج' | 'ك' | 'ق' | 'غ' | 'خ' | 'گ' => 'k',
        'ح' | 'ه' => 'h',
        'د' | 'ض' | 'ذ' => 'd',
        'ر' => 'r',
        'ف' | 'ڤ' => 'f',
        'ل' => 'l',
        'م' => 'm',
        'ن' => 'n',
        _ => return None,
    })
}

/// The skeleton of an Arabic word: its consonant classes, repeats collapsed.
pub fn arabic_skeleton(word: &str) -> String {
    // Foreign names write "ch" as تش: one sound, as in English.
    let word = word.replace("تش", "ش");
    collapse(word.chars().filter_map(arabic_class))
}

/// The skeletons a Latin-script word may have: "gh" inside a word is silent in English names
/// (Willoughby) but renders غ in Arabic ones (Baghdad), so both are tried.
pub fn latin_skeletons(word: &str) -> Vec<String> {
    let mut out = vec![latin_skeleton(word)];
    let lower = word.to_lowercase();
    if lower.get(1..).is_some_and(|rest| rest.contains("gh")) {
        let hard = format!("{}{}", &lower[..1], lower[1..].replace("gh", "g"));
        out.push(latin_skeleton(&hard));
    }
    out
}

/// The skeleton of a Latin-script word, in the classes of [`arabic_skeleton`].
pub fn latin_skeleton(word: &str) -> String {
    let lower: String = word
        .to_lowercase()
        .chars()
        .map(fold_accent)
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    let chars: Vec<char> = lower.chars().collect();
    let mut classes = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        // Digraphs that are one consonant.
        let digraph = match (c, next) {
            ('p', Some('h')) => Some('f'),
            ('t' | 's' | 'c', Some('h')) => Some(if c == 't' { 't' } else { 's' }),
            // "gh" is silent inside English names (Willoughby, Vaughan).
            ('g', Some('h')) if i > 0 => {
                i += 2;
                continue;
            }
            ('k' | 'g', Some('h')) => Some('k'),
            ('c', Some('k')) | ('q', Some('u')) => Some('k'),
            _ => None,
        };
        if let Some(class) = digraph {
            classes.push(class);
            i += 2;
            continue;
        }
        let class = match c {
            'b' | 'p' => Some('b'),
            't' => Some('t'),
            'd' => Some('d'),
            's' | 'z' => Some('s'),
            'c' if matches!(next, Some('e' | 'i' | 'y')) => Some('s'),
            'c' | 'k' | 'q' | 'g' | 'j' => Some('k'),
            'x' => {
                classes.push('k');
                Some('s')
            }
            'f' | 'v' => Some('f'),
            'h' => Some('h'),
            'l' | 'm' | 'n' | 'r' => Some(c),
            _ => None,
        };
        classes.extend(class);
        i += 1;
    }
    collapse(classes.into_iter())
}

fn collapse(classes: impl Iterator<Item = char>) -> String {
    let mut out = String::new();
    for c in classes {
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

fn fold_accent(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ç' => 'c',
        'ñ' => 'n',
        _ => c,
    }
}

/// The skeletons an Arabic word may stand for: the word itself and the word without the
/// prefixes Arabic joins to a name (the article ال, the conjunction و, the prepositions ب ل ك ف).
pub fn arabic_word_skeletons(word: &str) -> Vec<String> {
    let mut forms = vec![word.to_string()];
    for prefix in [
        "وال", "بال", "فال", "كال", "لل", "ال", "و", "ب", "ل", "ف", "ك",
    ] {
        if let Some(rest) = word.strip_prefix(prefix) {
            if rest.chars().count() >= 2 {
                forms.push(rest.to_string());
            }
        }
    }
    let mut out: Vec<String> = forms.iter().map(|f| arabic_skeleton(f)).collect();
    out.dedup();
    out
}

/// Whether two skeletons are the same name: equal, or one edit apart when both have three
/// or more consonants, two when six or more. A one-consonant skeleton (Joko, Wayde) matches
/// only itself; an empty one nothing.
pub fn skeletons_match(a: &str, b: &str) -> bool {
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la == 0 || lb == 0 {
        return false;
    }
    if la == 1 || lb == 1 {
        return a == b;
    }
    let allowed = match la.min(lb) {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    la.abs_diff(lb) <= allowed && strsim::levenshtein(a, b) <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(arabic: &str, english: &str) -> bool {
        let skeletons = latin_skeletons(english);
        arabic_word_skeletons(arabic)
            .iter()
            .any(|s| skeletons.iter().any(|l| skeletons_match(s, l)))
    }

    #[test]
    fn names_match_across_scripts() {
        for (arabic, english) in [
            ("جيفري", "Jeffrey"),
            ("توماس", "Thomas"),
            ("لاس", "Las"),
            ("فيغاس", "Vegas"),
            ("أتلانتا", "Atlanta"),
            ("باكستان", "Pakistan"),
            ("وإنفيديا", "Nvidia"),
            ("مايكروسوفت", "Microsoft"),
            ("تشارلز", "Charles"),
            ("بريطانيا", "Britain"),
            ("ويلوبي", "Willoughby"),
            ("جوكو", "Joko"),
            ("بغداد", "Baghdad"),
        ] {
            assert!(
                matches(arabic, english),
                "{arabic} {} vs {english} {}",
                arabic_skeleton(arabic),
                latin_skeleton(english)
            );
        }
    }

    #[test]
    fn different_names_do_not_match() {
        for (arabic, english) in [
            ("فيغاس", "Lashgar"),
            ("توماس", "Pakistan"),
            ("جيفري", "Tokyo"),
            ("السعودية", "Jakarta"),
        ] {
            assert!(!matches(arabic, english), "{arabic} vs {english}");
        }
    }

    #[test]
    fn arabic_letters_are_recognised() {
        assert!(is_arabic('ج') && !is_arabic('j') && !is_arabic('٣'));
    }
}
