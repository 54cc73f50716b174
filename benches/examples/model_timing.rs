//! Times the model benchmark workloads without criterion: `model_timing WORKLOAD [RUNS]`
//! with WORKLOAD one of `forward`, `mc30`, `train`. Prints every run and the min / median,
//! after one untimed warm-up run. Run it under `/usr/bin/time -v` for the peak RSS of one
//! workload.
//!
//! `cargo run --release -p medclipseg-benches --example model_timing -- mc30 3`

#[path = "../workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use medclipseg_benches::backend;
use workloads::{Inference, Training};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_default();
    let runs: usize = match args.next().map(|r| r.parse()) {
        None => 3,
        Some(Ok(runs)) if runs > 0 => runs,
        Some(_) => {
            eprintln!("RUNS must be a positive integer");
            return ExitCode::FAILURE;
        }
    };
    // As the app does (crates/medclipseg/src/main.rs).
    medclipseg_model::allocator::retain_freed_buffers();
    let mut run: Box<dyn FnMut()> = match workload.as_str() {
        "forward" => {
            let mut work = Inference::new();
            Box::new(move || {
                black_box(work.forward());
            })
        }
        "mc30" => {
            let mut work = Inference::new();
            Box::new(move || {
                black_box(work.mc());
            })
        }
        "train" => {
            let mut work = Training::new();
            Box::new(move || {
                black_box(work.step());
            })
        }
        _ => {
            eprintln!("usage: model_timing forward|mc30|train [RUNS]");
            return ExitCode::FAILURE;
        }
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!("{workload} on {} ({threads} threads)", backend::name());
    run();
    let mut times: Vec<f64> = (0..runs)
        .map(|i| {
            let start = Instant::now();
            let cpu_start = process_cpu_seconds();
            run();
            let seconds = start.elapsed().as_secs_f64();
            match (cpu_start, process_cpu_seconds()) {
                (Some(a), Some(b)) => println!("run {i}: {seconds:.3} s (cpu {:.2} s)", b - a),
                _ => println!("run {i}: {seconds:.3} s"),
            }
            seconds
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{workload}: min {:.3} s, median {:.3} s over {runs} runs",
        times[0],
        times[runs / 2]
    );
    ExitCode::SUCCESS
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, 100 ticks per second),
/// beside the wall time: on a loaded machine the CPU time of a one-thread run still compares.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
