//! The course's multi-threaded servers: a thread per client, or a fixed pool.
//!
//! ```python
//! while True:                                   # threads
//!     conn, addr = s.accept()
//!     threading.Thread(target=serve, args=(conn,)).start()
//!
//! with ThreadPoolExecutor(max_workers=N) as pool:   # pool
//!     while True:
//!         conn, addr = s.accept()
//!         pool.submit(serve, conn)
//! ```
//!
//! Each client gets the blocking loop of [`super::blocking::serve_client`];
//! the kernel's scheduler, not a selector, decides who runs. A slow handler
//! then delays only its own client. The price is a thread (a stack, a kernel
//! task, context switches) per client, and in `pool` mode a hard cap: with N
//! workers busy, client N + 1 waits in the queue however idle the others are.
//!
//! Signals: SIGINT/SIGTERM are blocked in every thread and taken by one
//! watcher thread with `sigwait(3)`, so no worker's `read` is ever
//! interrupted. The watcher shuts down the read side of every connection
//! (each worker then sees EOF, writes what it owes and leaves) and wakes the
//! accept loop with a connection to itself.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::{SigSet, Signal};

use super::blocking::{self, serve_client};
use super::config::Config;
use super::faults;
use super::signals;
use super::summary::{Summary, Totals};
use super::syscalls::{Counted, Syscalls};
use crate::words;

/// Stack per client thread. The default is 2 MiB (8 MiB for the main
/// thread); a client's loop needs a few KiB, and small stacks are what let
/// threads mode hold thousands of connections.
const STACK_SIZE: usize = 64 * 1024;

/// What to try when a thread cannot be started at all (clone(2): EAGAIN).
const THREADS: Option<&str> = Some("the limit on threads: ulimit -u, /proc/sys/kernel/threads-max");

/// What every thread shares.
struct Shared {
    config: Config,
    totals: Totals,
    stopping: AtomicBool,
    /// The connections being served, so the watcher can end them.
    live: Mutex<HashMap<u64, Arc<TcpStream>>>,
    /// Each thread's system call counts, added in as it finishes.
    calls: Mutex<Syscalls>,
}

/// Serve with a thread per client (`workers = None`) or a pool of `workers`.
pub fn serve(
    listener: TcpListener,
    config: &Config,
    workers: Option<usize>,
) -> io::Result<Summary> {
    let shared = Arc::new(Shared {
        config: config.clone(),
        totals: Totals::default(),
        stopping: AtomicBool::new(false),
        live: Mutex::new(HashMap::new()),
        calls: Mutex::new(Syscalls::default()),
    });
    // The signals are blocked before any thread exists (`signals::hold`,
    // which `server::run` has done already): threads inherit the mask, so
    // only the watcher's sigwait ever receives them.
    signals::hold()?;
    let signals = signals::set();
    let wake_addr = listener.local_addr()?;
    let watcher = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("signals".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                // From inside: only here is the new thread's id known.
                let calls = Syscalls::new(shared.config.trace);
                calls.narrate_clone("the signal watcher: sigwait(SIGINT, SIGTERM)");
                watch_signals(signals, &shared, wake_addr);
            })
            .map_err(|e| words::failed("start the thread that waits for signals", e, THREADS))?
    };
    let mut calls = Syscalls::new(config.trace);
    calls.count(Counted::Clone, 1);

    let pool = workers.map(|n| ThreadPool::start(n, &shared)).transpose();
    let pool = pool.map_err(|e| words::failed("start the pool's workers", e, THREADS))?;
    calls.count(Counted::Clone, workers.unwrap_or(0) as u64);
    let mut handles = Vec::new();
    let mut next_id = 0u64;
    while !shared.stopping.load(SeqCst) {
        let (fd, addr) = match calls.accept(&listener, false) {
            Ok(accepted) => accepted,
            Err(e) => {
                // One connection's failure, not the server's (`faults.rs`);
                // out of fds or memory, a pause rather than a spin.
                blocking::after_failed_accept(&e);
                continue;
            }
        };
        if shared.stopping.load(SeqCst) {
            break; // the watcher's wake-up call, or a client too late
        }
        next_id += 1;
        let id = next_id;
        let busy = shared.live.lock().map_or(0, |live| live.len()) >= config.max_clients;
        if busy {
            refuse(fd, &addr, &mut calls);
            continue;
        }
        let stream = Arc::new(TcpStream::from(fd));
        if let Ok(mut live) = shared.live.lock() {
            live.insert(id, Arc::clone(&stream));
        }
        if shared.stopping.load(SeqCst) {
            // The watcher may have ended the others just before this insert.
            let _ = stream.shutdown(Shutdown::Read);
        }
        Totals::add(&shared.totals.connections, 1);
        match &pool {
            Some(pool) => pool.submit(Accepted { id, addr, stream }),
            None => {
                let (theirs, job) = (Arc::clone(&shared), Accepted { id, addr, stream });
                let spawned = thread::Builder::new().stack_size(STACK_SIZE).spawn(move || {
                    let calls = Syscalls::new(theirs.config.trace);
                    calls.narrate_clone(&format!("a new thread for client {}", job.addr));
                    serve_one(&theirs, job, calls);
                });
                match spawned {
                    Ok(handle) => {
                        calls.count(Counted::Clone, 1);
                        handles.push(handle);
                    }
                    // No thread (`faults.rs`: clone3's EAGAIN is a limit,
                    // not "not now"). The thread's closure, and the stream in
                    // it, are dropped; the last reference is in `live`. The
                    // client is told, as over --max-clients, and closed.
                    Err(e) => {
                        faults::dropped(&addr, &e);
                        let left = shared.live.lock().ok().and_then(|mut live| live.remove(&id));
                        if let Some(stream) = left.and_then(|s| Arc::try_unwrap(s).ok()) {
                            refuse(OwnedFd::from(stream), &addr, &mut calls);
                        }
                    }
                }
                // Reap finished threads now and then so the list stays short.
                if handles.len() > 1024 {
                    handles.retain(|h| !h.is_finished());
                }
            }
        }
    }
    drop(listener); // the backlog is refused from here on
    if let Some(pool) = pool {
        pool.finish();
    }
    for handle in handles {
        let _ = handle.join();
    }
    let _ = watcher.join();
    if let Ok(shared_calls) = shared.calls.lock() {
        calls.absorb(&shared_calls);
    }
    Ok(Summary { totals: shared.totals.snapshot(), syscalls: calls.named(), wakeups: None })
}

/// A connection handed to a thread.
struct Accepted {
    id: u64,
    addr: SocketAddr,
    stream: Arc<TcpStream>,
}

/// One client, then forget it and close it.
fn serve_one(shared: &Shared, job: Accepted, mut calls: Syscalls) {
    let outcome =
        serve_client(&job.stream, &job.addr, &shared.config, &shared.totals, &mut calls, &|| false);
    let why = match outcome {
        Ok(()) => format!("{}: client done", job.addr),
        Err(e) => {
            faults::dropped(&job.addr, &e);
            format!("{}: {}", job.addr, words::cause(&e))
        }
    };
    if let Ok(mut live) = shared.live.lock() {
        live.remove(&job.id);
    }
    // The last reference closes the socket (the watcher may hold one briefly).
    if let Ok(stream) = Arc::try_unwrap(job.stream) {
        calls.close(OwnedFd::from(stream), &why);
    }
    if let Ok(mut shared_calls) = shared.calls.lock() {
        shared_calls.absorb(&calls);
    }
}

/// Over `--max-clients`: say so and close.
fn refuse(fd: OwnedFd, addr: &SocketAddr, calls: &mut Syscalls) {
    let _ = calls.send(fd.as_raw_fd(), crate::protocol::SERVER_BUSY, addr);
    let _ = calls.shutdown_write(fd.as_raw_fd(), "over --max-clients: refused");
    calls.close(fd, &format!("{addr}: server busy"));
}

/// Wait for SIGINT/SIGTERM, then end everything gently; on SIGUSR1 print the
/// counters (`--stats`).
fn watch_signals(signals: SigSet, shared: &Shared, wake_addr: SocketAddr) {
    loop {
        match signals.wait() {
            // The counters so far. System calls are added up per connection
            // as it ends, so those of connections still open are not in yet.
            Ok(Signal::SIGUSR1) => {
                let syscalls = shared.calls.lock().map(|c| c.named()).unwrap_or_default();
                let summary = Summary { totals: shared.totals.snapshot(), syscalls, wakeups: None };
                eprintln!("{}", summary.stats_line());
            }
            Ok(_) => break,
            Err(_) => return,
        }
    }
    shared.stopping.store(true, SeqCst);
    // Each worker sees EOF on its next read, writes what it owes, leaves.
    if let Ok(live) = shared.live.lock() {
        for stream in live.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
    // The accept loop is blocked in accept(): give it a connection to return.
    let _ = TcpStream::connect(wake_target(wake_addr));
}

/// Where to connect to reach our own listener (0.0.0.0 means "this host").
fn wake_target(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// A fixed set of worker threads taking connections from a queue: the
/// course's `ThreadPoolExecutor(max_workers=N)`.
struct ThreadPool {
    queue: mpsc::Sender<Accepted>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl ThreadPool {
    fn start(n: usize, shared: &Arc<Shared>) -> io::Result<ThreadPool> {
        let (queue, jobs) = mpsc::channel::<Accepted>();
        let jobs = Arc::new(Mutex::new(jobs));
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (jobs, shared) = (Arc::clone(&jobs), Arc::clone(shared));
            let worker = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    let calls = Syscalls::new(shared.config.trace);
                    calls.narrate_clone(&format!("worker {i} of the pool, before any client"));
                    loop {
                        // Hold the lock only to take the next connection.
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        serve_one(&shared, job, Syscalls::new(shared.config.trace));
                    }
                })?;
            workers.push(worker);
        }
        Ok(ThreadPool { queue, workers })
    }

    /// Queue a connection. Like Python's executor, the queue is unbounded:
    /// with every worker busy, a new client waits here, connected but unserved.
    fn submit(&self, job: Accepted) {
        let _ = self.queue.send(job);
    }

    /// Close the queue and wait for the workers to finish what they hold.
    fn finish(self) {
        drop(self.queue);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}
