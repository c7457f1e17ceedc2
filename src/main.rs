//! `pingpong`: the command line only. Parse, pick the mode, run.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use pingpong::client::{self, ClientConfig};
use pingpong::selector::Backend;
use pingpong::server::{self, Config, Mode};

#[derive(Parser)]
#[command(
    version,
    about = "How one process serves many clients, at the level of system calls"
)]
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
    /// Measure every mode side by side (starts its own servers).
    Bench(pingpong::bench::BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ServeMode {
    /// One client at a time (the course's simple server).
    Blocking,
    /// Selector loop on epoll(7) (Linux).
    Epoll,
    /// Selector loop on kqueue(2) (macOS, BSD).
    Kqueue,
    /// Selector loop on poll(2).
    Poll,
    /// Selector loop on select(2).
    Select,
    /// A thread per client.
    Threads,
    /// A fixed pool of --workers threads.
    Pool,
    /// Selector loop for the I/O, a pool of --workers threads for the work.
    Hybrid,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// How to serve many clients [default: epoll on Linux, kqueue on macOS/BSD]
    #[arg(long, value_enum)]
    mode: Option<ServeMode>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks any free port (the start-up line names it).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[arg(long, default_value_t = 128)]
    backlog: i32,
    /// Milliseconds the handler spends before each reply.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    /// Raw echo (RFC 862): send back every byte, no lines.
    #[arg(long)]
    echo: bool,
    /// Print counters (system calls, lines, bytes) on exit.
    #[arg(long)]
    stats: bool,
    /// Narrate every system call on stderr, as strace would show it.
    #[arg(long)]
    trace: bool,
    /// Longest line accepted, in bytes.
    #[arg(long, default_value_t = pingpong::protocol::DEFAULT_MAX_LINE)]
    max_line: usize,
    /// Close clients silent for this many seconds (0 = never).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Clients served at once [default: from RLIMIT_NOFILE]
    #[arg(long)]
    max_clients: Option<usize>,
    /// Unsent reply bytes per client before the server stops reading it.
    #[arg(long, default_value_t = 1 << 20)]
    max_pending: usize,
    /// Threads in pool and hybrid modes [default: min(32, CPUs + 4)]; event
    /// loops in the selector modes [default: 1]
    #[arg(long)]
    workers: Option<usize>,
    /// Edge-triggered selector (EPOLLET / EV_CLEAR).
    #[arg(long)]
    edge: bool,
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
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Connections opened at once.
    #[arg(long, default_value_t = 1)]
    num_clients: usize,
    /// Pings each connection sends.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    #[arg(long, value_enum, default_value = "threads")]
    mode: ClientMode,
    /// Only the summary line.
    #[arg(long)]
    quiet: bool,
    /// Seconds to wait for replies before giving up.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Client(args) => run_client(args),
        Command::Bench(args) => pingpong::bench::run(&args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mode = match args.mode {
        None => Mode::Selector(Backend::default_for_os()),
        Some(ServeMode::Blocking) => Mode::Blocking,
        Some(ServeMode::Epoll) => Mode::Selector(Backend::Epoll),
        Some(ServeMode::Kqueue) => Mode::Selector(Backend::Kqueue),
        Some(ServeMode::Poll) => Mode::Selector(Backend::Poll),
        Some(ServeMode::Select) => Mode::Selector(Backend::Select),
        Some(ServeMode::Threads) => Mode::Threads,
        Some(ServeMode::Pool) => Mode::Pool,
        Some(ServeMode::Hybrid) => Mode::Hybrid,
    };
    let defaults = Config::default();
    let config = Config {
        host: args.host,
        port: args.port,
        backlog: args.backlog,
        work: Duration::from_millis(args.work_ms),
        echo: args.echo,
        max_line: args.max_line,
        workers: args.workers,
        edge: args.edge,
        stats: args.stats,
        trace: args.trace,
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        max_clients: args.max_clients.unwrap_or(defaults.max_clients),
        max_pending: args.max_pending,
    };
    match server::serve(mode, &config) {
        Ok(summary) => {
            println!("{summary}");
            if config.stats {
                println!("{}", summary.stats_line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pingpong serve: {e}");
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
                eprintln!("pingpong client: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    for error in &report.errors {
        eprintln!("{error}");
    }
    println!("{}", report.summary(&config));
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
