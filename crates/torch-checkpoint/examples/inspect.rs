//! Prints what a checkpoint holds: each tensor's name, dtype and shape, then the loader's
//! notes. Usage: `cargo run -p torch-checkpoint --example inspect -- FILE [WRAPPER_KEY]`.

use std::process::ExitCode;

use torch_checkpoint::{Wrapper, load_with_wrapper};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: inspect FILE [WRAPPER_KEY]");
        return ExitCode::FAILURE;
    };
    let wrapper = args.next().map_or(Wrapper::Auto, Wrapper::Key);
    match load_with_wrapper(&path, &wrapper) {
        Ok(sd) => {
            for (name, tensor) in sd.iter() {
                let preview: Vec<f32> = tensor.to_f32_vec().into_iter().take(4).collect();
                println!(
                    "{name}\t{}\t{:?}\t{preview:?}",
                    tensor.dtype(),
                    tensor.shape()
                );
            }
            for note in sd.notes() {
                println!("note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
