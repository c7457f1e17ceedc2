#!/usr/bin/env bash
# Type-check the whole crate (library, binaries and tests) and the check and
# watch tools for macOS, the BSDs and Linux on aarch64 (no epoll_wait, poll
# or select system calls there), from x86-64 Linux, so the kqueue backend and
# every other #[cfg] path keep compiling on systems nobody here runs. (The
# benchmark is Linux's only: it reads /proc.)
#
# The std of those targets is not fetched prebuilt; it is built from source:
# `-Zbuild-std` compiles std for each target from rustup's rust-src component
# (added when missing), or, where rustup cannot have it, from Debian's
# rustc-web, cargo-web and rust-web-src packages (a rustc under /usr/bin with
# std's source under /usr/lib/rustlib/src). -Z flags are nightly-only;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Only `cargo check`
# runs (no linking), so no macOS SDK or BSD sysroot is needed. The tests are
# type-checked too (`--tests`: the unit tests and tests/*.rs), so a student's
# `make test` on a Mac or a BSD at least compiles; for that, build-std also
# builds `test`, the harness every test binary links, and `proc_macro`.
#
# Usage: scripts/check-platforms.sh [TARGET...]   (default: the six below)
# Env:   XCHECK_TARGET_DIR  build directory (default /tmp/pingpong-xcheck),
#                           kept apart from target/ so a normal build is
#                           never rebuilt by this, nor blocked by it.
#        XCHECK_CLIPPY=1    run `cargo clippy -- -D warnings` instead of
#                           `cargo check`. clippy on Linux never sees
#                           kqueue.rs (it is cfg'd out there), so this is
#                           the only lint it gets (rustup's clippy, or
#                           rust-web-clippy, Debian's for rustc-web).
# Cost: the first run builds std and the test harness once per target (about
# a minute each); later runs only re-check pingpong and its tests (a few
# seconds per target).
# Exit status: 0 when every target passes, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(
  x86_64-unknown-freebsd
  aarch64-apple-darwin
  x86_64-apple-darwin
  x86_64-unknown-netbsd
  x86_64-unknown-openbsd
  aarch64-unknown-linux-gnu
)
target_dir=${XCHECK_TARGET_DIR:-/tmp/pingpong-xcheck}
std_src=/usr/lib/rustlib/src/rust/library

# 1. The toolchain. rustup's own (the one that builds the project), with
# std's source: the rust-src component, when it is installed or rustup can
# add it. Else Debian's rustc-web with its rust-web-src, installed once
# (Debian 12's is 1.85, older than this crate needs: a fallback only).
rustc=/usr/bin/rustc cargo=/usr/bin/cargo search_path=/usr/bin:$PATH
if command -v rustup >/dev/null &&
  { rustup component list --installed 2>/dev/null | grep -q '^rust-src' ||
    rustup component add rust-src >/dev/null 2>&1; }; then
  rustc=$(rustup which rustc) cargo=$(rustup which cargo) search_path=$PATH
  echo "toolchain: $("$rustc" --version), rustup's, with its rust-src"
else
  std_src=/usr/lib/rustlib/src/rust/library
  packages=()
  if [ ! -x /usr/bin/rustc ] || [ ! -d "$std_src/std" ]; then
    packages+=(rustc-web cargo-web rust-web-src)
  fi
  if [ "${XCHECK_CLIPPY:-0}" = 1 ] && [ ! -x /usr/bin/cargo-clippy ]; then
    packages+=(rust-web-clippy)
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    echo "installing ${packages[*]}..."
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    if ! { $sudo apt-get update -q && $sudo apt-get install -y -q "${packages[@]}"; } >/dev/null; then
      echo "could not install the packages; run as root on Debian/Ubuntu" >&2
      exit 1
    fi
  fi
  # Debian's own cargo matches its rustc and std source, so it is preferred.
  # But Cargo.lock is written by whatever newer cargo the team uses:
  # lockfile version 4 needs cargo 1.78 or later, and an older cargo-web
  # stops with "lock file version 4 requires `-Znext-lockfile-bump`". Then
  # use the rustup cargo, still driving Debian's rustc (RUSTC below):
  # build-std takes std's source from that rustc's sysroot, not from cargo.
  lock_version=$(sed -n 's/^version = \([0-9]*\)$/\1/p' Cargo.lock | head -n 1)
  cargo_minor=$("$cargo" --version | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
  if [ "${lock_version:-3}" -ge 4 ] && [ "${cargo_minor:-0}" -lt 78 ]; then
    cargo=$(rustup which cargo 2>/dev/null || echo "$HOME/.cargo/bin/cargo")
    echo "note: $("/usr/bin/cargo" --version) cannot read Cargo.lock v$lock_version; using $cargo"
  fi
  echo "toolchain: $("$rustc" --version), Debian's rustc-web (rustup has no rust-src here)"
fi

# 2. One check per target; the full output goes to a log per target. With
# Debian's toolchain, /usr/bin comes first in PATH, so `cargo clippy` finds
# Debian's clippy, which matches the std its rustc built (rustup's would
# refuse it).
subcommand=check lints=()
if [ "${XCHECK_CLIPPY:-0}" = 1 ]; then
  subcommand=clippy lints=(-- -D warnings)
fi
mkdir -p "$target_dir/logs"
failed=()
for target in "${targets[@]}"; do
  log=$target_dir/logs/$target.log
  start=$SECONDS
  if PATH=$search_path RUSTC=$rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$target_dir \
    "$cargo" "$subcommand" -Zbuild-std=std,panic_abort,test,proc_macro --target "$target" \
    -p pingpong -p pingpong-check -p pingpong-watch --lib --bins --tests "${lints[@]}" >"$log" 2>&1; then
    status=ok
    grep -q '^warning' "$log" && status="ok, with warnings (see $log)"
  else
    status="FAILED (see $log)"
    failed+=("$target")
  fi
  printf '%-26s %s  [%ds]\n' "$target" "$status" $((SECONDS - start))
done

# 3. The first errors of each failure, so the fix can start from here.
for target in "${failed[@]}"; do
  echo
  echo "== $target: first errors"
  grep -A 12 '^error' "$target_dir/logs/$target.log" | head -n 40
done
[ ${#failed[@]} -eq 0 ]
