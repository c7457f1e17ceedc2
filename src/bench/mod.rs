//! `pingpong bench`: every mode side by side (being built).

use std::process::ExitCode;

/// The benchmark's options.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Run the benchmark.
pub fn run(_args: &BenchArgs) -> ExitCode {
    eprintln!("pingpong bench: not built yet");
    ExitCode::FAILURE
}
