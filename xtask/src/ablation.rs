//! The paper's ablation tables, reproduced with real (seeded) training runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use seg_viz::{LinePlot, Series, Table};

use crate::BenchArgs;

/// One trained configuration.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    group: &'static str,
    label: String,
    overrides: Vec<String>,
    percent: u8,
}

fn row(id: &str, group: &'static str, label: &str, overrides: &[&str]) -> Row {
    Row {
        id: id.to_string(),
        group,
        label: label.to_string(),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        percent: 100,
    }
}

/// Every row of the paper's ablation tables, the β sweep, the adapter-layer sweep and the
/// data-efficiency curve. `layers` is the number of layers of each tower of the model used and
/// `full_layers` the adapter layers of its full setting.
fn rows(layers: usize, full_layers: &[usize]) -> Vec<Row> {
    let mut rows = vec![
        row("full", "MedCLIPSeg", "MedCLIPSeg (ours)", &[]),
        row(
            "no-pvl",
            "Probabilistic Vision-Language Adapters",
            "w/o PVL Adapters",
            &["model.use_adapters=false"],
        ),
        row(
            "no-gating",
            "Probabilistic Vision-Language Adapters",
            "w/o Gating",
            &["model.gating=false"],
        ),
        row(
            "no-attnpvl",
            "Probabilistic Vision-Language Adapters",
            "w/o AttnPVL",
            &["model.probabilistic=false"],
        ),
        row(
            "deterministic",
            "Probabilistic Vision-Language Adapters",
            "Deterministic MedCLIPSeg",
            &["model.sample_values=false"],
        ),
        row(
            "no-visual",
            "Bidirectional Multimodal Interaction",
            "w/o Visual Adaptation",
            &["model.adapt_vision=false"],
        ),
        row(
            "no-textual",
            "Bidirectional Multimodal Interaction",
            "w/o Textual Adaptation",
            &["model.adapt_text=false"],
        ),
        row(
            "no-bidirectional",
            "Bidirectional Multimodal Interaction",
            "w/o Bidirectional Interaction",
            &["model.interaction=\"parallel\""],
        ),
        row(
            "unimodal",
            "Bidirectional Multimodal Interaction",
            "Unimodal MedCLIPSeg",
            &["model.interaction=\"unimodal\""],
        ),
        row(
            "no-softcon",
            "Contrastive Loss",
            "w/o SoftCon Loss",
            &["train.clip_weight=0"],
        ),
        row(
            "hard-targets",
            "Contrastive Loss",
            "Hard Targets",
            &["train.softcon_targets=\"hard\""],
        ),
        row(
            "attn-softcon",
            "Contrastive Loss",
            "Attention-pooled SoftCon Loss",
            &["train.softcon_pooling=\"attention\""],
        ),
    ];
    for beta in ["0", "1", "4"] {
        rows.push(row(
            &format!("beta-{beta}"),
            "β sweep",
            &format!("β = {beta}"),
            &[&format!("model.beta={beta}")],
        ));
    }
    // Adapters before layers 1..=k (the paper's "interventions up to layer k"), and before
    // every layer from 0, except the full setting itself.
    let mut sweeps: Vec<Vec<usize>> = (1..layers).map(|k| (1..=k).collect()).collect();
    sweeps.push((0..layers).collect());
    for list in sweeps.into_iter().filter(|l| l.as_slice() != full_layers) {
        let first = list[0];
        let last = list[list.len() - 1];
        let text: Vec<String> = list.iter().map(|l| l.to_string()).collect();
        rows.push(row(
            &format!("layers-{first}-{last}"),
            "Adapter layers",
            &format!("adapters before layers {first}..{last}"),
            &[&format!("model.layers=[{}]", text.join(","))],
        ));
    }
    for percent in [10u8, 25, 50] {
        let mut r = row(
            &format!("data-{percent}"),
            "Data efficiency",
            &format!("{percent}% data"),
            &[],
        );
        r.percent = percent;
        rows.push(r);
    }
    rows
}

/// The backbones of the paper's backbone ablation besides UniMedCLIP (the full setting): id,
/// label, full-size preset, demo-sized preset.
const BACKBONES: [(&str, &str, &str, &str); 3] = [
    ("clip", "CLIP", "clip-vit-b16", "demo-clip"),
    (
        "biomedclip",
        "BiomedCLIP",
        "biomedclip-vit-b16",
        "demo-biomedclip",
    ),
    (
        "pubmedclip",
        "PubMedCLIP",
        "pubmedclip-vit-b32",
        "demo-pubmedclip",
    ),
];

/// `NAME=PATH` of `--backbone-weights`.
pub fn parse_backbone_weights(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=PATH"))?;
    if !BACKBONES.iter().any(|(id, ..)| *id == name) {
        let names: Vec<&str> = BACKBONES.iter().map(|(id, ..)| *id).collect();
        return Err(format!("{name:?} is not a backbone ({})", names.join(", ")));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// The backbone ablation rows: the demo-sized towers of each kind on synthetic data (trained
/// from scratch, no weights), or the full presets with their weights on real data.
fn backbone_rows(real_data: bool, weights: &[(String, PathBuf)]) -> Result<Vec<Row>> {
    BACKBONES
        .iter()
        .map(|(id, label, full, demo)| {
            let overrides = if real_data {
                let (_, path) = weights
                    .iter()
                    .find(|(name, _)| name == id)
                    .with_context(|| {
                        format!("--backbones on real data needs --backbone-weights {id}=PATH")
                    })?;
                vec![
                    format!("model.preset={full}"),
                    format!("model.backbone_checkpoint=\"{}\"", path.display()),
                ]
            } else {
                vec![format!("model.preset={demo}")]
            };
            Ok(Row {
                id: format!("backbone-{id}"),
                group: "CLIP backbone",
                label: label.to_string(),
                overrides,
                percent: 100,
            })
        })
        .collect()
}

/// ID and OOD DSC of one row.
#[derive(Debug, Clone)]
struct Scores {
    id: f64,
    ood: f64,
    seconds: f64,
}

impl Scores {
    fn hm(&self) -> f64 {
        seg_metrics::harmonic_mean(self.id, self.ood)
    }
}

/// Settings shared by every row.
struct Setup {
    binary: PathBuf,
    data_root: PathBuf,
    source: String,
    /// `None`: the synthetic shifted domain; `Some`: DG targets of the source's group.
    synthetic_ood: Option<String>,
    base: Vec<String>,
    config: String,
    samples: usize,
    runs: PathBuf,
    /// Layers per tower of the model used.
    layers: usize,
    /// Its default adapter layers.
    adapter_layers: Vec<usize>,
}

pub fn run(args: &BenchArgs, binary: &Path) -> Result<()> {
    let setup = prepare(args, binary)?;
    let only: Option<Vec<&str>> = args.only.as_deref().map(|s| s.split(',').collect());
    let mut results: Vec<(Row, Scores)> = Vec::new();
    let mut all_rows = rows(setup.layers, &setup.adapter_layers);
    if args.backbones {
        all_rows.extend(backbone_rows(
            args.data_root.is_some(),
            &args.backbone_weights,
        )?);
    }
    for r in all_rows {
        if only.as_ref().is_some_and(|o| !o.contains(&r.id.as_str())) {
            continue;
        }
        eprintln!("== ablation {}: {}", r.id, r.label);
        let scores = train_and_score(&setup, &r)?;
        eprintln!(
            "   ID DSC {:.4}  OOD DSC {:.4}  HM {:.4}  ({:.0}s)",
            scores.id,
            scores.ood,
            scores.hm(),
            scores.seconds
        );
        results.push((r, scores));
    }
    let styles = if results.iter().any(|(r, _)| r.id == "full") {
        Some(prompt_styles(&setup)?)
    } else {
        None
    };
    write_outputs(args, &setup, &results, styles.as_ref())
}

fn prepare(args: &BenchArgs, binary: &Path) -> Result<Setup> {
    let runs = args.out.join("runs");
    if let Some(root) = &args.data_root {
        let mut base = vec!["model.preset=unimedclip-vit-b16".to_string()];
        if let Some(b) = &args.backbone {
            base.push(format!("model.backbone_checkpoint=\"{}\"", b.display()));
        }
        if let Some(t) = &args.tokenizer {
            base.push(format!("model.tokenizer=\"{}\"", t.display()));
        }
        if args.quick {
            base.extend([
                "train.epochs=2".to_string(),
                "test.num_samples=4".to_string(),
            ]);
        }
        return Ok(Setup {
            binary: binary.to_path_buf(),
            data_root: root.clone(),
            source: args.source.clone(),
            synthetic_ood: None,
            base,
            config: "paper".into(),
            samples: if args.quick { 4 } else { 30 },
            runs,
            layers: 12,
            adapter_layers: (1..=10).collect(),
        });
    }
    let data_root = args.out.join("data");
    let (size, train, val, test) = if args.quick {
        ("32", "240", "24", "40")
    } else {
        ("64", "600", "60", "100")
    };
    run_tool(
        binary,
        &[
            "data",
            "synth",
            "--root",
            path(&data_root)?,
            "--size",
            size,
            "--train",
            train,
            "--val",
            val,
            "--test",
            test,
            "--seed",
            "666",
        ],
    )?;
    // Quick: the `micro` model (32 px, two layers per tower), about 30 s per row on 2 cores.
    let base: Vec<String> = if args.quick {
        [
            "model.preset=micro",
            "train.epochs=25",
            "train.batch_size=16",
            "train.learning_rate=0.003",
            "test.num_samples=4",
            // The data-efficiency rows train the same epochs on less data, as in the paper.
            "train.min_steps=0",
        ]
        .map(String::from)
        .to_vec()
    } else {
        ["test.num_samples=8", "train.min_steps=0"]
            .map(String::from)
            .to_vec()
    };
    Ok(Setup {
        binary: binary.to_path_buf(),
        data_root,
        source: "Synthetic".into(),
        synthetic_ood: Some("SyntheticShifted".into()),
        base,
        config: "demo".into(),
        samples: if args.quick { 4 } else { 8 },
        runs,
        layers: if args.quick { 2 } else { 4 },
        adapter_layers: if args.quick { vec![1] } else { vec![1, 2, 3] },
    })
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{}: not UTF-8", p.display()))
}

fn run_tool(binary: &Path, args: &[&str]) -> Result<std::process::Output> {
    let out = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "medclipseg {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

fn train_and_score(setup: &Setup, r: &Row) -> Result<Scores> {
    let started = Instant::now();
    let run_dir = setup.runs.join(&r.id);
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("{}: cannot clear", run_dir.display()))?;
    }
    let percent = r.percent.to_string();
    let mut args = vec![
        "train",
        "--config",
        &setup.config,
        "--data-root",
        path(&setup.data_root)?,
        "--dataset",
        &setup.source,
        "--percent",
        &percent,
        "--out",
        path(&run_dir)?,
        "--quiet",
    ];
    let sets: Vec<String> = setup.base.iter().chain(&r.overrides).cloned().collect();
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    run_tool(&setup.binary, &args)?;
    let (id, ood) = evaluate(setup, &run_dir, &["original"])?;
    Ok(Scores {
        id: id["original"],
        ood: ood["original"],
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// DSC by prompt style of the ID data and of the OOD data for a trained run.
fn evaluate(
    setup: &Setup,
    run_dir: &Path,
    styles: &[&str],
) -> Result<(BTreeMap<String, f64>, BTreeMap<String, f64>)> {
    let checkpoint = run_dir.join("latest.safetensors");
    let samples = setup.samples.to_string();
    let style = if styles.len() > 1 { "all" } else { styles[0] };
    let eval = |dataset: &str, out: &Path, dg: bool| -> Result<serde_json::Value> {
        let mut args = vec![
            "eval",
            "--checkpoint",
            path(&checkpoint)?,
            "--data-root",
            path(&setup.data_root)?,
            "--dataset",
            dataset,
            "--prompt-style",
            style,
            "--samples",
            &samples,
            "--out",
            path(out)?,
            "--quiet",
            "--panels",
            "0",
        ];
        if dg {
            args.push("--dg");
        }
        run_tool(&setup.binary, &args)?;
        read_json(&out.join("summary.json"))
    };
    let by_style =
        |summary: &serde_json::Value, keep: &dyn Fn(&str) -> bool| -> BTreeMap<String, f64> {
            let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            for r in summary["results"].as_array().into_iter().flatten() {
                if keep(r["dataset"].as_str().unwrap_or("")) {
                    let e = sums
                        .entry(r["style"].as_str().unwrap_or("").to_string())
                        .or_default();
                    e.0 += r["dsc"].as_f64().unwrap_or(f64::NAN);
                    e.1 += 1;
                }
            }
            sums.into_iter()
                .map(|(k, (s, n))| (k, s / n as f64))
                .collect()
        };
    match &setup.synthetic_ood {
        Some(shifted) => {
            let id = eval(&setup.source, &run_dir.join("eval_id"), false)?;
            let ood = eval(shifted, &run_dir.join("eval_ood"), false)?;
            Ok((by_style(&id, &|_| true), by_style(&ood, &|_| true)))
        }
        None => {
            let all = eval(&setup.source, &run_dir.join("eval_dg"), true)?;
            let source = setup.source.clone();
            Ok((
                by_style(&all, &|d| d == source),
                by_style(&all, &|d| d != source),
            ))
        }
    }
}

fn prompt_styles(setup: &Setup) -> Result<Vec<(String, Scores)>> {
    let styles = [
        "original",
        "contradictory",
        "missing_location",
        "overdescriptive",
        "underdescriptive",
    ];
    let (id, ood) = evaluate(setup, &setup.runs.join("full"), &styles)?;
    Ok(styles
        .iter()
        .filter_map(|s| {
            Some((
                s.to_string(),
                Scores {
                    id: *id.get(*s)?,
                    ood: ood.get(*s).copied().unwrap_or(f64::NAN),
                    seconds: 0.0,
                },
            ))
        })
        .collect())
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn delta(x: f64, base: f64) -> String {
    let d = 100.0 * (x - base);
    let arrow = if d < 0.0 { "↓" } else { "↑" };
    format!("{} ({:+.2}){arrow}", pct(x), d)
}

fn write_outputs(
    args: &BenchArgs,
    setup: &Setup,
    results: &[(Row, Scores)],
    styles: Option<&Vec<(String, Scores)>>,
) -> Result<()> {
    let full = results
        .iter()
        .find(|(r, _)| r.id == "full")
        .map(|(_, s)| s.clone());
    let mut table = Table::new([
        "Group",
        "Method",
        "ID DSC (%)",
        "OOD DSC (%)",
        "HM DSC (%)",
        "seconds",
    ]);
    let mut md = String::new();
    md.push_str(&format!(
        "# Ablations ({})\n\nSource `{}` (ID) vs {} (OOD); {} Monte-Carlo samples; command: `cargo xtask bench{}`.\n\n",
        if args.quick { "quick" } else { "full" },
        setup.source,
        setup.synthetic_ood.as_deref().unwrap_or("its DG targets"),
        setup.samples,
        if args.quick { " --quick" } else { "" },
    ));
    md.push_str("| Method | ID DSC (%) | OOD DSC (%) | HM DSC (%) |\n|---|---|---|---|\n");
    let mut group = "";
    for (r, s) in results {
        if r.group != group && r.id != "full" {
            md.push_str(&format!("| **{}** | | | |\n", r.group));
            group = r.group;
        }
        let cells = match &full {
            Some(f) if r.id != "full" => [
                delta(s.id, f.id),
                delta(s.ood, f.ood),
                delta(s.hm(), f.hm()),
            ],
            _ => [pct(s.id), pct(s.ood), pct(s.hm())],
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.label, cells[0], cells[1], cells[2]
        ));
        table.push_row(vec![
            r.group.to_string(),
            r.label.clone(),
            pct(s.id),
            pct(s.ood),
            pct(s.hm()),
            format!("{:.0}", s.seconds),
        ])?;
    }
    if let Some(styles) = styles {
        md.push_str("\n## Text prompt style (model trained on original prompts)\n\n| Text Prompt Style | ID DSC (%) | OOD DSC (%) | HM DSC (%) |\n|---|---|---|---|\n");
        for (style, s) in styles {
            md.push_str(&format!(
                "| {style} | {} | {} | {} |\n",
                pct(s.id),
                pct(s.ood),
                pct(s.hm())
            ));
            table.push_row(vec![
                "Text prompt style".into(),
                style.clone(),
                pct(s.id),
                pct(s.ood),
                pct(s.hm()),
                String::new(),
            ])?;
        }
    }
    seg_viz::write_atomic(&args.out.join("ablations.md"), md.as_bytes())?;
    seg_viz::write_atomic(&args.out.join("ablations.csv"), table.to_csv().as_bytes())?;
    plot_curve(
        args,
        results,
        full.as_ref(),
        "data-",
        100.0,
        "Data efficiency",
        "% of training data",
        "data_efficiency.png",
    )?;
    plot_curve(
        args,
        results,
        full.as_ref(),
        "beta-",
        2.35,
        "β sweep",
        "β",
        "beta_sweep.png",
    )?;
    eprintln!("{md}");
    Ok(())
}

/// A plot of ID, OOD and HM DSC over the rows whose id starts with `prefix` (+ the full model at `full_x`).
#[allow(clippy::too_many_arguments)]
fn plot_curve(
    args: &BenchArgs,
    results: &[(Row, Scores)],
    full: Option<&Scores>,
    prefix: &str,
    full_x: f64,
    title: &str,
    x_label: &str,
    file: &str,
) -> Result<()> {
    let mut points: Vec<(f64, Scores)> = results
        .iter()
        .filter_map(|(r, s)| {
            r.id.strip_prefix(prefix)
                .and_then(|x| x.parse::<f64>().ok())
                .map(|x| (x, s.clone()))
        })
        .collect();
    if let Some(f) = full {
        points.push((full_x, f.clone()));
    }
    if points.len() < 2 {
        return Ok(());
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let series = |f: &dyn Fn(&Scores) -> f64| {
        points
            .iter()
            .map(|(x, s)| (*x, 100.0 * f(s)))
            .collect::<Vec<_>>()
    };
    LinePlot::new(title, x_label, "DSC (%)")
        .with_series(Series::new("ID", series(&|s| s.id), [31, 119, 180]).with_markers())
        .with_series(Series::new("OOD", series(&|s| s.ood), [255, 127, 14]).with_markers())
        .with_series(Series::new("HM", series(&|s| s.hm()), [44, 160, 44]).with_markers())
        .write_png(&args.out.join(file))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backbone_rows_use_the_demo_presets_without_weights() {
        let rows = backbone_rows(false, &[]).unwrap();
        let presets: Vec<&str> = rows.iter().map(|r| r.overrides[0].as_str()).collect();
        assert_eq!(
            presets,
            [
                "model.preset=demo-clip",
                "model.preset=demo-biomedclip",
                "model.preset=demo-pubmedclip"
            ]
        );
        assert!(rows.iter().all(|r| r.group == "CLIP backbone"));
    }

    #[test]
    fn backbone_rows_on_real_data_need_each_backbones_weights() {
        let clip = parse_backbone_weights("clip=/w/clip.pt").unwrap();
        let err = backbone_rows(true, std::slice::from_ref(&clip))
            .unwrap_err()
            .to_string();
        assert!(err.contains("biomedclip=PATH"), "{err}");
        let all = [
            clip,
            parse_backbone_weights("biomedclip=/w/b.bin").unwrap(),
            parse_backbone_weights("pubmedclip=/w/p.pth").unwrap(),
        ];
        let rows = backbone_rows(true, &all).unwrap();
        assert_eq!(rows[2].overrides[0], "model.preset=pubmedclip-vit-b32");
        assert_eq!(
            rows[2].overrides[1],
            "model.backbone_checkpoint=\"/w/p.pth\""
        );
        assert!(parse_backbone_weights("unimed=/x").is_err());
        assert!(parse_backbone_weights("clip").is_err());
    }
}
