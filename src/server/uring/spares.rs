//! Reply buffers the server keeps between sends, instead of freeing them.
//!
//! A send request names its bytes until it completes, so each client owns
//! the buffer of its send in flight. The handler writes a reply into a
//! buffer taken from here, and that buffer *becomes* the client's send
//! buffer (no copy); the one it had goes back here. A large one the client
//! no longer needs comes back too, once its send is done.
//!
//! Why not just free it? Freeing 64 KiB and allocating it again a moment
//! later is not free: malloc gives the pages back to the kernel (`brk`
//! shrinks the heap), and the next reply faults each 4 KiB page in again,
//! zero-filled. Measured on the 64 KiB echo load, that was about ten page
//! faults and a `brk` per round trip, more CPU than the send itself.
//!
//! The pool is bounded, so what it holds while idle stays small: at most
//! [`KEEP`] bytes in all, none larger than [`LARGEST`].

/// The most bytes of capacity the pool holds.
const KEEP: usize = 4 << 20;
/// A buffer larger than this is freed: a rare huge reply does not pin memory.
const LARGEST: usize = 1 << 20;

#[derive(Default)]
pub struct Spares {
    bufs: Vec<Vec<u8>>,
    /// The capacity of `bufs`, summed.
    bytes: usize,
}

impl Spares {
    /// An empty buffer for the next reply: a kept one, or a new one.
    pub fn take(&mut self) -> Vec<u8> {
        let buf = self.bufs.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }

    /// Keep `buf`'s memory for a later reply, if the pool has room for it.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let size = buf.capacity();
        if size == 0 || size > LARGEST || self.bytes + size > KEEP {
            return; // dropped: freed
        }
        buf.clear();
        self.bytes += size;
        self.bufs.push(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_back_what_it_kept_and_stays_bounded() {
        let mut spares = Spares::default();
        spares.give(Vec::with_capacity(64 << 10));
        let buf = spares.take();
        assert!(buf.is_empty() && buf.capacity() >= 64 << 10, "kept memory comes back, empty");
        assert_eq!(spares.take().capacity(), 0, "an empty pool makes a new buffer");
        spares.give(Vec::with_capacity(LARGEST + 1));
        for _ in 0..KEEP / LARGEST + 1 {
            spares.give(Vec::with_capacity(LARGEST));
        }
        assert!(spares.bytes <= KEEP && spares.bufs.iter().all(|b| b.capacity() <= LARGEST));
    }
}
