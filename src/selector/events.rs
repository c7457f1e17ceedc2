//! What a selector reports: [`Events`], with Python's names and bits, and
//! the timeout conversion the millisecond-based waits share.

use std::fmt;
use std::time::Duration;

/// A set of readiness events, with Python's names and bits.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Events(u8);

/// Ready to read: data, a pending connection, the peer's EOF, or an error.
pub const EVENT_READ: Events = Events(1);
/// Ready to write: room in the send buffer, or an error.
pub const EVENT_WRITE: Events = Events(2);

impl Events {
    /// No events: registered but parked.
    pub const NONE: Events = Events(0);

    /// Python's integer value: 1 = READ, 2 = WRITE, 3 = both.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Whether every event in `other` is also in `self`.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether no event is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// `EVENT_READ` is set.
    pub fn is_readable(self) -> bool {
        self.contains(EVENT_READ)
    }
    /// `EVENT_WRITE` is set.
    pub fn is_writable(self) -> bool {
        self.contains(EVENT_WRITE)
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}

impl std::ops::Sub for Events {
    type Output = Events;
    /// The events of `self` that are not in `rhs`.
    fn sub(self, rhs: Events) -> Events {
        Events(self.0 & !rhs.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0 => "NONE",
            1 => "READ",
            2 => "WRITE",
            _ => "READ|WRITE",
        })
    }
}

/// A wait timeout in whole milliseconds for epoll_wait and poll: -1 for
/// "forever", and anything above zero rounded *up* so a 0.3 ms timeout
/// sleeps 1 ms instead of spinning with 0.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(300))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::from_micros(5001))), 6);
    }

    #[test]
    fn events_read_like_python() {
        assert_eq!(EVENT_READ.bits(), 1);
        assert_eq!(EVENT_WRITE.bits(), 2);
        assert_eq!(format!("{:?}", EVENT_READ | EVENT_WRITE), "READ|WRITE");
        assert_eq!((EVENT_READ | EVENT_WRITE) - EVENT_READ, EVENT_WRITE);
    }
}
