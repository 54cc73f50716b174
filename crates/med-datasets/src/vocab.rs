//! WordPiece vocabularies built from prompts, for BERT text towers trained from scratch: the
//! synthetic datasets' `vocab.txt` and, with no pretrained tower to match, a user's own training
//! prompts.

use std::collections::{BTreeMap, HashSet};

/// The special tokens, in BERT's order (`[PAD]` is id 0).
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// BERT's basic tokenisation (uncased): lower-case, split on white space, and make every ASCII
/// punctuation character a token of its own.
pub fn basic_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.to_lowercase().split_whitespace() {
        let mut current = String::new();
        for c in word.chars() {
            if c.is_ascii_punctuation() {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(c.to_string());
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            tokens.push(current);
        }
    }
    tokens
}

/// A vocabulary built by [`prompt_vocabulary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptVocabulary {
    /// The tokens in id order, one line each of a `vocab.txt`.
    pub tokens: Vec<String>,
    /// Distinct words of the prompts that did not fit under the size limit (the rarest); they
    /// still tokenise, letter by letter.
    pub dropped_words: usize,
}

impl PromptVocabulary {
    /// The `vocab.txt` text: one token a line.
    pub fn to_text(&self) -> String {
        let mut text = self.tokens.join("\n");
        text.push('\n');
        text
    }
}

/// The WordPiece vocabulary of `texts`, at most `max_size` tokens: the special tokens, the
/// punctuation used, the words (sorted), then single letters and digits and their `##`
/// continuations so that any other lower-case ASCII word still tokenises without `[UNK]`.
/// When the words do not all fit, the most frequent ones are kept.
pub fn prompt_vocabulary<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    max_size: usize,
) -> PromptVocabulary {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for text in texts {
        for token in basic_tokens(text) {
            *counts.entry(token).or_default() += 1;
        }
    }
    let (punctuation, words): (Vec<_>, Vec<_>) = counts
        .into_iter()
        .partition(|(w, _)| w.chars().all(|c| c.is_ascii_punctuation()));
    let characters: Vec<String> = ('a'..='z').chain('0'..='9').map(String::from).collect();
    let continuations: Vec<String> = characters.iter().map(|c| format!("##{c}")).collect();
    let always: HashSet<String> = characters.iter().chain(&continuations).cloned().collect();
    // Words that are single letters are in the vocabulary anyway: they take no room.
    let (mut kept, mut counted): (Vec<_>, Vec<_>) =
        words.into_iter().partition(|(w, _)| always.contains(w));
    let fixed = SPECIAL_TOKENS.len() + punctuation.len() + always.len();
    let room = max_size.saturating_sub(fixed);
    let dropped_words = counted.len().saturating_sub(room);
    if dropped_words > 0 {
        // Most frequent first (the sort is stable: ties stay alphabetical).
        counted.sort_by_key(|w| std::cmp::Reverse(w.1));
        counted.truncate(room);
    }
    kept.extend(counted);
    kept.sort();
    let mut tokens: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    tokens.extend(punctuation.into_iter().map(|(p, _)| p));
    tokens.extend(kept.into_iter().map(|(w, _)| w));
    let present: HashSet<String> = tokens.iter().cloned().collect();
    tokens.extend(
        characters
            .into_iter()
            .chain(continuations)
            .filter(|t| !present.contains(t)),
    );
    PromptVocabulary {
        tokens,
        dropped_words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_tokens_split_punctuation_and_lowercase() {
        assert_eq!(basic_tokens("Lesion visible."), ["lesion", "visible", "."]);
        assert_eq!(
            basic_tokens("small, dark  lesion"),
            ["small", ",", "dark", "lesion"]
        );
    }

    #[test]
    fn words_are_sorted_after_specials_and_punctuation_without_duplicates() {
        let v = prompt_vocabulary(["Tumor, left kidney.", "tumor in a liver"], usize::MAX);
        assert_eq!(v.dropped_words, 0);
        assert_eq!(&v.tokens[..5], &SPECIAL_TOKENS);
        // "a" is also a single letter: it stands with the words, once.
        assert_eq!(
            &v.tokens[5..13],
            [",", ".", "a", "in", "kidney", "left", "liver", "tumor"]
        );
        assert_eq!(v.tokens.len(), 12 + 72);
        assert_eq!(v.tokens.iter().filter(|t| *t == "a").count(), 1);
        assert!(v.to_text().starts_with("[PAD]\n[UNK]\n"));
    }

    #[test]
    fn a_size_limit_keeps_the_most_frequent_words() {
        let v = prompt_vocabulary(["tumor tumor cyst cyst lesion"], 5 + 72 + 2);
        assert_eq!(v.dropped_words, 1);
        assert!(v.tokens.contains(&"tumor".to_string()));
        assert!(v.tokens.contains(&"cyst".to_string()));
        assert!(!v.tokens.contains(&"lesion".to_string()));
        assert_eq!(v.tokens.len(), 5 + 72 + 2);
    }
}
