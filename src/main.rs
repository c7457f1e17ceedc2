//! `pingpong`: the command line only. Parse, pick the mode, run.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::{Command as Program, ExitCode};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use pingpong::bugs::Bug;
use pingpong::client::{self, ClientConfig, NUM_CLIENTS};
use pingpong::lab;
use pingpong::server::config::{self, count};
use pingpong::server::{self, Config, Mode};
use pingpong::words;

#[derive(Parser)]
#[command(version, about = "How one process serves many clients, at the level of system calls")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Connect clients that send pings and read pongs.
    Client(ClientArgs),
    /// Switch one guard off and measure what goes wrong (docs/labs.md).
    Lab(LabArgs),
    /// Grade any server that speaks the protocol (docs/check.md); `pingpong check --help`.
    Check(ToolArgs),
    /// Show a running server as the kernel holds it, live (Linux); `pingpong watch --help`.
    Watch(ToolArgs),
}

/// Everything after `check` or `watch`, `--help` and `--` included, handed as
/// it is to the tool's own program (`main` does it before clap sees them; clap
/// knows them only for `pingpong --help`): the tools are packages of their
/// own (`check/`, `watch/`), so that the crate students read carries none of
/// their dependencies (JSON, XML, a terminal UI).
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
struct ToolArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(clap::Args)]
#[group(skip)] // one of NAME, --list, --all; --no-strace goes with any
#[command(group(clap::ArgGroup::new("which").required(true).multiple(false)))]
struct LabArgs {
    /// The lab, named after the bug it switches on.
    #[arg(value_enum, group = "which")]
    name: Option<Bug>,
    /// List the labs.
    #[arg(long, group = "which")]
    list: bool,
    /// Run every lab, one after the other.
    #[arg(long, group = "which")]
    all: bool,
    /// Skip the run under strace.
    #[arg(long)]
    no_strace: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// How to serve many clients [default: epoll on Linux, kqueue on macOS/BSD]
    #[arg(long, value_enum, default_value_t, hide_default_value = true)]
    mode: Mode,
    #[command(flatten)]
    config: Config,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClientMode {
    /// A thread per connection.
    Threads,
    /// All connections from one thread, with the selector.
    Selector,
}

#[derive(clap::Args)]
struct ClientArgs {
    /// The server's IP address (v4 or v6); `localhost` is 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1", value_parser = config::parse_host)]
    host: IpAddr,
    /// The server's port, 1 to 65535.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u16).range(1..=65535))]
    port: u16,
    /// Connections opened at once, 1 to 100000.
    #[arg(long, default_value_t = 1, value_parser = count(NUM_CLIENTS))]
    num_clients: usize,
    /// Pings each connection sends.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    #[arg(long, value_enum, default_value = "threads")]
    mode: ClientMode,
    /// Only the summary line.
    #[arg(long)]
    quiet: bool,
    /// Seconds to wait for a connection or a reply before giving up, 1 to 3600.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

fn main() -> ExitCode {
    // `check` and `watch` get their arguments exactly as typed. Through clap,
    // the `--` of `pingpong watch -- CMD` would be taken as clap's own
    // separator and dropped, and the tool would read CMD as its options.
    let mut args = std::env::args_os().skip(1);
    if let Some(tool) = args.next().and_then(|a| TOOLS.into_iter().find(|t| a == *t)) {
        return run_tool(tool, args.collect());
    }
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Client(args) => run_client(args),
        Command::Lab(args) => run_lab(args),
        Command::Check(args) => run_tool("check", args.args),
        Command::Watch(args) => run_tool("watch", args.args),
    }
}

/// `pingpong TOOL ARGS` runs `pingpong-TOOL ARGS`, as `git TOOL` and `cargo
/// TOOL` do: the one beside this binary (where `make build` puts it), else
/// the one on PATH. exec(2) replaces this process, so the tool keeps its pid
/// and its terminal, and Ctrl-C reaches it alone.
/// The subcommands that are programs of their own.
const TOOLS: [&str; 2] = ["check", "watch"];

fn run_tool(tool: &str, args: Vec<OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let name = format!("pingpong-{tool}");
    let beside = std::env::current_exe().ok().and_then(|me| Some(me.parent()?.join(&name)));
    let program =
        beside.filter(|path| path.is_file()).map_or_else(|| name.clone().into(), OsString::from);
    let error = Program::new(&program).args(&args).exec();
    if error.kind() == std::io::ErrorKind::NotFound {
        eprintln!(
            "pingpong {tool}: {name} is not built: run `make build` (or `cargo build --release -p {name}`), \
             then target/release/pingpong {tool} again"
        );
    } else {
        eprintln!(
            "pingpong {tool}: cannot run {}: {}",
            program.to_string_lossy(),
            words::cause(&error)
        );
    }
    ExitCode::from(2)
}

fn run_lab(args: LabArgs) -> ExitCode {
    if args.list {
        for lab in lab::labs() {
            println!("{:<17} {}", lab.bug.name(), lab.bug.what());
            println!("{:<17} lab: {}", "", lab.scenario);
        }
        return ExitCode::SUCCESS;
    }
    let bin = match std::env::current_exe() {
        Ok(bin) => bin,
        Err(e) => {
            eprintln!("pingpong lab: cannot find my own binary: {}", words::cause(&e));
            return ExitCode::FAILURE;
        }
    };
    let chosen: Vec<lab::Lab> = match args.name {
        Some(bug) => lab::lab(bug).into_iter().collect(),
        None => lab::labs(),
    };
    let (mut shown, total) = (0, chosen.len());
    for lab in &chosen {
        match lab::run(lab, &bin, !args.no_strace) {
            Ok(outcome) => {
                println!("{outcome}");
                match &outcome.strace {
                    Ok(lines) if !lines.is_empty() => {
                        println!("  strace, guard off:");
                        lines.iter().for_each(|line| println!("    {line}"));
                    }
                    Ok(_) => println!("  strace, guard off: no line showed it"),
                    Err(why) if !args.no_strace => println!("  strace: skipped, {why}"),
                    Err(_) => {}
                }
                let bug = lab.bug;
                println!(
                    "  the guard: {}; docs/labs.md#{bug} ({:.1} s)",
                    bug.guard(),
                    outcome.secs
                );
                if outcome.shows_bug() {
                    shown += 1;
                } else {
                    println!("  this lab did not show its bug: see the readings above");
                }
            }
            Err(e) => eprintln!("pingpong lab {}: {}", lab.bug, words::cause(&e)),
        }
    }
    if total > 1 {
        println!("{shown} of {total} labs showed their bug with the guard off, and not with it on");
    }
    if shown == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs { mode, config } = args;
    match server::serve(mode, &config) {
        Ok(summary) => {
            println!("{summary}");
            if config.stats {
                println!("{}", summary.stats_line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pingpong serve: {}", words::cause(&e));
            ExitCode::FAILURE
        }
    }
}

fn run_client(args: ClientArgs) -> ExitCode {
    let config = ClientConfig {
        host: args.host,
        port: args.port,
        num_clients: args.num_clients,
        messages: args.messages,
        quiet: args.quiet,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = match args.mode {
        ClientMode::Threads => client::run_threads(&config),
        ClientMode::Selector => match client::run_selector(&config) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("pingpong client: {}", words::cause(&e));
                return ExitCode::FAILURE;
            }
        },
    };
    for line in report.failure_lines(&config) {
        eprintln!("pingpong client: {line}");
    }
    println!("{}", report.summary(&config));
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
