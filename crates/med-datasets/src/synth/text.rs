//! Prompt grammar of the synthetic datasets, and the WordPiece vocabulary that covers it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::scene::{Brightness, Lesion, Location, Shape, Size};
use crate::kinds::PromptStyle;
use crate::vocab::prompt_vocabulary;

/// The imaging domain, which changes the wording of the long prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// Grey ultrasound-like images.
    Ultrasound,
    /// Colour endoscopy-like images (the shifted domain).
    Endoscopy,
}

/// The prompt of an image without lesion.
pub(crate) const NO_LESION: &str = "no lesion in the image.";
/// The constant underdescriptive prompt.
pub(crate) const UNDERDESCRIPTIVE: &str = "Lesion visible.";
const NORMAL_TISSUE: &str = "but the tissue appears completely normal and healthy.";
const US_CONTEXT: &str =
    "surrounded by heterogeneous speckle texture and minor acoustic shadowing.";
const ENDO_CONTEXT: &str = "surrounded by minor mucosal irregularities and vascular patterns.";
const US_EMPTY: &str = "An ultrasound image shows homogeneous speckle texture with no visible lesion, mass or focal abnormality in any region of the image.";
const ENDO_EMPTY: &str = "An endoscopic image shows smooth mucosa with no visible lesion, mass or focal abnormality in any region of the image.";
/// Fixed words of the templates below, for the vocabulary.
const TEMPLATE_WORDS: &str = "one lesion located in of the image detected an ultrasound endoscopic reveals a clearly visible region";

/// The `original` prompt of a lesion (the training prompt).
pub(crate) fn original(lesion: Option<&Lesion>) -> String {
    match lesion {
        None => NO_LESION.to_string(),
        Some(l) => format!(
            "one {} {} {} lesion located in {} of the image",
            l.size.word(),
            l.shape.word(),
            l.brightness.word(),
            l.location.words()
        ),
    }
}

/// The prompt of `style` for an image whose named lesion is `lesion`.
pub(crate) fn styled(
    style: PromptStyle,
    lesion: Option<&Lesion>,
    domain: Domain,
    rng: &mut ChaCha8Rng,
) -> String {
    match style {
        PromptStyle::Original => original(lesion),
        PromptStyle::Contradictory => contradictory(lesion, rng),
        PromptStyle::MissingLocation => missing_location(lesion),
        PromptStyle::Overdescriptive => overdescriptive(lesion, domain, rng),
        PromptStyle::Underdescriptive => UNDERDESCRIPTIVE.to_string(),
    }
}

/// Re-drawn attributes, a location other than the true one, and a claim of normal tissue.
fn contradictory(lesion: Option<&Lesion>, rng: &mut ChaCha8Rng) -> String {
    let true_location = lesion.map(|l| l.location);
    let others: Vec<Location> = Location::ALL
        .into_iter()
        .filter(|&l| Some(l) != true_location)
        .collect();
    let location = others[rng.random_range(0..others.len())];
    let (size, shape, brightness) = random_attributes(rng);
    let mut text = format!(
        "{} {} {} lesion detected in the {}, {NORMAL_TISSUE}",
        size.word(),
        shape.word(),
        brightness.word(),
        location.words()
    );
    capitalize(&mut text);
    text
}

/// The original prompt with the location words deleted (double space kept, as in the real data).
fn missing_location(lesion: Option<&Lesion>) -> String {
    match lesion {
        None => NO_LESION.to_string(),
        Some(l) => format!(
            "one {} {} {} lesion located in  of the image",
            l.size.word(),
            l.shape.word(),
            l.brightness.word()
        ),
    }
}

/// A long description with re-drawn attributes and location.
fn overdescriptive(lesion: Option<&Lesion>, domain: Domain, rng: &mut ChaCha8Rng) -> String {
    let (kind, context, empty) = match domain {
        Domain::Ultrasound => ("ultrasound", US_CONTEXT, US_EMPTY),
        Domain::Endoscopy => ("endoscopic", ENDO_CONTEXT, ENDO_EMPTY),
    };
    if lesion.is_none() {
        return empty.to_string();
    }
    let (size, shape, brightness) = random_attributes(rng);
    let location = Location::ALL[rng.random_range(0..Location::ALL.len())];
    format!(
        "An {kind} image reveals a clearly visible {}, {}, {} lesion located in the {} region of the image, {context}",
        size.word(),
        brightness.word(),
        shape.word(),
        location.words()
    )
}

fn random_attributes(rng: &mut ChaCha8Rng) -> (Size, Shape, Brightness) {
    (
        Size::ALL[rng.random_range(0..Size::ALL.len())],
        Shape::ALL[rng.random_range(0..Shape::ALL.len())],
        Brightness::ALL[rng.random_range(0..Brightness::ALL.len())],
    )
}

fn capitalize(text: &mut String) {
    if let Some(first) = text.get(0..1) {
        let upper = first.to_ascii_uppercase();
        text.replace_range(0..1, &upper);
    }
}

/// The WordPiece vocabulary of the synthetic prompts: every word the generator can emit, in
/// the layout of [`prompt_vocabulary`], so that any other lower-case ASCII word still tokenises
/// without `[UNK]`.
pub fn vocabulary() -> Vec<String> {
    let mut texts: Vec<&str> = vec![
        NO_LESION,
        UNDERDESCRIPTIVE,
        NORMAL_TISSUE,
        US_CONTEXT,
        ENDO_CONTEXT,
        US_EMPTY,
        ENDO_EMPTY,
        TEMPLATE_WORDS,
    ];
    texts.extend(Size::ALL.iter().map(|s| s.word()));
    texts.extend(Shape::ALL.iter().map(|s| s.word()));
    texts.extend(Brightness::ALL.iter().map(|b| b.word()));
    texts.extend(Location::ALL.iter().map(|l| l.words()));
    prompt_vocabulary(texts, usize::MAX).tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::SPECIAL_TOKENS;

    #[test]
    fn vocabulary_starts_with_the_special_tokens_and_has_no_duplicates() {
        let vocab = vocabulary();
        assert_eq!(&vocab[..5], &SPECIAL_TOKENS);
        let mut sorted = vocab.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), vocab.len());
        for w in [
            "lesion",
            "top",
            "left",
            "center",
            "irregular",
            ".",
            ",",
            "##q",
            "ultrasound",
        ] {
            assert!(vocab.iter().any(|v| v == w), "{w}");
        }
    }
}
