//! Guard: several event loops on one port (`--workers N` in a selector mode).
//!
//! One loop uses one core. To use N, run N loops, one per thread, each with
//! its own listener bound to the same port with `SO_REUSEPORT`: the kernel
//! spreads new connections between the listeners, so no two loops ever wake
//! for the same connection (the thundering herd a shared listener would
//! cause), and the loops share nothing at all.

use std::io;
use std::net::{SocketAddr, TcpListener};

use super::config::Config;
use super::summary::Summary;
use super::syscalls::Syscalls;
use crate::words;

/// Run `serve_one` on `listener` and on `loops - 1` more listeners bound to
/// the same address (each opened by `listen_again`, with `SO_REUSEPORT`),
/// each on a thread of its own; add up their summaries.
pub fn serve<L, F>(
    listener: TcpListener,
    config: &Config,
    listen_again: L,
    serve_one: F,
) -> io::Result<Summary>
where
    L: Fn(SocketAddr) -> io::Result<TcpListener>,
    F: Fn(TcpListener) -> io::Result<Summary> + Clone + Send + 'static,
{
    let loops = config.event_loops();
    let addr = listener.local_addr()?;
    let mut others = Vec::new();
    for n in 1..loops {
        let listener = listen_again(addr)?;
        let (serve_one, started) = (serve_one.clone(), Syscalls::new(config.trace));
        others.push(std::thread::spawn(move || {
            // strace shows this thread's clone3 in the parent; the id it
            // returns is known for certain only here, in the thread itself.
            started.narrate_clone(&format!("event loop {n}: its own listener, same port"));
            serve_one(listener)
        }));
    }
    let mut summary = serve_one(listener)?;
    if !others.is_empty() {
        summary.syscalls.push(("clone3", others.len() as u64));
    }
    for other in others {
        match other.join() {
            Ok(Ok(theirs)) => summary.absorb(&theirs),
            Ok(Err(e)) => eprintln!("event loop stopped: {}", words::cause(&e)),
            Err(_) => eprintln!("an event loop panicked"),
        }
    }
    Ok(summary)
}
