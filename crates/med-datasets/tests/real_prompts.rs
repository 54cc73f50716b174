//! Parses all 140 real MedCLIPSeg prompt sheets (in `<repo>/../shared/medclipseg-prompts`) and
//! checks them against the registry and against the table of `shared/spec/medclipseg.md` §4.2.
//! Skips (and says so) when the shared folder is not next to the repository; when it is there,
//! every dataset's sheets must be too.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use med_datasets::synth::basic_tokens;
use med_datasets::{
    Percent, PromptStyle, SheetKind, prompt_vocabulary, read_prompt_sheet, registry,
};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The prompt sheets, or `None` (said on stdout) when there is no shared folder at all: a
/// fresh clone has it only in CI. A shared folder without the sheets is a failure.
fn prompts_root() -> Option<PathBuf> {
    if !shared().is_dir() {
        println!("skipping: no shared folder at {}", shared().display());
        return None;
    }
    let root = shared().join("medclipseg-prompts");
    assert!(
        root.is_dir(),
        "{} exists but has no medclipseg-prompts",
        shared().display()
    );
    Some(root)
}

/// Rows and distinct images of one sheet.
fn counts(path: &Path) -> (usize, usize) {
    let sheet = read_prompt_sheet(path).unwrap_or_else(|e| panic!("{e}"));
    let unique: HashSet<&str> = sheet
        .rows
        .iter()
        .filter_map(|r| r.image.as_deref())
        .collect();
    for row in &sheet.rows {
        assert!(
            row.image.is_some() && row.description.is_some() && row.ground_truth.is_some(),
            "{}: row {} has an empty cell",
            path.display(),
            row.row
        );
    }
    (sheet.rows.len(), unique.len())
}

/// Checks one dataset's sheet files, row counts and distinct-image counts; returns how many
/// sheets it parsed, or `None` when the shared folder is absent (skipped).
fn check_dataset(name: &str) -> Option<usize> {
    let root = prompts_root()?;
    let reg = registry().unwrap();
    let info = reg.get(name).unwrap();
    let folder = root.join(&info.name).join("Prompts_Folder");
    let on_disk: BTreeMap<String, PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    let mut expected: Vec<String> = info.sheets().iter().map(|k| k.file_stem()).collect();
    expected.sort();
    assert_eq!(
        on_disk.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{name}: sheet files"
    );
    let styles = &info.prompt_styles;
    for kind in info.sheets() {
        let (rows, unique) = counts(&on_disk[&kind.file_stem()]);
        assert_eq!(
            Some(rows),
            info.rows.of(kind, styles),
            "{name} {kind}: rows"
        );
        assert_eq!(
            Some(unique),
            info.rows.unique_of(kind, styles),
            "{name} {kind}: distinct images"
        );
    }
    Some(info.sheets().len())
}

/// One test per dataset, so that the 140 sheets are parsed in parallel.
macro_rules! dataset_tests {
    ($($test:ident => $name:literal, $sheets:literal;)*) => {
        $(
            #[test]
            fn $test() {
                match check_dataset($name) {
                    Some(parsed) => assert_eq!(parsed, $sheets, "{}: sheets parsed", $name),
                    None => println!("skipped {}", $name),
                }
            }
        )*

        #[test]
        fn the_per_dataset_tests_cover_all_140_sheets() {
            assert_eq!(0 $(+ $sheets)*, 140);
            let names = [$($name),*];
            assert_eq!(names.len(), registry().unwrap().datasets.len());
        }
    };
}

dataset_tests! {
    sheets_busi => "BUSI", 13;
    sheets_btmri => "BTMRI", 13;
    sheets_isic => "ISIC", 13;
    sheets_kvasir => "Kvasir", 13;
    sheets_covid19 => "Covid19", 9;
    sheets_eus => "EUS", 9;
    sheets_busuc => "BUSUC", 7;
    sheets_busbra => "BUSBRA", 7;
    sheets_buid => "BUID", 7;
    sheets_udiat => "UDIAT", 7;
    sheets_brisc => "BRISC", 7;
    sheets_uwaterloo => "UWaterlooSkinCancer", 7;
    sheets_colondb => "ColonDB", 7;
    sheets_clinicdb => "ClinicDB", 7;
    sheets_cvc300 => "CVC300", 7;
    sheets_bkai => "BKAI", 7;
}

#[test]
fn known_oddities_are_handled() {
    let Some(root) = prompts_root() else { return };
    let sheet = |ds: &str, stem: &str| {
        read_prompt_sheet(
            &root
                .join(ds)
                .join("Prompts_Folder")
                .join(format!("{stem}.xlsx")),
        )
        .unwrap()
    };
    // UWaterloo's validation sheet names the mask column "Mask" and has no rows.
    let uw = sheet("UWaterlooSkinCancer", "Val_text");
    assert_eq!(uw.mask_column.as_deref(), Some("Mask"));
    assert!(uw.rows.is_empty());
    // ColonDB / CVC300 validation sheets are completely empty.
    for ds in ["ColonDB", "CVC300"] {
        let s = sheet(ds, "Val_text");
        assert!(s.rows.is_empty() && s.header.is_empty(), "{ds}");
    }
    // CVC300's train sheet is a byte copy of ColonDB's.
    let bytes =
        |ds: &str| std::fs::read(root.join(ds).join("Prompts_Folder/Train_text.xlsx")).unwrap();
    assert_eq!(bytes("CVC300"), bytes("ColonDB"));
    // Prompts keep their trailing newline; the mask column is read by name.
    let kvasir = sheet("Kvasir", "Test_text_original");
    let first = &kvasir.rows[0];
    assert_eq!(
        first.description.as_deref(),
        Some("one small pink circle polyp, located in right of the image\n")
    );
    assert_eq!(first.image, first.ground_truth);
    let isic = sheet("ISIC", "Test_text_original");
    assert!(isic.rows.iter().all(|r| {
        r.ground_truth
            .as_deref()
            .unwrap()
            .ends_with("_Segmentation.png")
    }));
    let bkai = sheet("BKAI", "Train_text");
    assert!(
        bkai.rows
            .iter()
            .all(|r| r.ground_truth.as_deref().unwrap().ends_with(".jpeg"))
    );
    // The data-efficiency train subsets are nested at 25 % in 50 % in 100 %.
    for ds in ["BUSI", "BTMRI", "ISIC", "Kvasir"] {
        let names = |stem: &str| -> HashSet<String> {
            sheet(ds, stem)
                .rows
                .into_iter()
                .filter_map(|r| r.image)
                .collect()
        };
        let (p25, p50, p100) = (
            names("Train_text_25"),
            names("Train_text_50"),
            names("Train_text"),
        );
        assert!(p25.is_subset(&p50) && p50.is_subset(&p100), "{ds}");
    }
}

/// First integer in a table cell such as `810 rows (809 unique)` or `405(404 uniq)`.
fn first_int(cell: &str) -> Option<usize> {
    let digits: String = cell
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn registry_matches_the_spec_table() {
    if !shared().is_dir() {
        println!("skipping: no shared folder at {}", shared().display());
        return;
    }
    let spec_path = shared().join("spec/medclipseg.md");
    let spec = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()));
    let section = spec
        .split("### 4.2")
        .nth(1)
        .expect("section 4.2")
        .split("\n### ")
        .next()
        .unwrap();
    let reg = registry().unwrap();
    let mut checked = 0;
    for line in section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| config") && !l.starts_with("| ---"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let info = reg
            .get(cells[0])
            .unwrap_or_else(|| panic!("{} missing from the registry", cells[0]));
        assert_eq!(info.modality, cells[2], "{}", info.name);
        assert_eq!(info.organ, cells[3], "{}", info.name);
        let split: Vec<usize> = cells[5].split('/').map(|c| first_int(c).unwrap()).collect();
        let full = |m: &BTreeMap<Percent, usize>| m[&Percent::P100];
        assert_eq!(
            split,
            [full(&info.rows.train), full(&info.rows.val), info.rows.test],
            "{}",
            info.name
        );
        if cells[6] != "–" && cells[6] != "-" {
            for (part, p) in cells[6]
                .split(',')
                .zip([Percent::P10, Percent::P25, Percent::P50])
            {
                let (train, val) = part.split_once('/').unwrap();
                assert_eq!(
                    first_int(train),
                    Some(info.rows.train[&p]),
                    "{} train {p}",
                    info.name
                );
                assert_eq!(
                    first_int(val),
                    Some(info.rows.val[&p]),
                    "{} val {p}",
                    info.name
                );
            }
        } else {
            assert_eq!(info.percentages, [Percent::P100], "{}", info.name);
        }
        let role = cells[4];
        assert_eq!(
            role.starts_with("DE"),
            info.percentages.len() == 4,
            "{}",
            info.name
        );
        if let Some(group) = role.split('(').nth(1) {
            assert_eq!(
                Some(group.trim_end_matches(')')),
                info.dg_group.map(|g| g.as_str()),
                "{}",
                info.name
            );
        }
        if info.name == "EUS" || info.name == "Covid19" {
            assert_eq!(
                info.sheets()
                    .iter()
                    .filter(|k| matches!(k, SheetKind::Test(_)))
                    .count(),
                1
            );
            assert_eq!(info.prompt_styles, [PromptStyle::Original]);
        }
        checked += 1;
    }
    assert_eq!(checked, 16);
}

/// A from-scratch BERT tower of 512 rows (the `demo` preset) gets a vocabulary built from each
/// real training sheet: it fits, has no duplicate, and every ASCII word of every prompt is in
/// it or spelled out letter by letter (never `[UNK]`).
#[test]
fn vocabularies_built_from_the_real_training_prompts_fit_a_small_tower() {
    let Some(root) = prompts_root() else { return };
    let train = SheetKind::Train(Percent::try_from(100).unwrap());
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let folder = entry.unwrap().path().join("Prompts_Folder");
        let Some(path) = ["xlsx", "csv"]
            .iter()
            .map(|ext| folder.join(format!("{}.{ext}", train.file_stem())))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let sheet = read_prompt_sheet(&path).unwrap_or_else(|e| panic!("{e}"));
        let prompts: Vec<&str> = sheet
            .rows
            .iter()
            .filter_map(|r| r.description.as_deref())
            .collect();
        let vocab = prompt_vocabulary(prompts.iter().copied(), 512);
        assert!(vocab.tokens.len() <= 512, "{}", path.display());
        let tokens: HashSet<&str> = vocab.tokens.iter().map(String::as_str).collect();
        assert_eq!(tokens.len(), vocab.tokens.len(), "{}", path.display());
        for word in prompts.iter().flat_map(|p| basic_tokens(p)) {
            let spelled = word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            assert!(
                tokens.contains(word.as_str()) || spelled || !word.is_ascii(),
                "{}: {word:?} would be [UNK]",
                path.display()
            );
        }
        println!(
            "{}: {} prompts, {} tokens, {} rare words spelled out",
            path.display(),
            prompts.len(),
            vocab.tokens.len(),
            vocab.dropped_words
        );
        checked += 1;
    }
    assert_eq!(checked, 16, "one training sheet per dataset");
}
