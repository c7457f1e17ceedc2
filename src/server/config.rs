//! What `pingpong serve` can be told: the command line is the [`Config`]
//! struct (clap derive), so each option and its default are written once.
//!
//! Values are checked at the door: clap's value parsers refuse a count of
//! 0 (`--workers 0`, `--max-line 0`, ...) or a `--host` that is not an
//! address before anything runs, naming the value and what is allowed,
//! rather than the server quietly making something of it.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::bugs::Bug;

/// Everything `pingpong serve` can be told. The command line is this struct
/// (clap derive), so each default is written once, here.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// An IP address (v4 or v6) to listen on; `localhost` is 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// 0 picks any free port (the start-up line names it).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Connections the kernel holds for `accept`, 1 to 65535 (the kernel caps
    /// it at its own limit, net.core.somaxconn on Linux).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub backlog: i32,
    /// Milliseconds the handler spends before each reply (per line; with --echo,
    /// per batch of bytes): the slow-handler lesson.
    #[arg(long = "work-ms", value_name = "MS", default_value = "0", value_parser = millis)]
    pub work: Duration,
    /// Raw echo (RFC 862): send back every byte, no lines.
    #[arg(long)]
    pub echo: bool,
    /// Longest line accepted, in bytes, not counting its ending: 1 to 16 MiB.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_MAX_LINE, value_parser = count(MAX_LINE))]
    pub max_line: usize,
    /// Threads in pool and hybrid modes [default: min(32, CPUs + 4)], event
    /// loops in the selector modes [default: 1]: 1 to 1024.
    #[arg(long, value_parser = count(WORKERS))]
    pub workers: Option<usize>,
    /// Edge-triggered selector (EPOLLET / EV_CLEAR): epoll, kqueue and hybrid only.
    #[arg(long)]
    pub edge: bool,
    /// Print counters (system calls, lines, bytes) on exit.
    #[arg(long)]
    pub stats: bool,
    /// Narrate every system call on stderr, as strace would show it.
    #[arg(long)]
    pub trace: bool,
    /// Close clients silent for this many seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = seconds_or_never)]
    pub idle_timeout: Idle,
    /// Clients served at once, 1 to 1048576; the next one is told `error:
    /// server busy` [default: from RLIMIT_NOFILE]
    #[arg(long, default_value_t = default_max_clients(), hide_default_value = true,
          value_parser = count(MAX_CLIENTS))]
    pub max_clients: usize,
    /// Unsent reply bytes per client before the server stops reading it.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_pending: usize,
    /// Switch one guard off, on purpose, to watch what it prevents (may be
    /// given more than once; `pingpong lab --list` and docs/labs.md tell more).
    #[arg(long = "bug", value_name = "NAME", value_enum)]
    pub bugs: Vec<Bug>,
    /// uring mode, for tests: submission queue entries (a power of two).
    #[arg(long, hide = true, default_value_t = 256, value_parser = count(1..=32768))]
    pub uring_entries: usize,
    /// uring mode, for tests: completion queue entries [default: 16 x the SQ].
    #[arg(long, hide = true, value_parser = count(1..=1 << 20))]
    pub uring_cq_entries: Option<usize>,
    /// uring mode, for tests: provided receive buffers (a power of two).
    #[arg(long, hide = true, default_value_t = 256, value_parser = power_of_two)]
    pub uring_buffers: u16,
    /// uring mode, for tests: bytes in each provided buffer. 64 KiB, as much
    /// as the selector server reads at once: a line up to that long mostly
    /// arrives in one completion and is parsed where it lies; smaller, it
    /// comes in pieces gathered by copying (16 KiB: 4 completions, 4 copies
    /// per 64 KiB line). Memory is spent only as the kernel writes into them:
    /// a page per buffer under pings, all of it under bulk loads (16 MiB).
    #[arg(long, hide = true, default_value_t = 64 << 10, value_parser = count(1..=1 << 20))]
    pub uring_buffer_size: usize,
}

/// `--idle-timeout`: how long a client may stay silent (`None` = forever).
pub type Idle = Option<Duration>;

/// `--workers`: a pool of 0 threads would never answer, and beyond a
/// thousand threads or loops a teaching server measures only the scheduler.
pub const WORKERS: RangeInclusive<u64> = 1..=1024;

/// `--max-line`: a line of 0 bytes could never be accepted, and a client's
/// unfinished line is held in memory, up to this much.
pub const MAX_LINE: RangeInclusive<u64> = 1..=16 << 20;

/// `--max-clients`: at least one, and no more than Linux lets a process
/// open fds by default (`fs.nr_open`).
pub const MAX_CLIENTS: RangeInclusive<u64> = 1..=1 << 20;

/// A count on the command line, refused by clap outside `range`, with the
/// value and the range in the message: `0 is not in 1..=1024`.
pub fn count(range: RangeInclusive<u64>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(range)
}

/// `--host` for clap: an IP address, v4 or v6, or `localhost` for
/// 127.0.0.1. Other names are refused rather than looked up: a server binds
/// one address, and a name can stand for several (or for none, after a
/// slow DNS timeout).
pub fn parse_host(s: &str) -> Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse().map_err(|_| {
        "not an IP address; give one such as 127.0.0.1, 0.0.0.0 or ::1, or localhost".to_string()
    })
}

/// `--uring-buffers`: the kernel wants a power of two, up to 32768.
fn power_of_two(s: &str) -> Result<u16, String> {
    let n: u16 = s.parse().map_err(|e| format!("{e}"))?;
    if n.is_power_of_two() && n <= 1 << 15 {
        Ok(n)
    } else {
        Err("not a power of two from 1 to 32768".to_string())
    }
}

fn millis(s: &str) -> Result<Duration, String> {
    s.parse().map(Duration::from_millis).map_err(|e| format!("{e}"))
}

fn seconds_or_never(s: &str) -> Result<Idle, String> {
    let secs: u64 = s.parse().map_err(|e| format!("{e}"))?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// The defaults of the command line, as `pingpong serve` with no options.
impl Default for Config {
    fn default() -> Config {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        <Defaults as clap::Parser>::parse_from(["serve"]).config
    }
}

impl Config {
    /// Worker threads for `pool` and `hybrid`.
    pub fn pool_size(&self) -> usize {
        self.workers.unwrap_or_else(default_workers)
    }

    /// Event loops in a selector mode: `--workers N`, else one.
    pub fn event_loops(&self) -> usize {
        self.workers.unwrap_or(1)
    }
}

/// Python's `ThreadPoolExecutor` default: min(32, CPUs + 4).
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

/// The default `--max-clients`: what RLIMIT_NOFILE leaves after a reserve
/// for the listener, the selector, the signal pipe and the spare fd, within
/// [`MAX_CLIENTS`] (an unlimited RLIMIT_NOFILE must not make the default
/// itself a value clap refuses).
pub fn default_max_clients() -> usize {
    const RESERVE: libc::rlim_t = 16; // rlim_t: u64 on Linux, i64 on FreeBSD
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap_or((1024, 1024));
    let most = *MAX_CLIENTS.end() as libc::rlim_t;
    soft.saturating_sub(RESERVE).clamp(1, most) as usize
}

/// `--bug NAME` (and `pingpong lab NAME`) for clap, from [`Bug::ALL`]: the
/// command line's side of the switchboard, kept here so that `bugs.rs`, a
/// leaf every layer may read, does not depend on clap.
impl ValueEnum for Bug {
    fn value_variants<'a>() -> &'a [Bug] {
        &Bug::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_an_address_or_localhost_and_nothing_is_looked_up() {
        assert_eq!(parse_host("0.0.0.0"), Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(parse_host("::1"), Ok("::1".parse().unwrap()));
        assert_eq!(parse_host("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let refused = parse_host("example.com").unwrap_err();
        assert!(refused.starts_with("not an IP address"), "{refused}");
    }
}
