//! The registry of the 16 MedCLIPSeg datasets, kept as data in this crate's `registry.toml`
//! (embedded at compile time) and parsed into typed structs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::convert::SourceFormat;
use crate::error::{Error, Result};
use crate::kinds::{Percent, PromptStyle, SheetKind};

/// The registry file's text, embedded.
pub const REGISTRY_TOML: &str = include_str!("../registry.toml");

/// What a dataset is used for in the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Trained at 10/25/50/100 % of its training data.
    DataEfficiency,
    /// Trained on, then tested on the targets of its group.
    DgSource,
    /// Only tested, with the checkpoint of its group's source.
    DgTarget,
}

impl Role {
    /// The name used in the registry file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DataEfficiency => "data-efficiency",
            Self::DgSource => "dg-source",
            Self::DgTarget => "dg-target",
        }
    }
}

/// Domain-generalisation group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DgGroup {
    /// Breast ultrasound (source BUSI).
    Bus,
    /// Colon endoscopy (source Kvasir).
    Endo,
    /// Dermatoscopy (source ISIC).
    Derm,
    /// Brain MRI (source BTMRI).
    Brain,
}

impl DgGroup {
    /// The name used in the registry file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bus => "BUS",
            Self::Endo => "ENDO",
            Self::Derm => "DERM",
            Self::Brain => "BRAIN",
        }
    }
}

/// Expected row counts of one dataset's prompt sheets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedRows {
    /// Rows of `Train_text[_P]`, by percentage.
    pub train: BTreeMap<Percent, usize>,
    /// Rows of `Val_text[_P]`, by percentage.
    pub val: BTreeMap<Percent, usize>,
    /// Rows of each `Test_text_<style>`.
    pub test: usize,
    /// Distinct image names in train sheets that list an image twice.
    pub train_unique: BTreeMap<Percent, usize>,
}

impl ExpectedRows {
    /// Expected rows of one sheet, or `None` if the dataset does not ship it.
    pub fn of(&self, kind: SheetKind, styles: &[PromptStyle]) -> Option<usize> {
        match kind {
            SheetKind::Train(p) => self.train.get(&p).copied(),
            SheetKind::Val(p) => self.val.get(&p).copied(),
            SheetKind::Test(style) => styles.contains(&style).then_some(self.test),
        }
    }

    /// Expected distinct images of one sheet (the row count unless a duplicate is known).
    pub fn unique_of(&self, kind: SheetKind, styles: &[PromptStyle]) -> Option<usize> {
        match kind {
            SheetKind::Train(p) => self
                .train_unique
                .get(&p)
                .copied()
                .or_else(|| self.of(kind, styles)),
            _ => self.of(kind, styles),
        }
    }
}

/// Values of a dataset's official `configs/<name>.yaml` that differ from the common paper
/// config; `None` keeps the common value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperConfig {
    /// `TRAIN.NUM_EPOCHS` (EUS trains 10 epochs, the others 100).
    pub epochs: Option<usize>,
    /// `MODEL.GATE_INIT` (Covid19 starts the gates at -0.02, the others at 0).
    pub gate_init: Option<f64>,
}

/// One dataset of the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetInfo {
    /// Folder name under the data root.
    pub name: String,
    /// What the dataset is.
    pub full_name: String,
    /// Imaging modality.
    pub modality: String,
    /// Organ.
    pub organ: String,
    /// Roles in the paper's experiments.
    pub roles: Vec<Role>,
    /// Domain-generalisation group, if the dataset is part of one.
    pub dg_group: Option<DgGroup>,
    /// Training-data percentages shipped.
    pub percentages: Vec<Percent>,
    /// Test prompt styles shipped.
    pub prompt_styles: Vec<PromptStyle>,
    /// Converter for the original public release, if there is one.
    pub raw_format: Option<SourceFormat>,
    /// Expected rows of each sheet.
    pub rows: ExpectedRows,
    /// Known oddities.
    pub notes: Vec<String>,
    /// Where the official config departs from the common paper config.
    pub paper_config: PaperConfig,
}

impl DatasetInfo {
    /// Every prompt sheet this dataset ships.
    pub fn sheets(&self) -> Vec<SheetKind> {
        let mut out: Vec<SheetKind> = self
            .percentages
            .iter()
            .map(|&p| SheetKind::Train(p))
            .collect();
        out.extend(self.percentages.iter().map(|&p| SheetKind::Val(p)));
        out.extend(self.prompt_styles.iter().map(|&s| SheetKind::Test(s)));
        out
    }
}

/// The parsed registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registry {
    /// The datasets, in the file's order.
    pub datasets: Vec<DatasetInfo>,
}

/// The embedded registry, parsed once.
pub fn registry() -> Result<&'static Registry> {
    static PARSED: OnceLock<std::result::Result<Registry, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| Registry::parse(REGISTRY_TOML).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Registry(e.clone()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    dataset: Vec<RawDataset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: String,
    full_name: String,
    modality: String,
    organ: String,
    roles: Vec<Role>,
    dg_group: Option<DgGroup>,
    percentages: Vec<Percent>,
    prompt_styles: Vec<PromptStyle>,
    raw_format: Option<SourceFormat>,
    train_rows: BTreeMap<String, usize>,
    val_rows: BTreeMap<String, usize>,
    test_rows: usize,
    #[serde(default)]
    train_unique_rows: BTreeMap<String, usize>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    paper_config: PaperConfig,
}

impl Registry {
    /// Parses and validates registry TOML text.
    pub fn parse(text: &str) -> Result<Registry> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| Error::Registry(e.to_string()))?;
        let datasets = raw
            .dataset
            .into_iter()
            .map(RawDataset::into_info)
            .collect::<Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        for d in &datasets {
            if !seen.insert(d.name.as_str()) {
                return Err(Error::Registry(format!(
                    "dataset {:?} listed twice",
                    d.name
                )));
            }
        }
        Ok(Registry { datasets })
    }

    /// The registered domain-generalisation targets of `source`'s group (the datasets a model
    /// trained on `source` is tested on in the paper) that exist as folders under `root`.
    pub fn dg_targets(&self, source: &str, root: &std::path::Path) -> Result<Vec<String>> {
        let info = self.get(source).ok_or_else(|| Error::NoDgGroup {
            dataset: source.to_string(),
            reason: "is not a registered dataset, so it has no DG group",
        })?;
        let group = info.dg_group.ok_or_else(|| Error::NoDgGroup {
            dataset: source.to_string(),
            reason: "belongs to no domain-generalisation group",
        })?;
        Ok(self
            .datasets
            .iter()
            .filter(|d| d.name != source && d.dg_group == Some(group))
            .filter(|d| root.join(&d.name).is_dir())
            .map(|d| d.name.clone())
            .collect())
    }

    /// Looks a dataset up by name (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&DatasetInfo> {
        self.datasets
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The registry as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Registry(e.to_string()))
    }

    /// The registry as a plain-text table (for `medclipseg datasets`).
    pub fn render_table(&self) -> String {
        let header = [
            "name",
            "modality",
            "organ",
            "roles",
            "DG",
            "train/val/test",
            "%",
            "styles",
        ];
        let rows: Vec<[String; 8]> = self.datasets.iter().map(table_row).collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        push_table_line(&mut out, &header.map(String::from), &widths);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        push_table_line(&mut out, &rule, &widths);
        for row in &rows {
            push_table_line(&mut out, row, &widths);
        }
        out
    }
}

fn table_row(d: &DatasetInfo) -> [String; 8] {
    let full = |m: &BTreeMap<Percent, usize>| m.get(&Percent::P100).copied().unwrap_or(0);
    let percents: Vec<String> = d.percentages.iter().map(|p| p.to_string()).collect();
    [
        d.name.clone(),
        d.modality.clone(),
        d.organ.clone(),
        d.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(","),
        d.dg_group.map_or("-", DgGroup::as_str).to_string(),
        format!(
            "{}/{}/{}",
            full(&d.rows.train),
            full(&d.rows.val),
            d.rows.test
        ),
        percents.join(","),
        d.prompt_styles.len().to_string(),
    ]
}

fn push_table_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let mut line = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let _ = write!(line, "{cell:<w$}");
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn percent_map(
    name: &str,
    field: &str,
    raw: BTreeMap<String, usize>,
) -> Result<BTreeMap<Percent, usize>> {
    raw.into_iter()
        .map(|(k, v)| {
            let p = k
                .parse::<Percent>()
                .map_err(|e| Error::Registry(format!("{name}.{field}: {e}")))?;
            Ok((p, v))
        })
        .collect()
}

impl RawDataset {
    fn into_info(self) -> Result<DatasetInfo> {
        let name = self.name;
        let rows = ExpectedRows {
            train: percent_map(&name, "train_rows", self.train_rows)?,
            val: percent_map(&name, "val_rows", self.val_rows)?,
            test: self.test_rows,
            train_unique: percent_map(&name, "train_unique_rows", self.train_unique_rows)?,
        };
        for p in &self.percentages {
            if !rows.train.contains_key(p) || !rows.val.contains_key(p) {
                return Err(Error::Registry(format!(
                    "{name}: percentage {p} has no train_rows/val_rows entry"
                )));
            }
        }
        Ok(DatasetInfo {
            name,
            full_name: self.full_name,
            modality: self.modality,
            organ: self.organ,
            roles: self.roles,
            dg_group: self.dg_group,
            percentages: self.percentages,
            prompt_styles: self.prompt_styles,
            raw_format: self.raw_format,
            rows,
            notes: self.notes,
            paper_config: self.paper_config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dg_targets_are_the_group_members_present_under_the_root() {
        let registry = registry().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        for name in ["BUSI", "BUSUC", "UDIAT", "Kvasir"] {
            std::fs::create_dir_all(tmp.path().join(name)).unwrap();
        }
        let targets = registry.dg_targets("BUSI", tmp.path()).unwrap();
        assert_eq!(targets, ["BUSUC", "UDIAT"]);
        let err = registry.dg_targets("MyScans", tmp.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MyScans is not a registered dataset, so it has no DG group"
        );
    }

    #[test]
    fn embedded_registry_has_the_16_datasets() {
        let reg = registry().unwrap();
        let names: Vec<&str> = reg.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "BUSI",
                "BTMRI",
                "ISIC",
                "Kvasir",
                "Covid19",
                "EUS",
                "BUSUC",
                "BUSBRA",
                "BUID",
                "UDIAT",
                "BRISC",
                "UWaterlooSkinCancer",
                "ColonDB",
                "ClinicDB",
                "CVC300",
                "BKAI"
            ]
        );
        let total_sheets: usize = reg.datasets.iter().map(|d| d.sheets().len()).sum();
        assert_eq!(
            total_sheets, 140,
            "the official repository ships 140 sheets"
        );
    }

    #[test]
    fn roles_and_groups_match_the_paper() {
        let reg = registry().unwrap();
        let de: Vec<&str> = reg
            .datasets
            .iter()
            .filter(|d| d.roles.contains(&Role::DataEfficiency))
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(de, ["BUSI", "BTMRI", "ISIC", "Kvasir", "Covid19", "EUS"]);
        for (source, group) in [
            ("BUSI", DgGroup::Bus),
            ("Kvasir", DgGroup::Endo),
            ("ISIC", DgGroup::Derm),
            ("BTMRI", DgGroup::Brain),
        ] {
            let d = reg.get(source).unwrap();
            assert!(d.roles.contains(&Role::DgSource));
            assert_eq!(d.dg_group, Some(group));
        }
        let targets = reg
            .datasets
            .iter()
            .filter(|d| d.roles == [Role::DgTarget])
            .count();
        assert_eq!(targets, 10);
        assert_eq!(
            reg.get("covid19").unwrap().prompt_styles,
            [PromptStyle::Original]
        );
    }

    #[test]
    fn expected_rows_lookups() {
        let reg = registry().unwrap();
        let isic = reg.get("ISIC").unwrap();
        let styles = &isic.prompt_styles;
        assert_eq!(
            isic.rows.of(SheetKind::Train(Percent::P100), styles),
            Some(810)
        );
        assert_eq!(
            isic.rows.unique_of(SheetKind::Train(Percent::P100), styles),
            Some(809)
        );
        assert_eq!(isic.rows.of(SheetKind::Val(Percent::P10), styles), Some(9));
        assert_eq!(
            isic.rows
                .of(SheetKind::Test(PromptStyle::Underdescriptive), styles),
            Some(379)
        );
        let eus = reg.get("EUS").unwrap();
        assert_eq!(
            eus.rows.of(
                SheetKind::Test(PromptStyle::Contradictory),
                &eus.prompt_styles
            ),
            None
        );
    }

    #[test]
    fn paper_config_departures_match_the_official_yaml() {
        let reg = registry().unwrap();
        let departures: Vec<(&str, PaperConfig)> = reg
            .datasets
            .iter()
            .filter(|d| d.paper_config != PaperConfig::default())
            .map(|d| (d.name.as_str(), d.paper_config))
            .collect();
        assert_eq!(
            departures,
            [
                (
                    "Covid19",
                    PaperConfig {
                        epochs: None,
                        gate_init: Some(-0.02)
                    }
                ),
                (
                    "EUS",
                    PaperConfig {
                        epochs: Some(10),
                        gate_init: None
                    }
                ),
            ]
        );
        let err = Registry::parse(&REGISTRY_TOML.replace(
            "paper_config = { epochs = 10 }",
            "paper_config = { lr = 1 }",
        ))
        .unwrap_err();
        assert!(err.to_string().contains("lr"), "{err}");
    }

    #[test]
    fn table_and_json_render() {
        let reg = registry().unwrap();
        let table = reg.render_table();
        assert_eq!(table.lines().count(), 18);
        assert!(table.contains("UWaterlooSkinCancer"));
        assert!(table.contains("624/78/78"));
        let json: serde_json::Value = serde_json::from_str(&reg.to_json().unwrap()).unwrap();
        assert_eq!(json["datasets"][0]["name"], "BUSI");
        assert_eq!(json["datasets"][0]["rows"]["train"]["10"], 62);
        assert_eq!(json["datasets"][0]["raw_format"], "busi");
    }

    #[test]
    fn malformed_registry_is_rejected() {
        assert!(Registry::parse("[[dataset]]\nname = 1\n").is_err());
        let twice = REGISTRY_TOML.to_string()
            + "\n"
            + &REGISTRY_TOML[REGISTRY_TOML.find("[[dataset]]").unwrap()..];
        let err = Registry::parse(&twice).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
