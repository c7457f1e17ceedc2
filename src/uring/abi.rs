//! The kernel's io_uring interface, declared by hand from its uapi header
//! (`include/uapi/linux/io_uring.h`), because the `libc` crate has none of it.
//!
//! Only what pingpong uses is here. Every struct is `#[repr(C)]`, laid out
//! field for field as in C, and checked at compile time against the size the
//! kernel expects: a wrong field would otherwise shift every later one and
//! the kernel would read garbage without a word.

use std::mem::size_of;

/// `struct io_sqring_offsets`: where each field of the submission ring sits
/// in the shared mapping, in bytes from its start (io_uring_setup(2)).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SqOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub flags: u32,
    pub dropped: u32,
    pub array: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `struct io_cqring_offsets`: the same for the completion ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CqOffsets {
    pub head: u32,
    pub tail: u32,
    pub ring_mask: u32,
    pub ring_entries: u32,
    pub overflow: u32,
    pub cqes: u32,
    pub flags: u32,
    pub resv1: u32,
    pub user_addr: u64,
}

/// `struct io_uring_params`: what we ask of io_uring_setup(2) (`flags`,
/// `cq_entries`), and what the kernel answers (sizes, `features`, offsets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Params {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub flags: u32,
    pub sq_thread_cpu: u32,
    pub sq_thread_idle: u32,
    pub features: u32,
    pub wq_fd: u32,
    pub resv: [u32; 3],
    pub sq_off: SqOffsets,
    pub cq_off: CqOffsets,
}

/// `struct io_uring_sqe`: one request. The C struct is made of unions; each
/// field here is named after the member pingpong uses (the comment names
/// the others that share its bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    pub opcode: u8,
    /// `IOSQE_*`: per-request flags (buffer select, ...).
    pub flags: u8,
    /// For accept and recv: `IORING_ACCEPT_MULTISHOT`, `IORING_RECV_MULTISHOT`.
    pub ioprio: u16,
    pub fd: i32,
    /// `off` / `addr2`.
    pub off: u64,
    /// `addr`: the buffer, or the `user_data` a cancel looks for.
    pub addr: u64,
    pub len: u32,
    /// `msg_flags` / `accept_flags` / `poll32_events` / `cancel_flags` ...
    pub op_flags: u32,
    /// Ours: handed back untouched in the completion.
    pub user_data: u64,
    /// `buf_index` / `buf_group`: the provided-buffer group to pick from.
    pub buf_group: u16,
    pub personality: u16,
    /// `splice_fd_in` / `file_index` / `optlen`.
    pub splice_fd_in: u32,
    pub addr3: u64,
    pub pad2: u64,
}

/// `struct io_uring_cqe`: one completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// The `user_data` of the request this completes.
    pub user_data: u64,
    /// What the system call would have returned, or `-errno`.
    pub res: i32,
    /// `IORING_CQE_F_*`; with `F_BUFFER`, the buffer id in the top 16 bits.
    pub flags: u32,
}

/// `struct io_uring_getevents_arg`: io_uring_enter(2)'s argument with
/// `IORING_ENTER_EXT_ARG`, which carries a timeout for the wait.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GeteventsArg {
    pub sigmask: u64,
    pub sigmask_sz: u32,
    pub min_wait_usec: u32,
    /// A pointer to a `struct __kernel_timespec`.
    pub ts: u64,
}

/// `struct __kernel_timespec`: 64-bit seconds on every architecture.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelTimespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `struct io_uring_buf`: one entry of a provided buffer ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub bid: u16,
    /// In entry 0 only, these two bytes are the ring's tail (the C header's
    /// union of `struct io_uring_buf_ring`).
    pub resv: u16,
}

/// `struct io_uring_buf_reg`: io_uring_register(2)'s argument for
/// `IORING_REGISTER_PBUF_RING`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BufReg {
    pub ring_addr: u64,
    pub ring_entries: u32,
    pub bgid: u16,
    pub flags: u16,
    pub resv: [u64; 3],
}

// The kernel's sizes: a mismatch is a compile error, not a corrupt ring.
const _: () = assert!(size_of::<SqOffsets>() == 40);
const _: () = assert!(size_of::<CqOffsets>() == 40);
const _: () = assert!(size_of::<Params>() == 120);
const _: () = assert!(size_of::<Sqe>() == 64);
const _: () = assert!(size_of::<Cqe>() == 16);
const _: () = assert!(size_of::<GeteventsArg>() == 24);
const _: () = assert!(size_of::<KernelTimespec>() == 16);
const _: () = assert!(size_of::<Buf>() == 16);
const _: () = assert!(size_of::<BufReg>() == 40);

// io_uring_setup(2) flags.
pub const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
pub const IORING_SETUP_CQSIZE: u32 = 1 << 3;
pub const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
pub const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
pub const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;

// Features the kernel reports in `Params::features`.
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
pub const IORING_FEAT_NODROP: u32 = 1 << 1;
pub const IORING_FEAT_EXT_ARG: u32 = 1 << 8;

// mmap(2) offsets of the rings and the SQE array.
pub const IORING_OFF_SQ_RING: i64 = 0;
pub const IORING_OFF_SQES: i64 = 0x1000_0000;

// io_uring_enter(2) flags.
pub const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
pub const IORING_ENTER_EXT_ARG: u32 = 1 << 3;

// The SQ ring's `flags` word, written by the kernel.
pub const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;

// io_uring_register(2) opcodes.
pub const IORING_REGISTER_PBUF_RING: u32 = 22;
pub const IORING_UNREGISTER_PBUF_RING: u32 = 23;

// Opcodes (`enum io_uring_op`).
pub const IORING_OP_NOP: u8 = 0;
pub const IORING_OP_POLL_ADD: u8 = 6;
pub const IORING_OP_ACCEPT: u8 = 13;
pub const IORING_OP_ASYNC_CANCEL: u8 = 14;
pub const IORING_OP_SEND: u8 = 26;
pub const IORING_OP_RECV: u8 = 27;

// SQE flags.
pub const IOSQE_BUFFER_SELECT: u8 = 1 << 5;

// `ioprio` of accept and recv, `len` of poll.
pub const IORING_ACCEPT_MULTISHOT: u16 = 1 << 0;
pub const IORING_RECV_MULTISHOT: u16 = 1 << 1;
pub const IORING_POLL_ADD_MULTI: u32 = 1 << 0;

// CQE flags.
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_F_MORE: u32 = 1 << 1;
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;
