//! The guards of the event loop: what keeps one server alive and fair when
//! clients misbehave. The course's loop (`event_loop.rs`) would work without
//! them on a quiet network; each is a lesson of its own, in a file of its
//! own, and the loop calls it at one named point (`self.guards.NAME`):
//!
//! | guard       | file          | what goes wrong without it                        | called in |
//! |-------------|---------------|---------------------------------------------------|-----------|
//! | `spare`     | `spare_fd.rs` | out of fds, the listener spins at 100% CPU        | `accept`, `close` |
//! | `limits`    | `limits.rs`   | too many clients; a client that never reads grows our memory | `accept`, `update`, `close` |
//! | `deadlines` | `deadlines.rs`| silent clients hold fds forever; a lingering close never ends | the wait, `service_*`, `update`, `close` |
//! | `signals`   | `signals.rs`  | Ctrl-C kills the server mid-reply                  | `on_signal` |
//!
//! Several loops on one port (`--workers N`) wrap the whole loop instead:
//! `reuseport.rs`.

use std::io;

use super::config::Config;
use super::deadlines::Deadlines;
use super::limits::Limits;
use super::signals::Signals;
use super::spare_fd::SpareFd;

/// One of each guard, for one event loop.
/// (Fields drop in this order: the signal pipe is closed before the spare.)
pub struct Guards {
    pub signals: Signals,
    pub spare: SpareFd,
    pub limits: Limits,
    pub deadlines: Deadlines,
}

impl Guards {
    /// The guards `config` asks for; the signal handlers are installed.
    pub fn new(config: &Config) -> io::Result<Guards> {
        // The signal pipe first, then the spare: their fds come in that order.
        let signals = Signals::install()?;
        let spare = SpareFd::new();
        Ok(Guards {
            signals,
            spare,
            limits: Limits::new(config),
            deadlines: Deadlines::new(config.idle_timeout),
        })
    }
}
