//! Writes one example of every picture this crate draws, plus a report linking them, from
//! synthetic data: `cargo run -p seg-viz --example viz_demo -- /tmp/viz-demo`.

use std::path::PathBuf;

use seg_viz::font::{draw_text, text_height};
use seg_viz::{
    BarChart, ChannelOrder, Colormap, LinePlot, Report, RgbImage, SegmentationSample, Series,
    Table, colorize, overlay_gt_pred, palette, segmentation_panels, write_png,
    write_uncertainty_png,
};

/// A synthetic grey "scan": smooth background texture plus a brighter ellipse.
fn synthetic_case(size: u32) -> (RgbImage, Vec<bool>, Vec<bool>, Vec<f32>) {
    let s = size as f32;
    let inside = |x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32| {
        ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2)
    };
    let mut image = RgbImage::new(size, size);
    let mut gt = Vec::new();
    let mut pred = Vec::new();
    let mut entropy = Vec::new();
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f32, y as f32);
            let lesion = inside(fx, fy, 0.45 * s, 0.5 * s, 0.22 * s, 0.16 * s);
            let texture = 60.0 + 25.0 * ((fx * 0.3).sin() * (fy * 0.21).cos());
            let grey = if lesion < 1.0 {
                texture + 70.0
            } else {
                texture
            };
            image.put_pixel(x, y, image::Rgb([grey as u8; 3]));
            gt.push(lesion < 1.0);
            let predicted = inside(fx, fy, 0.5 * s, 0.52 * s, 0.2 * s, 0.17 * s);
            pred.push(predicted < 1.0);
            // Probability falls off across the predicted boundary; entropy peaks there.
            let p = 1.0 / (1.0 + ((predicted - 1.0) * 6.0).exp());
            let p = p.clamp(1e-6, 1.0 - 1e-6);
            entropy.push(-(p * p.ln() + (1.0 - p) * (1.0 - p).ln()));
        }
    }
    (image, gt, pred, entropy)
}

fn font_sheet() -> RgbImage {
    let mut sheet = RgbImage::from_pixel(620, 150, image::Rgb([255, 255, 255]));
    let chars: String = (32u8..=126).map(char::from).collect();
    for (row, chunk) in chars.as_bytes().chunks(48).enumerate() {
        let line = String::from_utf8_lossy(chunk);
        draw_text(&mut sheet, 10, 10 + row as i64 * 20, &line, [0, 0, 0], 2);
    }
    let sample = "Dice 0.8123 | epoch 12/30 | beta=2.5 (HM)";
    draw_text(&mut sheet, 10, 60, sample, [0, 0, 0], 1);
    draw_text(
        &mut sheet,
        10,
        60 + text_height(1) as i64 + 8,
        sample,
        [200, 0, 0],
        2,
    );
    draw_text(&mut sheet, 10, 110, "Scale 3: Qg yp", [0, 0, 160], 3);
    sheet
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/viz-demo".into()),
    );

    let (image, gt, pred, entropy) = synthetic_case(64);
    let sample = SegmentationSample {
        image: &image,
        ground_truth: Some(&gt),
        prediction: &pred,
        uncertainty: Some(&entropy),
    };
    write_png(
        &out.join("panels_64.png"),
        &segmentation_panels(&sample, 256)?,
    )?;
    let (big, big_gt, big_pred, big_entropy) = synthetic_case(224);
    write_png(
        &out.join("overlay_224.png"),
        &overlay_gt_pred(&big, &big_gt, &big_pred)?,
    )?;
    write_uncertainty_png(
        &out.join("unc_results/case_001.png"),
        &big_entropy,
        224,
        224,
        ChannelOrder::Rgb,
    )?;
    let probability: Vec<f32> = big_entropy.iter().map(|e| e / 2f32.ln()).collect();
    write_png(
        &out.join("viridis_224.png"),
        &colorize(&probability, 224, 224, Colormap::Viridis)?,
    )?;
    write_png(&out.join("font.png"), &font_sheet())?;

    let train: Vec<(f64, f64)> = (1..=30)
        .map(|e| (e as f64, 0.9 * (-(e as f64) / 8.0).exp() + 0.12))
        .collect();
    let val: Vec<(f64, f64)> = (1..=30)
        .map(|e| {
            let y = if e == 17 {
                f64::NAN
            } else {
                0.95 * (-(e as f64) / 9.0).exp() + 0.18
            };
            (e as f64, y)
        })
        .collect();
    LinePlot::new("Training loss (BUSI, 25% data)", "epoch", "loss")
        .with_series(Series::new("train", train, palette::TAB10[0]))
        .with_series(Series::new("val", val, palette::TAB10[1]).with_markers())
        .write_png(&out.join("loss.png"))?;

    let percent = [10.0, 25.0, 50.0, 100.0];
    let ours = [0.702, 0.781, 0.815, 0.842];
    let unet = [0.55, 0.64, 0.71, 0.77];
    let zip = |ys: [f64; 4]| percent.iter().copied().zip(ys).collect::<Vec<_>>();
    LinePlot::new("Data efficiency", "% of training data", "DSC")
        .with_series(Series::new("MedCLIPSeg-rs", zip(ours), palette::TAB10[0]).with_markers())
        .with_series(Series::new("UNet", zip(unet), palette::TAB10[3]).with_markers())
        .with_y_range(0.0, 1.0)
        .write_png(&out.join("data_efficiency.png"))?;

    let betas: Vec<(f64, f64)> = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
        .iter()
        .map(|&b: &f64| (b, 0.80 - 0.02 * (b - 2.5).powi(2)))
        .collect();
    LinePlot::new("Beta sweep", "beta", "HM DSC")
        .with_series(Series::new("HM DSC", betas, palette::TAB10[2]).with_markers())
        .with_size(560, 360)
        .write_png(&out.join("beta_sweep.png"))?;

    let styles = [
        ("original", 0.842),
        ("overdescriptive", 0.835),
        ("underdescriptive", 0.811),
        ("missing_location", 0.79),
        ("contradictory", 0.612),
    ];
    let bars = styles.iter().map(|(s, v)| (s.to_string(), *v)).collect();
    BarChart::new("DSC by prompt style", "DSC", bars)
        .with_y_range(0.0, 1.0)
        .write_png(&out.join("prompt_styles.png"))?;

    let mut table = Table::new(["prompt style", "DSC", "NSD"]);
    for (style, dsc) in styles {
        table.push_row([
            style.to_string(),
            format!("{:.2}", dsc * 100.0),
            format!("{:.2}", dsc * 103.0),
        ])?;
    }
    table.write_csv(&out.join("prompt_styles.csv"))?;
    Report::new("seg-viz demo <synthetic data>")
        .paragraph("Every picture below is drawn by seg-viz from synthetic data & numbers.")
        .key_values([("dataset", "BUSI_25 (synthetic)"), ("seed", "666")])
        .section("Segmentation")
        .figure(
            "panels_64.png",
            "64x64 case: image | GT | prediction vs GT | uncertainty",
        )
        .figure("overlay_224.png", "GT (green) vs prediction (red), 224x224")
        .section("Curves")
        .figure("loss.png", "Loss per epoch (val epoch 17 missing)")
        .figure("data_efficiency.png", "DSC vs % of training data")
        .figure("beta_sweep.png", "HM DSC vs beta")
        .section("Prompt styles")
        .table(table)
        .figure("prompt_styles.png", "DSC by prompt style")
        .code("cargo run -p seg-viz --example viz_demo -- /tmp/viz-demo")
        .write(&out, "report")?;
    println!(
        "wrote pictures and report.html / report.md to {}",
        out.display()
    );
    Ok(())
}
