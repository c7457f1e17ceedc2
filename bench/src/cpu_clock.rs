//! The CPU clock of a process: how much CPU time it has used, exactly.
//!
//! Linux gives every process a clock that runs only while one of its threads
//! is on a CPU. `clock_getcpuclockid(pid)` names the clock of any process we
//! may look at, and `clock_gettime` reads it like any other clock
//! (`man 3 clock_getcpuclockid`). It counts every thread, those that have
//! already exited included, in nanoseconds: `/proc/PID/stat` only has ticks
//! of 10 ms, too coarse for the half-second windows of `--quick`.
//!
//! nix wraps both calls safely (the out-parameters become return values), so
//! this funnel needs no `unsafe` of its own: the whole benchmark has none.

use std::io;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

/// The CPU time process `pid` has used so far, every thread, in nanoseconds.
pub fn process_cpu_ns(pid: i32) -> io::Result<u64> {
    let clock = ClockId::pid_cpu_clock_id(Pid::from_raw(pid))?;
    let used = Duration::from(clock_gettime(clock)?);
    u64::try_from(used.as_nanos()).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_clock_runs() {
        let me = std::process::id() as i32;
        let before = process_cpu_ns(me).unwrap();
        // Burn a little CPU: the clock must move forward, never back.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(process_cpu_ns(me).unwrap() > before);
    }
}
