#!/bin/sh
# Stage 2: PID 1 inside the test VM, run by the host's own /bin/sh over the
# overlay root that vm/initramfs-init.sh set up. It makes the VM look like a
# booted machine to the tests (pseudo filesystems, writable /run and /tmp,
# the kernel's modules, loopback up), runs the job that vm/run.py wrote into
# the shared run directory, records its exit status there and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
umask 022

# Anything that goes wrong before the job: one line run.py quotes, power off.
die() {
    echo "nettrail-init: $*" >/dev/console
    echo o >/proc/sysrq-trigger
    sleep 60
}

param() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return ;; esac
    done
}

# The pseudo filesystems the tests and libbpf expect on a booted host.
mount -t proc proc /proc || die "cannot mount /proc"
mount -t sysfs sysfs /sys || die "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || die "cannot mount /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

# A fresh /run, as after a boot: the host's holds its own sockets, pids and
# netns files. /tmp stays the host's (a checkout there is still visible),
# writable like every other path through the overlay.
mount -t tmpfs -o mode=0755,nosuid,nodev run /run || die "cannot mount /run"

# BPF and tracing: cgroup2 for cgroup programs, bpffs for pinning, tracefs
# for tracepoint ids (libbpf reads them there) and debugfs for older paths.
mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2"
mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs"
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

# The kernel's modules from the unpacked .deb on the host (seen through the
# 9p root), bind-mounted where modprobe and the kernel's autoloader look.
MODULES=$(param nettrail.modules)
RELEASE=$(uname -r)
[ -d "$MODULES" ] || die "modules directory $MODULES not visible in the VM"
mkdir -p "/lib/modules/$RELEASE"
mount --bind "$MODULES" "/lib/modules/$RELEASE" || die "cannot bind-mount the modules"
echo /sbin/modprobe >/proc/sys/kernel/modprobe

# A name of its own and loopback up; no other network device exists.
echo nettrail-vm >/proc/sys/kernel/hostname
ip link set lo up || die "cannot bring loopback up"

# The run directory: a writable 9p share (tag "run") holding the job, the
# output files the host streams, and the exit status.
mkdir -p /run/nettrail
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 run /run/nettrail \
    || die "cannot mount the run share (tag run)"

# Tell the host the command starts now (its boot-time measurement).
cat /proc/uptime >/run/nettrail/started

# The job: cd, environment and argv as written by run.py; output to files.
sh /run/nettrail/job.sh </dev/null >/run/nettrail/stdout 2>/run/nettrail/stderr
rc=$?

# Exit status last, by rename, so the host never reads half of it.
echo "$rc" >/run/nettrail/rc.tmp && mv /run/nettrail/rc.tmp /run/nettrail/rc
sync
umount /run/nettrail 2>/dev/null

# Power off at once; nothing on the tmpfs overlay is worth keeping.
echo o >/proc/sysrq-trigger
sleep 60
