//! `pingpong watch`: see a server as the kernel holds it, live, or in one
//! snapshot (`--once`, `--json`). `pingpong watch ARGS` runs this program.

use std::process::ExitCode;

use clap::Parser;

/// See a running server as the kernel holds it: each thread's system call
/// and the fd it waits on, each socket's state and queues, each epoll
/// interest list and io_uring, and what looks wrong. Linux.
#[derive(Parser, Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read by the Linux run() only
#[command(name = "pingpong watch", version)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["pid", "command"]))]
struct Args {
    /// Watch the running process PID.
    #[arg(long)]
    pid: Option<i32>,

    /// Refresh every MS milliseconds (--once and --json read twice, this
    /// far apart, for the rates and for what must last a refresh).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    interval: u64,

    /// Print one snapshot as text and exit.
    #[arg(long, conflicts_with = "json")]
    once: bool,

    /// Print one snapshot as JSON and exit.
    #[arg(long)]
    json: bool,

    /// Do not read /proc/PID/task/TID/syscall, as if we had no ptrace
    /// rights (what a user sees watching another user's process).
    #[arg(long, hide = true)]
    hide_syscalls: bool,

    /// Also write the two raw readings behind --once or --json to FILE
    /// (JSON): the recorded inputs the view's tests render.
    #[arg(long, hide = true, value_name = "FILE")]
    record: Option<std::path::PathBuf>,

    /// Start CMD ARGS and watch it; `{port}` in ARGS becomes a free port.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong watch: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_args: Args) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "it reads /proc (a thread's system call, fdinfo's epoll and io_uring lines) and \
         NETLINK_SOCK_DIAG, which only Linux has. Here, see some of it with: lsof -p PID \
         (open fds and sockets), netstat -an (queues), ps -M PID or top (threads); on \
         FreeBSD, procstat -f PID (fds), procstat -kk PID (where each thread sleeps), \
         sockstat -P tcp",
    ))
}

#[cfg(target_os = "linux")]
fn run(args: Args) -> std::io::Result<()> {
    use std::io;
    use std::process::Command;
    use std::time::Duration;

    use pingpong::observe::launched::{fill_port, free_port, wants_port};
    use pingpong::observe::{Launched, Stream};
    use pingpong_watch::proc_read::ProcSource;
    use pingpong_watch::raw::Source;
    use pingpong_watch::{model, text, ui};

    let interval = Duration::from_millis(args.interval);
    // With `-- CMD`, the server is our child: Yama's ptrace_scope=1 lets a
    // parent read its threads' system calls.
    let mut child: Option<Launched> = None;
    let pid = match args.pid {
        Some(pid) => pid,
        None => {
            let port = if wants_port(&args.command) { Some(free_port()?) } else { None };
            let words = match port {
                Some(port) => fill_port(&args.command, port),
                None => args.command.clone(),
            };
            let (program, rest) =
                words.split_first().ok_or_else(|| io::Error::other("no command after --"))?;
            let mut launched = Launched::spawn(Command::new(program).args(rest))?;
            let mut pid = launched.pid();
            match port {
                Some(port) => launched
                    .await_accepting(([127, 0, 0, 1], port).into(), Duration::from_secs(10))?,
                // No port to try: pingpong's own start-up line says when it
                // listens (and its pid, should it run under strace); any
                // other server gets a moment.
                None => {
                    if let Ok(banner) = launched.await_banner(Duration::from_secs(2)) {
                        pid = banner.pid;
                    } else if !launched.alive() {
                        return Err(launched.failure("ended before it could be watched"));
                    }
                }
            }
            child = Some(launched);
            pid
        }
    };

    let mut source = ProcSource::new(pid);
    source.hide_syscalls = args.hide_syscalls;
    let outcome = if args.once || args.json {
        (|| -> io::Result<()> {
            let before = source.read()?;
            std::thread::sleep(interval);
            let now = source.read()?;
            if let Some(path) = &args.record {
                let both =
                    serde_json::to_string_pretty(&[&before, &now]).map_err(io::Error::other)?;
                std::fs::write(path, both + "\n")?;
            }
            let snapshot = model::snapshot(&before, &now);
            if args.json {
                let json = serde_json::to_string_pretty(&snapshot).map_err(io::Error::other)?;
                println!("{json}");
            } else {
                print!("{}", text::render(&snapshot));
            }
            Ok(())
        })()
    } else {
        ui::run(&mut source, interval)
    };
    if let Some(mut launched) = child {
        let _ = launched.stop(Duration::from_secs(3));
        if outcome.is_err() {
            let last = launched.tail(Stream::Stderr, 3);
            if !last.is_empty() {
                eprintln!("pingpong watch: the server's last words: {}", last.join(" | "));
            }
        }
    }
    outcome
}
