//! `pingpong watch`: not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("pingpong watch: not built yet");
    ExitCode::from(2)
}
