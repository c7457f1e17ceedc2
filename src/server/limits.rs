//! Guard: limits, so that no client can take more than its share.
//!
//! - **`--max-clients`**: the loop serves at most this many clients at once.
//!   One more is accepted only to be told `error: server busy` and closed,
//!   rather than left waiting in the listen queue without a word.
//! - **`--max-pending`, backpressure**: a client that sends requests but
//!   never reads the replies would make its output buffer grow without end.
//!   Above the limit, the loop stops reading that client (it drops
//!   EVENT_READ), so its requests wait in the kernel, TCP's flow control
//!   fills its window, and the client itself is slowed down. Reading resumes
//!   below half the limit: the gap (hysteresis) keeps a client near the limit
//!   from flipping the registration on every write.

use std::os::fd::RawFd;

use super::config::Config;
use crate::bugs::Bug;

/// The limits, the clients served, and which are paused by backpressure.
pub struct Limits {
    max_clients: usize,
    clients: usize,
    max_pending: usize,
    /// Indexed by fd: reading from this client is paused.
    paused: Vec<bool>,
}

impl Limits {
    /// The limits of `--max-clients` and `--max-pending`.
    pub fn new(config: &Config) -> Limits {
        Limits {
            max_clients: config.max_clients,
            clients: 0,
            max_pending: config.max_pending,
            paused: Vec::new(),
        }
    }

    /// A new client is in: whether it may be served (else it is to be told
    /// `error: server busy`). Either way it counts until [`Limits::forget`].
    pub fn admit(&mut self) -> bool {
        self.clients += 1;
        self.clients <= self.max_clients
    }

    /// The clients in, from [`Limits::admit`] to [`Limits::forget`].
    pub fn clients(&self) -> usize {
        self.clients
    }

    /// The client on `fd` has `pending` reply bytes not yet taken by the
    /// kernel: pause it above the limit, resume it at half. Returns whether
    /// it may be read from.
    pub fn may_read(&mut self, fd: RawFd, pending: usize) -> bool {
        if Bug::NoBackpressure.is_on() {
            return true; // the bug (`--bug no-backpressure`): read, whatever is owed
        }
        let Ok(index) = usize::try_from(fd) else {
            return true;
        };
        if index >= self.paused.len() {
            self.paused.resize(index + 1, false);
        }
        let paused = &mut self.paused[index];
        if pending > self.max_pending {
            *paused = true;
        } else if pending <= self.max_pending / 2 {
            *paused = false;
        }
        !*paused
    }

    /// The client on `fd` is gone.
    pub fn forget(&mut self, fd: RawFd) {
        self.clients -= 1;
        if let Some(paused) = usize::try_from(fd).ok().and_then(|i| self.paused.get_mut(i)) {
            *paused = false;
        }
    }
}
