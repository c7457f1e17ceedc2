//! What a person reads: counts with the right plural, and errors in words.
//!
//! Every error `pingpong` prints is one line of the same shape,
//!
//! ```text
//! pingpong serve: cannot listen on 127.0.0.1:8000: address already in use (another server? --port 0 picks a free port)
//! ```
//!
//! what was attempted and where ([`Failure`]), the cause in words
//! ([`cause`]), and a hint where one helps. The kernel's own text for an
//! errno is kept (it is what `man 3 strerror` and strace show, so it can be
//! looked up), without Rust's `(os error 98)` suffix, which tells a person
//! nothing more.

use std::error::Error;
use std::fmt;
use std::io;

/// `1 connection`, `2 connections`: the count and the word that agrees with it.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The cause of `e` in words, ready to follow a colon: `address already in
/// use`, `connection refused`. An error that already says what failed (a
/// [`Failure`]) is shown as it is.
pub fn cause(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => lower_first(nix::errno::Errno::from_raw(code).desc()),
        None => e.to_string(),
    }
}

/// `Address already in use` → `address already in use`, to sit inside a
/// sentence; an acronym (`IO error`) keeps its capitals.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if second.is_lowercase() => {
            first.to_lowercase().chain(text[first.len_utf8()..].chars()).collect()
        }
        _ => text.to_string(),
    }
}

/// Something a person asked for that could not be done: printed as
/// `cannot ATTEMPT: CAUSE (HINT)`.
#[derive(Debug)]
pub struct Failure {
    /// What was attempted, and on what: `listen on 127.0.0.1:8000`.
    attempt: String,
    /// Why not, in words.
    cause: String,
    /// What to try, if there is something to say.
    hint: Option<String>,
}

impl Failure {
    /// `cannot ATTEMPT: CAUSE`.
    pub fn new(attempt: impl Into<String>, cause: impl Into<String>) -> Failure {
        Failure { attempt: attempt.into(), cause: cause.into(), hint: None }
    }

    /// Add `(HINT)` at the end, if there is one.
    pub fn hint(mut self, hint: Option<impl Into<String>>) -> Failure {
        self.hint = hint.map(Into::into);
        self
    }

    /// As an `io::Error` of `kind`, so it travels through `io::Result` like
    /// any other error and prints as this line.
    pub fn into_io(self, kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, self)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.attempt, self.cause)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl Error for Failure {}

/// `e`, said as `cannot ATTEMPT: CAUSE (HINT)`, keeping its kind. An error
/// that already is a [`Failure`] is left alone: it knows best what failed.
pub fn failed(attempt: impl Into<String>, e: io::Error, hint: Option<&str>) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Failure>()) {
        return e;
    }
    Failure::new(attempt, cause(&e)).hint(hint).into_io(e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_word() {
        assert_eq!(plural(1, "connection", "connections"), "1 connection");
        assert_eq!(plural(0, "connection", "connections"), "0 connections");
        assert_eq!(plural(2, "reply", "replies"), "2 replies");
    }

    #[test]
    fn an_errno_is_said_in_words_without_its_number() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(cause(&e), "connection refused");
        assert_eq!(lower_first("IO error"), "IO error");
    }

    #[test]
    fn a_failure_names_the_attempt_the_cause_and_the_hint() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        let e = failed("listen on 127.0.0.1:8000", e, Some("another server?"));
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let said = "cannot listen on 127.0.0.1:8000: address already in use (another server?)";
        assert_eq!(e.to_string(), said);
        // Said once: wrapping again keeps the first, most precise, words.
        assert_eq!(failed("serve", e, None).to_string(), said);
    }
}
