//! Names of the packaged layout: splits, data-efficiency percentages, test prompt styles, and the
//! prompt sheet each combination lives in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A split of a packaged dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// `Train_Folder`.
    Train,
    /// `Val_Folder`.
    Val,
    /// `Test_Folder`.
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split's folder: `Train_Folder`, `Val_Folder` or `Test_Folder`.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Train => "Train_Folder",
            Self::Val => "Val_Folder",
            Self::Test => "Test_Folder",
        }
    }

    /// Lower-case name (`train`, `val`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Self::Train),
            "val" | "valid" | "validation" => Ok(Self::Val),
            "test" => Ok(Self::Test),
            other => Err(Error::Config(format!(
                "unknown split {other:?} (expected train, val or test)"
            ))),
        }
    }
}

/// A data-efficiency percentage: the train/val subsets shipped as `Train_text_<P>.xlsx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Percent {
    /// 10 %.
    P10,
    /// 25 %.
    P25,
    /// 50 %.
    P50,
    /// 100 % (the files without suffix).
    P100,
}

impl Percent {
    /// All percentages, ascending.
    pub const ALL: [Percent; 4] = [Percent::P10, Percent::P25, Percent::P50, Percent::P100];

    /// The number (10, 25, 50 or 100).
    pub fn value(self) -> u8 {
        match self {
            Self::P10 => 10,
            Self::P25 => 25,
            Self::P50 => 50,
            Self::P100 => 100,
        }
    }

    /// The suffix of the sheet name: `_10`, `_25`, `_50`, or nothing for 100.
    pub fn sheet_suffix(self) -> String {
        match self {
            Self::P100 => String::new(),
            other => format!("_{}", other.value()),
        }
    }
}

impl TryFrom<u8> for Percent {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self, Error> {
        match value {
            10 => Ok(Self::P10),
            25 => Ok(Self::P25),
            50 => Ok(Self::P50),
            100 => Ok(Self::P100),
            other => Err(Error::Config(format!(
                "unsupported percentage {other} (expected 10, 25, 50 or 100)"
            ))),
        }
    }
}

impl From<Percent> for u8 {
    fn from(p: Percent) -> u8 {
        p.value()
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

impl FromStr for Percent {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let value: u8 = s
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| Error::Config(format!("not a percentage: {s:?}")))?;
        Self::try_from(value)
    }
}

/// A test-prompt style of the prompt ablation (`Test_text_<style>.xlsx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The prompts the model was trained with.
    Original,
    /// Wrong location or attributes, plus a claim that the tissue is normal.
    Contradictory,
    /// The location words deleted.
    MissingLocation,
    /// Long, with re-drawn attributes.
    Overdescriptive,
    /// One constant short sentence.
    Underdescriptive,
}

impl PromptStyle {
    /// All styles, in the order the paper lists them.
    pub const ALL: [PromptStyle; 5] = [
        PromptStyle::Original,
        PromptStyle::Contradictory,
        PromptStyle::MissingLocation,
        PromptStyle::Overdescriptive,
        PromptStyle::Underdescriptive,
    ];

    /// The name used in file names and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Contradictory => "contradictory",
            Self::MissingLocation => "missing_location",
            Self::Overdescriptive => "overdescriptive",
            Self::Underdescriptive => "underdescriptive",
        }
    }
}

impl fmt::Display for PromptStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PromptStyle {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|style| style.as_str() == wanted)
            .ok_or_else(|| Error::Config(format!("unknown prompt style {s:?}")))
    }
}

/// Which prompt sheet: a train or val percentage, or a test style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SheetKind {
    /// `Train_text[_P]`.
    Train(Percent),
    /// `Val_text[_P]`.
    Val(Percent),
    /// `Test_text_<style>`.
    Test(PromptStyle),
}

impl SheetKind {
    /// The split whose folder holds this sheet's files.
    pub fn split(self) -> Split {
        match self {
            Self::Train(_) => Split::Train,
            Self::Val(_) => Split::Val,
            Self::Test(_) => Split::Test,
        }
    }

    /// The sheet's file stem, e.g. `Train_text_10`, `Val_text`, `Test_text_original`.
    pub fn file_stem(self) -> String {
        match self {
            Self::Train(p) => format!("Train_text{}", p.sheet_suffix()),
            Self::Val(p) => format!("Val_text{}", p.sheet_suffix()),
            Self::Test(style) => format!("Test_text_{style}"),
        }
    }

    /// Parses a sheet file stem (the inverse of [`SheetKind::file_stem`]).
    pub fn from_file_stem(stem: &str) -> Option<Self> {
        if let Some(style) = stem.strip_prefix("Test_text_") {
            return style.parse().ok().map(Self::Test);
        }
        let (rest, make): (&str, fn(Percent) -> Self) =
            if let Some(rest) = stem.strip_prefix("Train_text") {
                (rest, Self::Train)
            } else if let Some(rest) = stem.strip_prefix("Val_text") {
                (rest, Self::Val)
            } else {
                return None;
            };
        if rest.is_empty() {
            return Some(make(Percent::P100));
        }
        let percent = rest.strip_prefix('_')?.parse::<Percent>().ok()?;
        (percent != Percent::P100).then_some(make(percent))
    }

    /// Every sheet name the layout defines.
    pub fn all() -> Vec<SheetKind> {
        let mut out: Vec<SheetKind> = Percent::ALL.into_iter().map(Self::Train).collect();
        out.extend(Percent::ALL.into_iter().map(Self::Val));
        out.extend(PromptStyle::ALL.into_iter().map(Self::Test));
        out
    }

    /// The key this sheet's count has in an inspect report (`"10"`, `"100"`, `"original"`...).
    pub fn report_key(self) -> String {
        match self {
            Self::Train(p) | Self::Val(p) => p.to_string(),
            Self::Test(style) => style.to_string(),
        }
    }
}

impl fmt::Display for SheetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_stem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_stems_round_trip() {
        for kind in SheetKind::all() {
            assert_eq!(SheetKind::from_file_stem(&kind.file_stem()), Some(kind));
        }
        assert_eq!(
            SheetKind::Train(Percent::P100).file_stem(),
            "Train_text",
            "100 % has no suffix"
        );
        assert_eq!(SheetKind::Val(Percent::P25).file_stem(), "Val_text_25");
        assert_eq!(
            SheetKind::Test(PromptStyle::MissingLocation).file_stem(),
            "Test_text_missing_location"
        );
    }

    #[test]
    fn unknown_stems_are_rejected() {
        for stem in [
            "Train_text_100",
            "Train_text_30",
            "Train_textx",
            "Test_text_funny",
            "Foo",
        ] {
            assert_eq!(SheetKind::from_file_stem(stem), None, "{stem}");
        }
    }

    #[test]
    fn parse_names() {
        assert_eq!("50%".parse::<Percent>().unwrap(), Percent::P50);
        assert!("33".parse::<Percent>().is_err());
        assert_eq!(
            "missing-location".parse::<PromptStyle>().unwrap(),
            PromptStyle::MissingLocation
        );
        assert_eq!("Validation".parse::<Split>().unwrap(), Split::Val);
    }
}
