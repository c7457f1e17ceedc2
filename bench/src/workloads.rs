//! What the benchmark runs: the workloads, the servers, and which pairs fit.
//!
//! A *run* is one server (a [`Target`]) under one load (a [`Workload`]).
//! The plan is the list of runs: every workload against every target it
//! applies to, plus a few variants (two event loops, edge-triggered) next to
//! the workloads where they teach something. A pair that cannot run is kept
//! in the plan with the reason (`n/a: FD_SETSIZE`), so the report says why a
//! cell is empty instead of leaving it out silently.

use std::fmt;

use pingpong::selector::Backend;
use pingpong::server::Mode;

/// The modes measured when `--modes` is not given: every mode this OS has,
/// but blocking, which serves one client at a time.
pub fn default_modes() -> Vec<Mode> {
    Mode::all()
        .iter()
        .copied()
        .filter(|&mode| mode.is_available() && mode != Mode::Blocking)
        .collect()
}

/// The families of workloads, as the issue lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Family {
    /// `ping` → `pong` across connection counts, one request in flight.
    Ping,
    /// Lines of `--size` bytes echoed back: bandwidth, partial writes.
    Echo,
    /// Several pings in flight per connection: batching.
    Pipeline,
    /// A handler that takes `--work-ms` per request: the stall.
    Slow,
    /// Many idle connections plus a few active: memory per connection.
    Hold,
}

/// The load one run puts on a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub family: Family,
    /// Active connections, each a closed loop.
    pub clients: usize,
    /// Bytes per request, newline included; 0 means `ping\n`.
    pub size: usize,
    /// Requests in flight per active connection.
    pub pipeline: usize,
    /// The server's `--work-ms` (0 = no slow handler).
    pub work_ms: u64,
    /// Idle connections opened beside the active ones (the hold test).
    pub idle: usize,
}

impl Workload {
    /// A short name for tables: `ping 100c`, `echo 64KiB 10c`, `ping×16 100c`,
    /// `slow 20ms 100c`, `hold 10000+10c`.
    pub fn label(&self) -> String {
        match self.family {
            Family::Ping => format!("ping {}c", self.clients),
            Family::Echo => format!("echo {} {}c", bytes(self.size as f64), self.clients),
            Family::Pipeline => format!("ping×{} {}c", self.pipeline, self.clients),
            Family::Slow => format!("slow {}ms {}c", self.work_ms, self.clients),
            Family::Hold => format!("hold {}+{}c", self.idle, self.clients),
        }
    }

    /// Every connection the client side opens.
    pub fn connections(&self) -> usize {
        self.clients + self.idle
    }
}

/// A byte count the way people read it: `512B`, `1KiB`, `64KiB`, `1.5MiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// An external reference server: `--peer NAME=CMD`, CMD holding `{port}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub name: String,
    pub command: String,
}

/// Parse `NAME=CMD` for clap: a name, and a command that contains `{port}`.
pub fn parse_peer(s: &str) -> Result<Peer, String> {
    let (name, command) =
        s.split_once('=').ok_or_else(|| format!("expected NAME=CMD, got {s:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err("the peer's NAME is empty".into());
    }
    if !command.contains("{port}") {
        return Err(format!("the command of peer {name:?} has no {{port}} to put the port in"));
    }
    Ok(Peer { name: name.to_string(), command: command.to_string() })
}

/// What serves a run: one of pingpong's modes (`pingpong serve --mode`,
/// with its variant flags), or a peer.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Mode {
        mode: Mode,
        /// `--workers`: event loops in the selector modes. `None` leaves the
        /// server's default (one loop; CPUs + 4 threads in pool and hybrid).
        workers: Option<usize>,
        /// `--edge`: edge-triggered epoll.
        edge: bool,
    },
    Peer(Peer),
}

impl Target {
    /// Plain mode, default flags.
    pub fn mode(mode: Mode) -> Target {
        Target::Mode { mode, workers: None, edge: false }
    }

    /// Whether this is a variant (extra loops, edge) rather than a plain
    /// mode or peer: variants are left out of the charts.
    pub fn is_variant(&self) -> bool {
        matches!(self, Target::Mode { workers, edge, .. } if workers.is_some() || *edge)
    }
}

impl fmt::Display for Target {
    /// `epoll`, `epoll ×2` (two loops), `epoll edge`, `c-epoll (peer)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Mode { mode, workers, edge } => {
                f.write_str(mode.name())?;
                if let Some(n) = workers {
                    write!(f, " ×{n}")?;
                }
                if *edge {
                    f.write_str(" edge")?;
                }
                Ok(())
            }
            Target::Peer(peer) => write!(f, "{} (peer)", peer.name),
        }
    }
}

/// One cell of the plan: a workload, a target, and whether it can run.
#[derive(Clone, Debug)]
pub struct Run {
    pub workload: Workload,
    pub target: Target,
    /// `Some(reason)` when this pair cannot run here.
    pub skip: Option<String>,
}

/// What [`plan`] needs to know, decided in `mod.rs` from the options.
pub struct PlanInput<'a> {
    pub families: &'a [Family],
    pub modes: &'a [Mode],
    pub peers: &'a [Peer],
    /// Connection counts of the ping sweep.
    pub clients: &'a [usize],
    /// Request sizes; 0 stands for the ping sweep, others are echo loads.
    pub sizes: &'a [usize],
    /// Requests in flight; values above 1 make pipelined loads.
    pub pipelines: &'a [usize],
    pub work_ms: u64,
    /// Connections of the slow-handler load.
    pub slow_clients: usize,
    /// Idle connections in the hold test.
    pub idle: usize,
    /// Event loop counts to compare (values above 1 add variants).
    pub workers: &'a [usize],
    /// Add edge-triggered epoll beside the level-triggered one.
    pub edge: bool,
    /// File descriptors this process may open (RLIMIT_NOFILE after raising it).
    pub nofile: u64,
    /// Threads of pool mode (the server's default `--workers`).
    pub pool_size: usize,
}

/// Connections of the comparison loads (pipelining, loops, edge): the
/// 100 connections the peers' README measured with.
pub const BASE_CLIENTS: usize = 100;
/// Connections of the echo loads: few, each moving large lines.
pub const ECHO_CLIENTS: usize = 10;
/// Active connections of the hold test.
pub const HOLD_ACTIVE: usize = 10;

/// Every run, in the order they will be made.
pub fn plan(input: &PlanInput) -> Vec<Run> {
    let mut workloads = Vec::new();
    let has = |f: Family| input.families.contains(&f);
    let base =
        Workload { family: Family::Ping, clients: 1, size: 0, pipeline: 1, work_ms: 0, idle: 0 };
    if has(Family::Ping) && input.sizes.contains(&0) {
        for &clients in input.clients {
            workloads.push(Workload { clients, ..base.clone() });
        }
    }
    if has(Family::Echo) {
        for &size in input.sizes.iter().filter(|&&s| s > 0) {
            workloads.push(Workload {
                family: Family::Echo,
                clients: ECHO_CLIENTS,
                size,
                ..base.clone()
            });
        }
    }
    if has(Family::Pipeline) {
        for &pipeline in input.pipelines.iter().filter(|&&p| p > 1) {
            workloads.push(Workload {
                family: Family::Pipeline,
                clients: BASE_CLIENTS,
                pipeline,
                ..base.clone()
            });
        }
    }
    if has(Family::Slow) && input.work_ms > 0 {
        workloads.push(Workload {
            family: Family::Slow,
            clients: input.slow_clients,
            work_ms: input.work_ms,
            ..base.clone()
        });
    }
    if has(Family::Hold) && input.idle > 0 {
        workloads.push(Workload {
            family: Family::Hold,
            clients: HOLD_ACTIVE,
            idle: input.idle,
            ..base.clone()
        });
    }

    // The variants go with the ping load nearest BASE_CLIENTS.
    let variant_clients = input.clients.iter().copied().min_by_key(|&c| c.abs_diff(BASE_CLIENTS));

    let mut runs = Vec::new();
    for workload in &workloads {
        let mut targets: Vec<Target> = Vec::new();
        for &mode in input.modes {
            targets.push(Target::mode(mode));
            let sweep_base =
                workload.family == Family::Ping && Some(workload.clients) == variant_clients;
            if mode.is_selector() && sweep_base {
                for &n in input.workers.iter().filter(|&&n| n > 1) {
                    targets.push(Target::Mode { mode, workers: Some(n), edge: false });
                }
            }
            let edge_load = sweep_base || workload.family == Family::Pipeline;
            if mode == Mode::Selector(Backend::Epoll) && input.edge && edge_load {
                targets.push(Target::Mode { mode, workers: None, edge: true });
            }
        }
        targets.extend(input.peers.iter().cloned().map(Target::Peer));
        for target in targets {
            let skip = why_not(workload, &target, input);
            runs.push(Run { workload: workload.clone(), target, skip });
        }
    }
    runs
}

/// Why `target` cannot serve `workload` here, if it cannot.
fn why_not(workload: &Workload, target: &Target, input: &PlanInput) -> Option<String> {
    // Our side holds every connection, plus a few fds of its own.
    let needed = workload.connections() as u64 + 32;
    if needed > input.nofile {
        return Some(format!("n/a: RLIMIT_NOFILE {}", input.nofile));
    }
    match target {
        Target::Mode { mode, .. } => match mode {
            Mode::Blocking if workload.connections() > 1 => {
                Some("n/a: serves one client at a time".into())
            }
            // select(2) takes fds below FD_SETSIZE = 1024; the server's own
            // fds (listener, signal pipe, spare) come first.
            Mode::Selector(Backend::Select) if workload.connections() + 16 > 1024 => {
                Some("n/a: FD_SETSIZE".into())
            }
            // Idle connections would take the pool's threads and keep them.
            Mode::Pool if workload.idle > 0 => {
                Some(format!("n/a: the pool serves {} connections at a time", input.pool_size))
            }
            _ => None,
        },
        Target::Peer(_) if workload.work_ms > 0 => Some("n/a: peer has no --work-ms".into()),
        Target::Peer(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(modes: &'a [Mode], peers: &'a [Peer]) -> PlanInput<'a> {
        PlanInput {
            families: &[Family::Ping, Family::Echo, Family::Pipeline, Family::Slow, Family::Hold],
            modes,
            peers,
            clients: &[1, 100, 10_000],
            sizes: &[0, 1024],
            pipelines: &[1, 16],
            work_ms: 20,
            slow_clients: 100,
            idle: 10_000,
            workers: &[1, 2],
            edge: true,
            nofile: 20_000,
            pool_size: 6,
        }
    }

    #[test]
    fn select_and_blocking_say_why_they_sit_out() {
        let modes = [Mode::Selector(Backend::Select), Mode::Blocking];
        let runs = plan(&input(&modes, &[]));
        let find = |label: &str, name: &str| {
            runs.iter()
                .find(|r| r.workload.label() == label && r.target.to_string() == name)
                .map(|r| r.skip.clone())
        };
        assert_eq!(find("ping 1c", "select"), Some(None));
        assert_eq!(find("ping 10000c", "select"), Some(Some("n/a: FD_SETSIZE".into())));
        assert_eq!(find("ping 1c", "blocking"), Some(None));
        assert!(find("ping 100c", "blocking").unwrap().is_some());
        assert!(find("hold 10000+10c", "select").unwrap().is_some());
    }

    #[test]
    fn variants_sit_beside_the_base_load() {
        let modes = [Mode::Selector(Backend::Epoll), Mode::Threads];
        let peers = [parse_peer("c=/tmp/c {port}").unwrap()];
        let runs = plan(&input(&modes, &peers));
        let names: Vec<String> = runs
            .iter()
            .filter(|r| r.workload.label() == "ping 100c")
            .map(|r| r.target.to_string())
            .collect();
        assert_eq!(names, ["epoll", "epoll ×2", "epoll edge", "threads", "c (peer)"]);
        let slow_peer = runs
            .iter()
            .find(|r| r.workload.family == Family::Slow && matches!(r.target, Target::Peer(_)));
        assert!(slow_peer.unwrap().skip.is_some());
    }

    #[test]
    fn the_default_modes_leave_out_blocking_and_what_this_os_lacks() {
        let modes = default_modes();
        assert!(!modes.contains(&Mode::Blocking));
        assert!(modes.contains(&Mode::Hybrid));
        assert!(modes.iter().all(|m| m.is_available()));
        #[cfg(target_os = "linux")]
        assert!(!modes.contains(&Mode::Selector(Backend::Kqueue)));
    }

    #[test]
    fn peers_need_a_port_placeholder() {
        assert!(parse_peer("c=/tmp/c 8000").is_err());
        assert!(parse_peer("/tmp/c {port}").is_err());
        assert_eq!(parse_peer("c = /tmp/c {port}").unwrap().name, "c");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(bytes(1024.0), "1KiB");
        assert_eq!(bytes(65536.0), "64KiB");
        assert_eq!(bytes(111.0), "111B");
        assert_eq!(bytes(1536.0), "1.5KiB");
    }
}
