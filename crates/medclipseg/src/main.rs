//! `medclipseg`: text-guided medical image segmentation with uncertainty (MedCLIPSeg, CVPR 2026)
//! on Burn. Run `medclipseg --help`, or `medclipseg demo` for the embedded default.

mod args;
mod backend;
mod bench_cmd;
mod calibrate_cmd;
mod cli;
mod demo_cmd;
mod eval_cmd;
mod logging;
mod observers;
mod predict_cmd;
mod rank_cmd;
mod serve_cmd;
mod store;
mod tools_cmd;
mod train_cmd;
mod volume_eval;
mod volume_predict;
mod volume_score;

fn main() -> std::process::ExitCode {
    medclipseg_model::allocator::retain_freed_buffers();
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
