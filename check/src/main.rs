//! `pingpong check`: not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("pingpong check: not built yet");
    ExitCode::from(2)
}
