//! Conformal threshold and annotation queue with the library: what a user writes.
//!
//! ```sh
//! cargo run -p medclipseg-pipeline --example calibrate_rank -- CHECKPOINT VAL_IMAGES VAL_MASKS UNLABELLED "PROMPT" OUT
//! ```

use std::path::Path;

use burn::backend::Flex;
use medclipseg_pipeline::calibrator::items_from_folders;
use medclipseg_pipeline::rank::{self, QueueRow, RankOptions};
use medclipseg_pipeline::{Calibrator, Predictor, Result};
use seg_metrics::conformal::{CrcResult, Risk};
use seg_metrics::ranking::RankBy;

/// The threshold that keeps the missed lesion fraction (FNR) at most `alpha` in expectation
/// over images like the labelled ones in `images`/`masks`.
pub fn calibrate(
    predictor: &Predictor<Flex>,
    images: &Path,
    masks: &Path,
    prompt: &str,
    alpha: f64,
) -> Result<CrcResult> {
    let items = items_from_folders(images, masks, prompt)?;
    let set = Calibrator::new(predictor).measure(&items, &mut |_, _| {})?;
    set.calibrate(Risk::Fnr, alpha)
}

/// The unlabelled images of `dir` ranked by mutual information, written under `out`.
pub fn queue(
    predictor: &Predictor<Flex>,
    dir: &Path,
    prompt: &str,
    out: &Path,
) -> Result<Vec<QueueRow>> {
    let inputs = rank::inputs_with_prompt(dir, prompt)?;
    let options = RankOptions::new(RankBy::MutualInformation, out);
    Ok(rank::rank(predictor, &inputs, &options, &mut |_| {})?.queue)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [checkpoint, images, masks, unlabelled, prompt, out] = args.as_slice() else {
        eprintln!("usage: calibrate_rank CHECKPOINT VAL_IMAGES VAL_MASKS UNLABELLED PROMPT OUT");
        return std::process::ExitCode::FAILURE;
    };
    let run = || -> Result<()> {
        let device = Default::default();
        let predictor = Predictor::<Flex>::load(checkpoint, &device)?.with_samples(8);
        let result = calibrate(&predictor, images.as_ref(), masks.as_ref(), prompt, 0.1)?;
        println!(
            "threshold {:.3}: FNR <= 0.1 in expectation (n = {})",
            result.threshold, result.n
        );
        let rows = queue(&predictor, unlabelled.as_ref(), prompt, out.as_ref())?;
        for row in rows.iter().take(5) {
            println!("#{} {} score {:.4}", row.rank, row.file, row.score);
        }
        Ok(())
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
