//! `pingpong check`: grade any server that speaks pingpong's line
//! protocol, from outside, the way the labs provoke pingpong's own.
//!
//! Each case has a stable id (`line/ping`, `conc/stuck-reader`, ...), runs
//! on connections of its own with a deadline, and when it fails says the
//! rule, what was expected, what came instead, the likely mistake and the
//! lab that reproduces it (`pingpong lab NAME`). `docs/check.md` lists
//! every case.
//!
//! Exit status: 0 every case passed (skips allowed), 1 some failed, 2
//! check could not run.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod case;
mod conc;
mod cpu;
mod eof;
mod exchange;
mod fd;
mod flow;
mod limit;
mod line;
mod mem;
mod report;
mod reset;
mod run;
mod target;

/// Grade a server that speaks pingpong's line protocol: every case, its
/// rule, what came back, the likely mistake and the lab that shows it.
#[derive(Parser, Debug)]
#[command(
    name = "pingpong check",
    bin_name = "pingpong check",
    after_help = "Examples:\n  pingpong check 127.0.0.1:8000\n  \
                  pingpong check --pid 4242 127.0.0.1:8000\n  \
                  pingpong check -- python3 my_server.py --port {port}\n  \
                  pingpong check --only line conc/many -- python3 my_server.py --port {port}\n\n\
                  Exit status: 0 every case passed, 1 some failed, 2 check could not run."
)]
struct Args {
    /// HOST:PORT of a server already running (with `-- CMD`: where the
    /// command listens, if it has no {port}).
    target: Option<String>,
    /// The server's pid, when it runs on this host: the cases that read
    /// its CPU and memory or signal it run too.
    #[arg(long)]
    pid: Option<i32>,
    /// Run only these cases: ids (`line/ping`) or groups (`line`).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    only: Vec<String>,
    /// List every case: id, what it does, what it catches.
    #[arg(long)]
    list: bool,
    /// Seconds each case may wait for the server (on top of the time a
    /// case measures for on purpose).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// How to report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Start the server: `-- python3 server.py --port {port}` ({port}
    /// becomes a free port); check stops it at the end.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// For a person: h2spec's shape, and a score line.
    Text,
    /// One JSON object, for scripts.
    Json,
    /// Gradescope's results.json.
    Gradescope,
    /// JUnit XML, for CI.
    Junit,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    // `--only line 127.0.0.1:8000`: the address is not a case.
    if args.target.is_none() && args.only.last().is_some_and(|last| last.contains(':')) {
        args.target = args.only.pop();
    }
    if args.list {
        print!("{}", list());
        return ExitCode::SUCCESS;
    }
    match check(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pingpong check: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run the check; `Ok(true)` if every case passed.
fn check(args: &Args) -> Result<bool, String> {
    let cases = run::select(&args.only)?;
    let addr =
        args.target.as_deref().map(target::resolve).transpose().map_err(|e| e.to_string())?;
    let mut target = match (addr, args.command.is_empty()) {
        (_, false) => {
            if args.pid.is_some() {
                return Err(
                    "--pid is for a server already running; with -- CMD check knows it".into()
                );
            }
            target::Target::start(args.command.clone(), addr)
        }
        (Some(addr), true) => target::Target::running(addr, args.pid),
        (None, true) => {
            return Err("say which server: HOST:PORT, --pid PID HOST:PORT, or -- CMD ARGS \
                        (see --help)"
                .into())
        }
    }
    .map_err(|e| e.to_string())?;
    let report = run::run(&mut target, &cases, Duration::from_secs(args.timeout));
    target.stop();
    let colour = args.out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let rendered = match args.format {
        Format::Text => report::text::render(&report, colour),
        Format::Json => report::json::render(&report),
        Format::Gradescope => report::gradescope::render(&report),
        Format::Junit => report::junit::render(&report),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, rendered)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            // The score still goes to the terminal, so a run is never silent.
            println!("{}", report.score_line());
        }
        None => {
            let _ = std::io::stdout().write_all(rendered.as_bytes());
        }
    }
    Ok(report.all_passed())
}

/// `--list`: every case, what it does, and what it catches.
fn list() -> String {
    let mut out = String::new();
    for case in run::all_cases() {
        out.push_str(&format!("{:<20} {}\n", case.id, case.title));
        out.push_str(&format!("{:<20}   passes: {}\n", "", case.rule));
        if let Some(mistake) = case.mistake {
            out.push_str(&format!("{:<20}   catches: {mistake}\n", ""));
        }
        match (case.lab, case.see) {
            (Some(lab), _) => out.push_str(&format!("{:<20}   lab: pingpong lab {lab}\n", "")),
            (None, Some(see)) => out.push_str(&format!("{:<20}   see: {see}\n", "")),
            _ => {}
        }
        match case.needs {
            case::Needs::Pid => {
                out.push_str(&format!("{:<20}   needs: the pid (--pid, or -- CMD)\n", ""))
            }
            case::Needs::Command => out.push_str(&format!("{:<20}   needs: -- CMD\n", "")),
            case::Needs::Address => {}
        }
    }
    out
}
