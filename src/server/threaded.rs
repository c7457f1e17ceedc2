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
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::{SigSet, Signal};

use super::{blocking::serve_client, Config, Summary, Totals};
use crate::net;

/// Stack per client thread. The default is 2 MiB (8 MiB for the main
/// thread); a client's loop needs a few KiB, and small stacks are what let
/// threads mode hold thousands of connections.
const STACK_SIZE: usize = 64 * 1024;

/// What every thread shares.
struct Shared {
    config: Config,
    totals: Totals,
    stopping: AtomicBool,
    /// The connections being served, so the watcher can end them.
    live: Mutex<HashMap<u64, Arc<TcpStream>>>,
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
    });
    // Block the signals here, before any thread exists: threads inherit the
    // mask, so only the watcher's sigwait ever receives them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let wake_addr = listener.local_addr()?;
    let watcher = {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("signals".into())
            .stack_size(STACK_SIZE)
            .spawn(move || watch_signals(signals, &shared, wake_addr))?
    };

    let pool = workers.map(|n| Pool::start(n, &shared)).transpose()?;
    let mut handles = Vec::new();
    let mut next_id = 0u64;
    while !shared.stopping.load(SeqCst) {
        let (stream, _addr) = match net::accept_blocking(&listener) {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                // Out of fds: wait for a client to leave rather than spin.
                thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e),
        };
        if shared.stopping.load(SeqCst) {
            break; // the watcher's wake-up call, or a client too late
        }
        next_id += 1;
        let id = next_id;
        let busy = shared.live.lock().map_or(0, |live| live.len()) >= config.max_clients;
        if busy {
            refuse(stream);
            continue;
        }
        let stream = Arc::new(stream);
        if let Ok(mut live) = shared.live.lock() {
            live.insert(id, Arc::clone(&stream));
        }
        if shared.stopping.load(SeqCst) {
            // The watcher may have ended the others just before this insert.
            let _ = stream.shutdown(Shutdown::Read);
        }
        Totals::add(&shared.totals.connections, 1);
        match &pool {
            Some(pool) => pool.submit(id, stream),
            None => {
                let shared = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .stack_size(STACK_SIZE)
                    .spawn(move || serve_one(&shared, id, &stream));
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(e) => eprintln!("cannot start a thread: {e}"),
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
    let totals = shared.totals.snapshot();
    Ok(Summary {
        totals,
        syscalls: Vec::new(),
    })
}

/// One client, then forget it.
fn serve_one(shared: &Shared, id: u64, stream: &TcpStream) {
    if let Err(e) = serve_client(stream, &shared.config, &shared.totals, &|| false) {
        if shared.config.stats {
            eprintln!("client dropped: {e}");
        }
    }
    if let Ok(mut live) = shared.live.lock() {
        live.remove(&id);
    }
}

/// Over `--max-clients`: say so and close.
fn refuse(stream: TcpStream) {
    let mut stream = stream;
    let _ = stream.write_all(b"error: server busy\n");
    let _ = stream.shutdown(Shutdown::Write);
}

/// Wait for SIGINT/SIGTERM, then end everything gently.
fn watch_signals(signals: SigSet, shared: &Shared, wake_addr: SocketAddr) {
    if signals.wait().is_err() {
        return;
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
struct Pool {
    queue: mpsc::Sender<(u64, Arc<TcpStream>)>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    fn start(n: usize, shared: &Arc<Shared>) -> io::Result<Pool> {
        let (queue, jobs) = mpsc::channel::<(u64, Arc<TcpStream>)>();
        let jobs = Arc::new(Mutex::new(jobs));
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (jobs, shared) = (Arc::clone(&jobs), Arc::clone(shared));
            let worker = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(STACK_SIZE)
                .spawn(move || loop {
                    // Hold the lock only to take the next connection.
                    let job = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(_) => return,
                    };
                    let Ok((id, stream)) = job else { return };
                    serve_one(&shared, id, &stream);
                })?;
            workers.push(worker);
        }
        Ok(Pool { queue, workers })
    }

    /// Queue a connection. Like Python's executor, the queue is unbounded:
    /// with every worker busy, a new client waits here, connected but unserved.
    fn submit(&self, id: u64, stream: Arc<TcpStream>) {
        let _ = self.queue.send((id, stream));
    }

    /// Close the queue and wait for the workers to finish what they hold.
    fn finish(self) {
        drop(self.queue);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}
