#!/bin/bash
# Run CMD inside a matrix chroot, the way Apptainer and Slurm accept it:
#
#   tests/harness/matrix/enter.sh ROOT CMD [ARG...]
#
# A plain chroot is not enough: Apptainer refuses one ("weak chrooted
# environment") and the kernel refuses user namespaces to a chrooted
# process.  So CMD runs in a private mount namespace whose root is ROOT,
# entered with pivot_root.  What the host shares with it:
#   /proc (new), /sys (rbind, slave), /dev, /dev/pts, a private /dev/shm;
#   /tmp and /var/tmp, so that paths the tests hand to the host's dockerd
#     (bind sources, the spooled batch script) mean the same file there;
#     /var/tmp as a shared mount both ways, so that a mount made inside (a
#     FUSE folder a job binds into a Docker container) is seen by dockerd;
#   /run/docker.sock and the host's docker CLI (the docker runtime talks to
#     the host's dockerd, as a site's Slurm node would);
#   the repository, at its own path; /etc/hosts and /etc/resolv.conf.
# /run is a fresh tmpfs: munged's socket and pid files stay inside.
# Everything CMD starts lives in this namespace; when the last of it exits
# the mounts go with it.
set -euo pipefail
root=${1:?usage: enter.sh ROOT CMD [ARG...]}
shift
[ $# -gt 0 ] || set -- /bin/bash
[ "$(id -u)" -eq 0 ] || { echo "enter.sh: run as root" >&2; exit 1; }
[ -d "$root/usr" ] || { echo "enter.sh: $root is not a chroot" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
root=$(cd "$root" && pwd)
docker_cli=$(command -v docker 2>/dev/null || true)

# /var/tmp shared on the host: binding it into the chroot then makes a
# peer, and mounts propagate between the two.
mountpoint -q /var/tmp || mount --bind /var/tmp /var/tmp
mount --make-shared /var/tmp

export ENTER_ROOT=$root ENTER_REPO=$repo ENTER_DOCKER_CLI=$docker_cli
exec unshare --mount --propagation unchanged -- /bin/bash -euc '
r=$ENTER_ROOT
bind() { # SRC DST: DST made like SRC (file or folder) when missing
	if [ -d "$1" ]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")"; [ -e "$2" ] || : >"$2"; fi
	mount --bind "$1" "$2"
}
# Nothing done here reaches the host, except through /var/tmp.
findmnt -rn -o TARGET | while read -r mp; do
	[ "$mp" = /var/tmp ] || mount --make-private "$mp" 2>/dev/null || true
done
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --make-rslave "$r/sys"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
mount --bind /tmp "$r/tmp"
mount --bind /var/tmp "$r/var/tmp" # a peer of the host'"'"'s /var/tmp
mount --make-private /var/tmp      # this copy leaves with .oldroot
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mkdir -p "$r/run/lock" && chmod 1777 "$r/run/lock"
for sock in /run/docker.sock /var/run/docker.sock; do
	if [ -S "$sock" ]; then bind "$sock" "$r/run/docker.sock"; break; fi
done
[ -z "$ENTER_DOCKER_CLI" ] || bind "$ENTER_DOCKER_CLI" "$r/usr/local/bin/docker"
case $ENTER_REPO/ in
/tmp/* | /var/tmp/*) ;; # there already (and a bind there would reach the host)
*) bind "$ENTER_REPO" "$r$ENTER_REPO" ;;
esac
bind /etc/hosts "$r/etc/hosts"
bind /etc/resolv.conf "$r/etc/resolv.conf"
cd "$r"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
cd /
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
' enter "$@"
