#!/bin/bash
# dom0's PID 1 after stage 1 (runs from the work disk mounted at /e2e): brings
# up the Xen userland by hand (no systemd), runs the scenario driver, saves
# the logs into /e2e/results and reboots, which ends the QEMU run.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
R=/e2e/results
say() { echo "E2E-DOM0 $*"; }
finish() {
  xl dmesg >"$R/xl-dmesg.txt" 2>&1
  dmesg >"$R/dom0-dmesg.txt" 2>&1
  mkdir -p "$R/xen-logs" && cp -a /var/log/xen/. "$R/xen-logs/" 2>/dev/null
  sync
  umount /e2e 2>/dev/null || { sync; mount -o remount,ro /e2e; }
  say "finished: rebooting"
  # No systemd and no reboot(8) here: ask the kernel directly (Xen then
  # reboots the machine, and QEMU's -no-reboot ends the run).
  echo b >/proc/sysrq-trigger
  busybox reboot -f
  sleep 30
}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
# A bare devtmpfs lacks these; /etc/xen/scripts/block spins without /dev/stdin.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/xen /run/xenstored /var/log/xen /var/lib/xen /var/run
[ -L /var/run ] || mount --bind /run /var/run
hostname e2e-dom0
ip link set lo up
exec >/dev/console 2>&1 </dev/null
mkdir -p "$R"
say "up after $(cut -d' ' -f1 /proc/uptime) s"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback bridge tun loop; do
  modprobe "$m" || say "modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen || { say "FAIL cannot mount xenfs"; finish; }
XENSTORED_ROOTDIR=/run/xenstored xenstored --pid-file /run/xenstore.pid
for i in $(seq 1 100); do xenstore-read -s / >/dev/null 2>&1 && break; sleep 0.1; done
xen-init-dom0 >/dev/null || say "xen-init-dom0 failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen
ip link add xenbr0 type bridge 2>/dev/null && ip link set xenbr0 up
say "xen userland up after $(cut -d' ' -f1 /proc/uptime) s"
xl info | grep -E '^(xen_version|virt_caps|free_memory)' | sed 's/^/E2E-DOM0 /'
# dom0's part of the VM's time before the driver (run.sh's phase summary)
printf 'dom0\tkernel start to driver\t%s\n' "$(cut -d' ' -f1 /proc/uptime)" >>"$R/phases.txt"
bash /e2e/dom0/driver.sh 2>&1 | tee "$R/driver.txt"
say "driver exit ${PIPESTATUS[0]}"
finish
