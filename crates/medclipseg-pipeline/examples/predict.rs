//! Image + prompt → mask, with the library: what a user writes.
//!
//! ```sh
//! cargo run -p medclipseg-pipeline --example predict -- CHECKPOINT IMAGE "PROMPT" MASK.png
//! ```

use std::path::Path;

use burn::backend::Flex;
use medclipseg_pipeline::{Predictor, Result, read_image};

/// Loads the checkpoint, predicts `image` with `prompt` and writes the mask (at the image's
/// size) to `mask_out`; returns the foreground share and the mean predictive entropy.
pub fn run(checkpoint: &Path, image: &Path, prompt: &str, mask_out: &Path) -> Result<(f64, f64)> {
    let device = Default::default();
    let predictor = Predictor::<Flex>::load(checkpoint, &device)?.with_samples(4);
    let prediction = predictor.predict_image(&read_image(image)?, prompt)?;
    prediction.write_mask_png(mask_out)?;
    Ok((prediction.foreground_fraction(), prediction.mean_entropy()))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [checkpoint, image, prompt, mask] = args.as_slice() else {
        eprintln!("usage: predict CHECKPOINT IMAGE PROMPT MASK.png");
        return std::process::ExitCode::FAILURE;
    };
    match run(
        Path::new(checkpoint),
        Path::new(image),
        prompt,
        Path::new(mask),
    ) {
        Ok((foreground, entropy)) => {
            println!("{mask}: foreground {foreground:.4}, mean entropy {entropy:.4}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
