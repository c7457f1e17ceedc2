//! One name for "this OS has kqueue(2)": macOS, iOS and the BSDs. The code
//! then says `#[cfg(kqueue)]` instead of repeating six `target_os` names at
//! every kqueue-only item.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let kqueue = ["macos", "ios", "freebsd", "openbsd", "netbsd", "dragonfly"];
    if kqueue.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=kqueue");
    }
}
