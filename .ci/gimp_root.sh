#!/bin/sh
# Build (or reuse) a cached Debian trixie root with GIMP 3 for the GIMP end-to-end tests.
# Debian bookworm has no GIMP 3, so the tests run GIMP inside this root through chroot.
# Usage: .ci/gimp_root.sh [ROOT]   (default $SDEDIT_GIMP_ROOT or /var/cache/sdedit-ci/trixie-gimp)
# Prints the root's path on the last line of stdout; exits non-zero with one reason line on stderr.
set -eu

ROOT="${1:-${SDEDIT_GIMP_ROOT:-/var/cache/sdedit-ci/trixie-gimp}}"
STAMP="$ROOT/.sdedit-root-ok"
# xdotool answers the plug-in's dialog in the interactive end-to-end test.
PACKAGES="gimp python3 python3-gi gir1.2-gimp-3.0 xdotool"

fail() { echo "gimp root: $*" >&2; exit 3; }

in_root() {
    # in_root DIR CMD...: run CMD inside DIR with /proc and /dev mounted in a private mount namespace,
    # so the mounts disappear with the process, even when it is killed.
    unshare --mount --propagation private sh -c '
        r="$1"; shift
        mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"' sh "$@"
}

valid() {
    # Built by this script with today's package list, and GIMP 3 plus its Python bindings start.
    [ -f "$STAMP" ] && grep -qx "packages: $PACKAGES" "$STAMP" \
        && in_root "$ROOT" gimp-console-3.0 --version >/dev/null 2>&1 \
        && in_root "$ROOT" python3 -c "import gi; gi.require_version('Gimp', '3.0')" >/dev/null 2>&1
}

[ "$(id -u)" = 0 ] || fail "GIMP 3 runs in a Debian trixie chroot here, and building or entering it needs root (debootstrap, chroot)."
command -v unshare >/dev/null || fail "unshare (util-linux) is missing."
unshare --mount --propagation private true 2>/dev/null \
    || fail "cannot make a private mount namespace (unshare --mount) to enter the root; a container needs CAP_SYS_ADMIN."

# One build at a time (parallel CI jobs on one machine share the cache).
mkdir -p "$(dirname "$ROOT")"
if command -v flock >/dev/null; then
    exec 9>"$ROOT.lock"
    flock 9
fi

if valid; then
    echo "gimp root: reusing $ROOT ($(in_root "$ROOT" gimp-console-3.0 --version 2>/dev/null | head -n1))" >&2
    echo "$ROOT"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    echo "gimp root: installing debootstrap" >&2
    # Other jobs may hold the dpkg lock: wait for it rather than fail.
    APT="apt-get -o DPkg::Lock::Timeout=300"
    ($APT install -y debootstrap >/dev/null 2>&1 || { $APT update >/dev/null 2>&1 && $APT install -y debootstrap >/dev/null 2>&1; }) \
        || fail "could not install debootstrap with apt-get."
fi
[ -e /usr/share/debootstrap/scripts/trixie ] || fail "this debootstrap does not know Debian trixie; install a newer debootstrap."

# Use the Debian mirror this machine's apt already uses (it may be the only one reachable).
MIRROR="${SDEDIT_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
    MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -Eo 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

TMP="$ROOT.building"
LOG="$ROOT.log"
rm -rf "$TMP"
start=$(date +%s)
echo "gimp root: debootstrap trixie from $MIRROR into $TMP" >&2
debootstrap --variant=minbase trixie "$TMP" "$MIRROR" >"$LOG" 2>&1 </dev/null \
    || { tail -n 5 "$LOG" >&2; fail "debootstrap failed (log: $LOG)."; }
cp /etc/resolv.conf "$TMP/etc/resolv.conf" 2>/dev/null || true
echo "gimp root: apt-get install $PACKAGES" >&2
in_root "$TMP" sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES && apt-get clean" >>"$LOG" 2>&1 \
    || { tail -n 5 "$LOG" >&2; fail "apt-get install of GIMP 3 in the root failed (log: $LOG)."; }
in_root "$TMP" gimp-console-3.0 --version >>"$LOG" 2>&1 || fail "gimp-console-3.0 does not start in the new root (log: $LOG)."
printf 'built: %s\npackages: %s\n' "$(date -u +%FT%TZ)" "$PACKAGES" >"$TMP/.sdedit-root-ok"
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
echo "gimp root: built $ROOT in $(( $(date +%s) - start )) s" >&2
echo "$ROOT"
