//! Two names the code's `#[cfg]`s use, decided here once:
//!
//! - `kqueue`: "this build has kqueue(2)". On macOS, iOS and the BSDs the
//!   kernel has it, so the code says `#[cfg(kqueue)]` instead of repeating six
//!   `target_os` names at every kqueue-only item.
//! - `libkqueue`: a Linux build that runs the kqueue backend anyway, linked
//!   against libkqueue, a user-space kqueue/kevent built on epoll(7). Asked
//!   for with `PINGPONG_LIBKQUEUE=DIR`, where `DIR` holds `libkqueue.a`
//!   (`make test-kqueue` builds one and sets it). `kqueue` is set as well, so
//!   the same backend code compiles; epoll stays the default, kqueue is one
//!   more backend to choose. Without the variable nothing changes.

use std::path::Path;

/// The environment variable that turns the libkqueue build on.
const SWITCH: &str = "PINGPONG_LIBKQUEUE";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kqueue)");
    println!("cargo::rustc-check-cfg=cfg(libkqueue)");
    // Naming what the output depends on replaces cargo's default (rerun
    // whenever any file of the package changes) with exactly these.
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={SWITCH}");

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let kqueue = ["macos", "ios", "freebsd", "openbsd", "netbsd", "dragonfly"];
    if kqueue.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=kqueue");
        return;
    }
    let Some(dir) = std::env::var_os(SWITCH).filter(|d| !d.is_empty()) else {
        return;
    };
    if os != "linux" {
        println!("cargo::warning={SWITCH} is for Linux builds; ignored for {os}");
        return;
    }
    // Absolute, so it names the same place wherever rustc and the linker run.
    let Ok(lib) = Path::new(&dir).join("libkqueue.a").canonicalize() else {
        panic!(
            "{SWITCH}={} has no libkqueue.a; `make test-kqueue` builds one",
            Path::new(&dir).display()
        );
    };
    let dir = lib.parent().expect("a file has a parent directory");
    println!("cargo::rerun-if-changed={}", lib.display());
    println!("cargo::rustc-cfg=kqueue");
    println!("cargo::rustc-cfg=libkqueue");
    // Static, so the test binaries and `pingpong` need no LD_LIBRARY_PATH.
    // Cargo hands the library to the lib target, and every binary that
    // links the lib gets it from there.
    println!("cargo::rustc-link-search=native={}", dir.display());
    println!("cargo::rustc-link-lib=static=kqueue");
}
