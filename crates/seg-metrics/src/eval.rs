//! The library side of `medclipseg metrics`: one prediction/ground-truth file pair, or two folders
//! paired by file stem (as MedCLIPSeg's `utils/eval.py` pairs them), a per-image CSV and the means.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{MetricsError, Result};
use crate::io::{read_label_mask, read_prediction_mask};
use crate::protocol::{ImageReport, MetricsRequest, Protocol, check_tolerances, evaluate_masks_2d};

/// Extensions the reference evaluation lists (case-insensitive); other files are ignored.
pub const MASK_EXTENSIONS: [&str; 6] = ["png", "bmp", "jpg", "jpeg", "tif", "tiff"];

/// Evaluates one prediction file against its ground-truth file.
///
/// Both are read as grey and binarised with `> 127` (strict mode: only 0 and 255 accepted).
/// `request.label` picks a label in the ground truth; the prediction is read as a binary mask
/// unless it is itself a label map of several labels (see [`crate::read_prediction_mask`]). The
/// MedCLIPSeg protocol resizes the prediction to the ground-truth size (cv2 `INTER_NEAREST`)
/// first, as the reference does; the other protocols fail on a size mismatch.
pub fn evaluate_files(pred: &Path, gt: &Path, request: &MetricsRequest) -> Result<ImageReport> {
    let gt_mask = read_label_mask(gt, request.strict, request.label)?;
    let mut pred_mask = read_prediction_mask(pred, request.strict, request.label)?;
    let same_size = (pred_mask.rows(), pred_mask.cols()) == (gt_mask.rows(), gt_mask.cols());
    if !same_size {
        let size_mismatch = || MetricsError::SizeMismatch {
            pred: pred.to_path_buf(),
            gt: gt.to_path_buf(),
            pred_rows: pred_mask.rows(),
            pred_cols: pred_mask.cols(),
            gt_rows: gt_mask.rows(),
            gt_cols: gt_mask.cols(),
        };
        if request.protocol != Protocol::MedClipSeg {
            return Err(size_mismatch());
        }
        pred_mask = pred_mask
            .resize_nearest(gt_mask.rows(), gt_mask.cols())
            .map_err(|_| size_mismatch())?;
    }
    evaluate_masks_2d(&gt_mask, &pred_mask, request)
}

/// One row of a folder evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedReport {
    /// The ground-truth file name (the CSV `Name` column, as in the reference).
    pub name: String,
    /// The prediction file name.
    pub pred_name: String,
    /// The metrics.
    pub report: ImageReport,
}

/// Result of a folder evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectoryReport {
    /// Per-image results, sorted by stem.
    pub images: Vec<NamedReport>,
    /// Means over images (same shape as a per-image report), see [`evaluate_dirs`].
    pub mean: ImageReport,
    /// Ground-truth files without a prediction of the same stem (not evaluated).
    pub missing_predictions: Vec<String>,
    /// Prediction files without a ground truth of the same stem (not evaluated).
    pub missing_ground_truths: Vec<String>,
}

/// Evaluates every prediction in `pred_dir` against the ground truth of the same stem in `gt_dir`.
///
/// - Files are paired by stem (name without its last extension; extension and its case ignored),
///   only files with a [`MASK_EXTENSIONS`] extension take part. Two files of one folder with the
///   same stem are an error ([`MetricsError::DuplicateStem`]); no common stem at all is an error
///   ([`MetricsError::NoPairs`]). Files without a counterpart are **not** an error (the reference
///   skips them silently): they are listed in [`DirectoryReport::missing_predictions`] and
///   [`DirectoryReport::missing_ground_truths`] for the caller to show.
/// - Pairs are evaluated in parallel; the first failing pair (in stem order) is returned as the error.
/// - With `csv`, writes `Name,DSC,NSD` (NSD at the first tolerance) rows in stem order, values
///   rounded to 4 decimals and written as Python/pandas would (`1.0`, `0.8473`; NaN as an empty
///   field). The write is atomic (temporary file in the same folder, then rename).
/// - Means ignore non-finite values (NaN if none is finite). For the MedCLIPSeg protocol DSC and
///   NSD are averaged over the 4-decimal rounded values, as the reference averages its CSV.
pub fn evaluate_dirs(
    pred_dir: &Path,
    gt_dir: &Path,
    request: &MetricsRequest,
    csv: Option<&Path>,
) -> Result<DirectoryReport> {
    check_tolerances(&request.tolerances)?;
    let preds = list_by_stem(pred_dir)?;
    let gts = list_by_stem(gt_dir)?;
    let pairs: Vec<(&String, &String)> = gts
        .iter()
        .filter_map(|(stem, gt)| preds.get(stem).map(|pred| (gt, pred)))
        .collect();
    if pairs.is_empty() {
        return Err(MetricsError::NoPairs {
            pred_dir: pred_dir.to_path_buf(),
            gt_dir: gt_dir.to_path_buf(),
        });
    }
    let results: Vec<Result<ImageReport>> = pairs
        .par_iter()
        .map(|(gt, pred)| evaluate_files(&pred_dir.join(pred), &gt_dir.join(gt), request))
        .collect();
    let mut images = Vec::with_capacity(pairs.len());
    for ((gt, pred), result) in pairs.iter().zip(results) {
        images.push(NamedReport {
            name: (*gt).clone(),
            pred_name: (*pred).clone(),
            report: result?,
        });
    }
    let reports: Vec<&ImageReport> = images.iter().map(|i| &i.report).collect();
    let mean = mean_report(
        &reports,
        &request.tolerances,
        request.protocol == Protocol::MedClipSeg,
    );
    if let Some(path) = csv {
        write_atomic(path, render_csv(&images).as_bytes())?;
    }
    Ok(DirectoryReport {
        images,
        mean,
        missing_predictions: missing(&gts, &preds),
        missing_ground_truths: missing(&preds, &gts),
    })
}

/// Files of `dir` with a mask extension, by stem.
fn list_by_stem(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut by_stem = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| MetricsError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| MetricsError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stem, ext)) = split_extension(&name) else {
            continue;
        };
        if !MASK_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            continue;
        }
        let stem = stem.to_string();
        if let Some(first) = by_stem.insert(stem.clone(), name.clone()) {
            let (first, second) = if first < name {
                (first, name)
            } else {
                (name, first)
            };
            return Err(MetricsError::DuplicateStem {
                dir: dir.to_path_buf(),
                stem,
                first,
                second,
            });
        }
    }
    Ok(by_stem)
}

/// `os.path.splitext`: the last dot not at the start of the name.
fn split_extension(name: &str) -> Option<(&str, &str)> {
    let dot = name.rfind('.')?;
    let stem = &name[..dot];
    if stem.trim_start_matches('.').is_empty() {
        return None;
    }
    Some((stem, &name[dot + 1..]))
}

fn missing(from: &BTreeMap<String, String>, other: &BTreeMap<String, String>) -> Vec<String> {
    from.iter()
        .filter(|(stem, _)| !other.contains_key(*stem))
        .map(|(_, name)| name.clone())
        .collect()
}

/// Means over images, ignoring non-finite values; `rounded` averages DSC/NSD rounded to 4 decimals.
fn mean_report(reports: &[&ImageReport], tolerances: &[f64], rounded: bool) -> ImageReport {
    let prepare = |v: f64| if rounded { round4(v) } else { v };
    let mean_of = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = values
            .filter(|v| v.is_finite())
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        if n == 0 { f64::NAN } else { sum / n as f64 }
    };
    ImageReport {
        dsc: mean_of(&mut reports.iter().map(|r| prepare(r.dsc))),
        nsd: tolerances
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, mean_of(&mut reports.iter().map(|r| prepare(r.nsd[i].1)))))
            .collect(),
        hd95: mean_of(&mut reports.iter().map(|r| r.hd95)),
        assd: mean_of(&mut reports.iter().map(|r| r.assd)),
    }
}

/// Python's `round(x, 4)`: the decimal rounding of the exact binary value, back to f64.
pub fn round4(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.4}").parse().unwrap_or(x)
}

/// A float as pandas writes it to CSV (Python `repr`): `1.0`, `0.8473`, empty for NaN, `inf`.
fn csv_float(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

/// The per-image CSV (the `csv` crate, so names with commas or quotes are quoted):
/// `Name,DSC,NSD` with 4-decimal values, NSD at the first tolerance.
pub fn render_csv(images: &[NamedReport]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let rows = images.iter().map(|image| {
        [
            image.name.clone(),
            csv_float(round4(image.report.dsc)),
            csv_float(round4(image.report.first_nsd())),
        ]
    });
    // Three fields per row into memory: writing cannot fail.
    writer
        .write_record(["Name", "DSC", "NSD"])
        .expect("CSV into memory");
    for row in rows {
        writer.write_record(&row).expect("CSV into memory");
    }
    let bytes = writer.into_inner().expect("CSV into memory");
    String::from_utf8(bytes).expect("CSV of strings is UTF-8")
}

/// Writes `bytes` to `path` atomically ([`atomic_io`]: temporary sibling, fsync, rename; the
/// temporary file never outlives a failure).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_io::write_atomic(path, bytes).map_err(|e| MetricsError::io(e.path, e.source))
}

/// A JSON number, or `null` for NaN and infinities.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
    } else {
        "null".into()
    }
}

/// One report as `{"dsc": x, "nsd": {"<T>": x, ...}, "hd95": x, "assd": x}`: keys in this order,
/// tolerance keys printed with Rust's `{}` (2.0 → "2", 0.5 → "0.5"), NaN and infinities as `null`.
pub fn render_json(report: &ImageReport) -> String {
    let nsd = report
        .nsd
        .iter()
        .map(|&(t, v)| {
            format!(
                "{}: {}",
                serde_json::Value::from(format!("{t}")),
                json_number(v)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{{\"dsc\": {}, \"nsd\": {{{}}}, \"hd95\": {}, \"assd\": {}}}",
        json_number(report.dsc),
        nsd,
        json_number(report.hd95),
        json_number(report.assd)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma};

    fn save_mask(path: &Path, rows: u32, cols: u32, f: impl Fn(u32, u32) -> bool) {
        let img = ImageBuffer::from_fn(cols, rows, |c, r| Luma([if f(r, c) { 255u8 } else { 0 }]));
        img.save(path).unwrap();
    }

    #[test]
    fn a_label_picks_the_ground_truth_structure_and_the_prediction_stays_binary() {
        let dir = tempfile::tempdir().unwrap();
        // Ground truth: label 1 on the left column, label 2 on the right one.
        let gt = dir.path().join("gt.png");
        ImageBuffer::<Luma<u8>, _>::from_fn(4, 4, |c, _| Luma([if c < 2 { 1 } else { 2 }]))
            .save(&gt)
            .unwrap();
        // A 0/255 prediction of structure 2.
        let pred = dir.path().join("pred.png");
        save_mask(&pred, 4, 4, |_, c| c >= 2);
        let mut request = MetricsRequest::new(Protocol::MedClipSeg);
        request.label = Some(2);
        // (Picking label 2 in the 0/255 prediction too would leave it empty: DSC 0.)
        let report = evaluate_files(&pred, &gt, &request).unwrap();
        assert!((report.dsc - 1.0).abs() < 1e-6, "{}", report.dsc);
        request.label = Some(1);
        let report = evaluate_files(&pred, &gt, &request).unwrap();
        assert!(report.dsc < 1e-6, "{}", report.dsc);
        // A prediction that is itself a label map of several labels: the label is picked in it
        // too (read as a binary mask, all 16 pixels would be foreground: DSC 2/3).
        request.label = Some(2);
        let report = evaluate_files(&gt, &gt, &request).unwrap();
        assert!((report.dsc - 1.0).abs() < 1e-6, "{}", report.dsc);
    }

    #[test]
    fn json_shape_is_exact() {
        let report = ImageReport {
            dsc: 0.75,
            nsd: vec![(2.0, 0.9463), (0.5, f64::NAN)],
            hd95: f64::INFINITY,
            assd: 1.0,
        };
        assert_eq!(
            render_json(&report),
            r#"{"dsc": 0.75, "nsd": {"2": 0.9463, "0.5": null}, "hd95": null, "assd": 1.0}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(parsed["nsd"]["2"], 0.9463);
    }

    #[test]
    fn rounding_and_csv_floats_follow_python() {
        assert_eq!(round4(0.94634), 0.9463);
        // Python: round(x, 4) for x in 0.99995, 0.12345, 0.00015, 0.56785, 0.30005
        // -> 1.0, 0.1235, 0.0001, 0.5678, 0.3 (decided by the exact binary value, not half-up).
        let cases = [
            (0.99995, 1.0),
            (0.12345, 0.1235),
            (0.00015, 0.0001),
            (0.56785, 0.5678),
            (0.30005, 0.3),
        ];
        for (x, expected) in cases {
            assert_eq!(round4(x), expected, "{x}");
        }
        assert_eq!(csv_float(round4(1.0 - 1e-12)), "1.0");
        assert_eq!(csv_float(round4(0.5)), "0.5");
        assert_eq!(csv_float(round4(0.00012)), "0.0001");
        assert_eq!(csv_float(f64::NAN), "");
    }

    #[test]
    fn csv_names_with_commas_and_quotes_round_trip() {
        let name = "case 1, \"left\".png";
        let image = NamedReport {
            name: name.into(),
            pred_name: name.into(),
            report: ImageReport {
                dsc: 0.5,
                nsd: vec![(2.0, 0.25)],
                hd95: 1.0,
                assd: 1.0,
            },
        };
        let text = render_csv(&[image]);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert_eq!(rows[0].iter().collect::<Vec<_>>(), [name, "0.5", "0.25"]);
    }

    #[test]
    fn stems_follow_splitext() {
        assert_eq!(split_extension("case.1.png"), Some(("case.1", "png")));
        assert_eq!(split_extension(".hidden"), None);
        assert_eq!(split_extension("noext"), None);
    }

    #[test]
    fn file_pair_resizes_only_under_medclipseg() {
        let dir = tempfile::tempdir().unwrap();
        let gt = dir.path().join("gt.png");
        let pred = dir.path().join("pred.png");
        save_mask(&gt, 8, 8, |r, c| (2..6).contains(&r) && (2..6).contains(&c));
        save_mask(&pred, 4, 4, |r, c| {
            (1..3).contains(&r) && (1..3).contains(&c)
        });
        let report =
            evaluate_files(&pred, &gt, &MetricsRequest::new(Protocol::MedClipSeg)).unwrap();
        assert!((report.dsc - 1.0).abs() < 1e-8);
        let err = evaluate_files(&pred, &gt, &MetricsRequest::new(Protocol::DeepMind)).unwrap_err();
        assert!(matches!(err, MetricsError::SizeMismatch { .. }));
        assert!(err.to_string().contains("pred.png") && err.to_string().contains("gt.png"));
    }

    #[test]
    fn directory_mode_pairs_by_stem_and_writes_the_csv() {
        let root = tempfile::tempdir().unwrap();
        let (pred_dir, gt_dir) = (root.path().join("pred"), root.path().join("gt"));
        std::fs::create_dir_all(&pred_dir).unwrap();
        std::fs::create_dir_all(&gt_dir).unwrap();
        let square = |r0: u32, c0: u32| {
            move |r: u32, c: u32| (r0..r0 + 12).contains(&r) && (c0..c0 + 12).contains(&c)
        };
        save_mask(&gt_dir.join("a.png"), 48, 48, square(10, 10));
        save_mask(&pred_dir.join("a.png"), 48, 48, square(10, 13));
        save_mask(&gt_dir.join("b.bmp"), 48, 48, |_, _| false);
        save_mask(&pred_dir.join("b.png"), 48, 48, |_, _| false);
        save_mask(&gt_dir.join("only_gt.png"), 4, 4, |_, _| false);
        save_mask(&pred_dir.join("only_pred.png"), 4, 4, |_, _| false);
        std::fs::write(gt_dir.join("notes.txt"), "ignored").unwrap();
        let csv = root.path().join("out.csv");
        let report = evaluate_dirs(
            &pred_dir,
            &gt_dir,
            &MetricsRequest::new(Protocol::MedClipSeg),
            Some(&csv),
        )
        .unwrap();
        assert_eq!(report.images.len(), 2);
        assert_eq!(report.missing_predictions, vec!["only_gt.png".to_string()]);
        assert_eq!(
            report.missing_ground_truths,
            vec!["only_pred.png".to_string()]
        );
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text, "Name,DSC,NSD\na.png,0.75,0.9463\nb.bmp,1.0,1.0\n");
        assert!((report.mean.dsc - 0.875).abs() < 1e-12);
        assert!((report.mean.nsd[0].1 - (0.9463 + 1.0) / 2.0).abs() < 1e-12);
        // HD95/ASSD of the both-empty image are NaN and left out of the mean.
        assert_eq!(report.mean.hd95, report.images[0].report.hd95);
    }

    #[test]
    fn directory_errors() {
        let root = tempfile::tempdir().unwrap();
        let (pred_dir, gt_dir) = (root.path().join("pred"), root.path().join("gt"));
        std::fs::create_dir_all(&pred_dir).unwrap();
        std::fs::create_dir_all(&gt_dir).unwrap();
        save_mask(&gt_dir.join("x.png"), 4, 4, |_, _| false);
        save_mask(&pred_dir.join("y.png"), 4, 4, |_, _| false);
        let req = MetricsRequest::new(Protocol::MedClipSeg);
        assert!(matches!(
            evaluate_dirs(&pred_dir, &gt_dir, &req, None),
            Err(MetricsError::NoPairs { .. })
        ));
        save_mask(&pred_dir.join("x.bmp"), 4, 4, |_, _| false);
        save_mask(&pred_dir.join("x.png"), 4, 4, |_, _| false);
        assert!(matches!(
            evaluate_dirs(&pred_dir, &gt_dir, &req, None),
            Err(MetricsError::DuplicateStem { .. })
        ));
        std::fs::remove_file(pred_dir.join("x.bmp")).unwrap();
        std::fs::write(gt_dir.join("x.png"), b"garbage").unwrap();
        let err = evaluate_dirs(&pred_dir, &gt_dir, &req, None).unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
        let missing = root.path().join("nope");
        assert!(matches!(
            evaluate_dirs(&missing, &gt_dir, &req, None),
            Err(MetricsError::Io { .. })
        ));
    }
}
