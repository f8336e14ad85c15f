#!/bin/busybox sh
# Stage 1: /init of the tiny initramfs that vm/run.py builds for one kernel.
# It holds busybox-static, this script and the few modules (uncompressed, in
# load order in /modules/order) needed to reach the root filesystem: virtio,
# 9p and overlay. It mounts the host's / (read-only 9p) under a tmpfs-backed
# overlay and hands over to stage 2 (vm/init.sh), which runs on the host's
# own userland.
/bin/busybox --install -s /bin
export PATH=/bin

# Any failure here: one line on the console (run.py quotes it), then power off.
die() {
    echo "nettrail-init: $*" >/dev/console
    poweroff -f
}

# /proc/cmdline carries our parameters; /dev for the console and insmod.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

param() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return ;; esac
    done
}
STAGE2=$(param nettrail.init)
[ -n "$STAGE2" ] || die "no nettrail.init= on the kernel command line"

# The kernel's own modules: the host's /lib/modules has none for this kernel.
for m in $(cat /modules/order); do
    insmod "/modules/$m" || die "insmod $m failed"
done

# The host's / read-only over virtio-9p (tag "root"); cache=loose because the
# export does not change under a test run and uncached 9p is slow under TCG.
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=512000 root /lower \
    || die "cannot mount the 9p root (tag root)"

# A tmpfs upper layer makes every path writable inside the VM (/etc/netns,
# /var, the repository's caches) and throws all writes away at power-off.
mount -t tmpfs -o mode=0755 rwlayer /rw || die "cannot mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || die "cannot mount the overlay root"

# Stage 2 mounts its own /proc, /sys and /dev; leave none behind.
umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/sh "$STAGE2"
