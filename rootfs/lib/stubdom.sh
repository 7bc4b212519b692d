# Stub domain logic, sourced by /init (busybox sh) and by test/stubdom.
#
# What libxl gives the stub domain (docs/misc/stubdom.txt, libxl_dm.c
# libxl__spawn_stub_dm; see docs/xen-contract.md §12):
#   xenstore  target = guest domid; /local/domain/<guest>/vm = /vm/<uuid>;
#             <vm>/image/dm-argv/001.. = the device model's argv, one key each
#   disks     /dev/xvda.. (the guest's disks, config order)
#   NICs      eth0.. (netfront, carrying the guest's MACs, config order)
#   consoles  hvc0 log, hvc1 save, hvc2 restore (when restoring), hvc3.. serial
# What libxl waits for: device-model/<guest>/state = running (written by
# stubdm), then QMP through a vchan server at device-model/<guest>/qmp-vchan.
#
# Every variable below can be overridden by the tests.

: "${STUBDM_DIR:=/opt/stubdm}"          # mounted squashfs: node, bundle, libs
: "${STUBDM_IMAGE:=/opt/stubdm.sqfs}"
: "${STUBDM_QMP_SOCK:=/run/stubdm-qmp.sock}"
: "${STUBDM_ARGV_FILE:=/run/dm-argv}"
: "${STUBDM_SAVE_CONSOLE:=/dev/hvc1}"    # console 1: the save stream (docs/xen-contract.md §12)
: "${STUBDM_RESTORE_CONSOLE:=/dev/hvc2}" # console 2: the restore stream
: "${STUBDM_READY_TIMEOUT:=120}"       # seconds for stubdm to serve QMP
: "${STUBDM_IMAGE_READAHEAD_KB:=0}"    # readahead of the image's loop device (see mount_image)
: "${STUBDM_SYSFS:=/sys}"
: "${STUBDM_CMDLINE:=/proc/cmdline}"
# V8 sized for a 128 MiB domain (measured: see scripts/build-stubdom.sh and
# rootfs/STARTUP.md). scripts/bundle.sh makes stubdm's code cache with exactly
# these flags (V8 refuses it under others: stubdm then says so and compiles).
: "${STUBDM_NODE_FLAGS:=--max-old-space-size=40 --max-semi-space-size=1 --v8-pool-size=1 --stack-size=984}"
# Unused MACs (locally administered) for our side of the bridge, as Qubes
# does, so the bridge never takes the guest's MAC as its own.
: "${STUBDOM_ETH_MAC:=fe:ff:ff:ff:ff:fe}"
: "${STUBDOM_TAP_MAC:=fe:ff:ff:ff:ff:fd}"
# MTU of the stub's bridge ports: at least what the guest and dom0 use (the
# ends decide frame sizes; this hop only must not drop them). 9000: jumbo.
: "${STUBDOM_NET_MTU:=9000}"

log() { echo "stubdom: [$(now)] $*"; }

# uptime in seconds with hundredths (kernel start = 0)
now() { up=0; [ -r /proc/uptime ] && read -r up _ </proc/uptime; echo "$up"; }
# elapsed a b: b - a with two decimals (awk: busybox sh has no floats)
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Fatal: say why on hvc0, take the guest down (its vCPUs would otherwise wait
# forever for ioreqs), then power the stub domain off.
die() {
  echo "STUBDOM FAIL $*"
  log "failed: stopping the guest"
  [ -n "${target:-}" ] && kill_guest
  sync
  sleep 2
  poweroff -f
  echo o >/proc/sysrq-trigger # if even that failed: init must not exit (panic)
  sleep 1000000
}

# A guest without its device model hangs. Shutting it down as "crashed"
# (XEN_DMOP_remote_shutdown, allowed to the guest's device-model domain) makes
# xl apply on_crash (default destroy); destroying the guest destroys us too.
kill_guest() {
  if "$STUBDM_DIR/bin/stubdm-kill-guest" "$target" crash; then
    log "guest $target shut down as crashed"
    return 0
  fi
  log "could not shut guest $target down"
  return 1
}

mount_basics() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mkdir -p /dev/pts /dev/shm /run /tmp
  mount -t tmpfs -o size=1m,mode=1777 tmpfs /tmp
  mount -t tmpfs -o size=1m,mode=0755 tmpfs /run
  # A bare devtmpfs has none of these; shells and scripts expect them.
  ln -sf /proc/self/fd /dev/fd
  ln -sf fd/0 /dev/stdin
  ln -sf fd/1 /dev/stdout
  ln -sf fd/2 /dev/stderr
  echo 4 >/proc/sys/kernel/printk 2>/dev/null || true # warnings (OOM) still reach hvc0
}

# Linux 6.1.y (Debian 6.1.192) restricts privcmd in a domU to the domain named
# by xenstore `target` and refuses everything else, including the
# IOCTL_PRIVCMD_DM_OP probe Xen 4.17's libxendevicemodel makes with
# DOMID_INVALID when it opens; the library then falls back to raw hypercalls,
# which the restricted driver refuses too: every dm_op fails with EPERM
# (measured: "creating an ioreq server ... Operation not permitted"). Xen
# itself still limits this domain to its target (XSM: DM_PRIV needs
# src->target == d), so lifting the driver-level restriction gives the device
# model nothing it should not have. Ignored under kernel lockdown.
# Our kernel has privcmd built in and gets this from its built-in command
# line instead (xen_privcmd.unrestricted=1, rootfs/kernel.config).
module_params() {
  case "$1" in
    xen-privcmd) echo unrestricted=1 ;;
  esac
}

# load_modules DIR: DIR/load-order lists modules dependencies first
# (scripts/build-stubdom.sh writes it). On a machine that is not Xen the Xen
# ones refuse to load: not fatal here, the xenstore check says what is wrong.
# No DIR/load-order (a kernel with everything built in): nothing to do.
load_modules() {
  [ -f "$1/load-order" ] || return 0
  failed=""
  while read -r m; do
    [ -n "$m" ] || continue
    # shellcheck disable=SC2046 # parameters are words
    insmod "$1/$m.ko" $(module_params "$m") 2>/dev/null || failed="$failed $m"
  done <"$1/load-order"
  [ -z "$failed" ] || log "modules not loaded:$failed"
}

# Everything but busybox lives in a compressed squashfs (node alone is 86 MB)
# so its clean pages can be dropped under memory pressure instead of pinning
# RAM; /lib/x86_64-linux-gnu, the ELF interpreter and /usr/bin/* point into it.
mount_image() {
  mkdir -p "$STUBDM_DIR"
  mount -t squashfs -o ro,loop "$STUBDM_IMAGE" "$STUBDM_DIR" ||
    die "cannot mount $STUBDM_IMAGE (squashfs/loop modules missing?)"
  image_readahead "$STUBDM_IMAGE_READAHEAD_KB"
}

# Readahead on the image decompresses squashfs blocks next to the one a page
# fault needs, and node's faults are scattered: in a domain short of memory
# those speculative pages evict ones node uses, which then fault (and
# decompress) again. Measured (qemu-boot.sh, QEMU_BOOT_ICOUNT=2, 148 MiB, zstd
# 128K; node -e 0 / stubdm --help / stubdm --sim to QMP, guest s): 512 KiB
# 5.0 / 9.9 / 7.2, the kernel's 128 KiB 4.5 / 6.6 / 5.2, none 4.2 / 5.6 / 4.3.
# A fault still decompresses its whole block. Set on the loop device whose
# backing file is $STUBDM_IMAGE (node opens its files after this).
image_readahead() {
  for f in "$STUBDM_SYSFS"/block/loop*/loop/backing_file; do
    [ -r "$f" ] && [ "$(cat "$f")" = "$STUBDM_IMAGE" ] || continue
    echo "$1" >"${f%/loop/backing_file}/queue/read_ahead_kb" ||
      log "cannot set readahead of ${f%/loop/backing_file}"
  done
}

mount_xenfs() {
  mkdir -p /proc/xen
  mount -t xenfs xenfs /proc/xen 2>/dev/null || return 1
  [ -e /dev/xen/xenbus ] || [ -e /proc/xen/xenbus ]
}

# Prints the dm-argv keys of $1 (a /vm/<uuid> path) in argv order: keys are
# %03d of the argument index, starting at 001 (libxl_dm.c
# libxl__write_stub_dmargs); sort numerically in case there are 1000+.
dm_argv_keys() {
  xenstore-list "$1/image/dm-argv" | sort -n
}

# Writes the guest's device-model argv, one argument per line, to $2,
# rewritten for the stub domain (see rewrite_args). $1 = guest domid.
read_dm_argv() {
  out=$2
  vm_path=$(xenstore-read "/local/domain/$1/vm") || return 1
  [ -n "$vm_path" ] || return 1
  keys=$(dm_argv_keys "$vm_path") || return 1
  [ -n "$keys" ] || return 1
  # one xenstore-read for all keys (it prints one value per line): every
  # exec costs in a stub domain under emulation
  set -- $(for k in $keys; do echo "$vm_path/image/dm-argv/$k"; done)
  xenstore-read "$@" >"$out.raw" || return 1
  [ "$(wc -l <"$out.raw")" -eq "$#" ] || return 1 # a value held a newline
  rewrite_args <"$out.raw" >"$out"
  rm -f "$out.raw"
}

# stdin: argv lines from libxl; stdout: argv lines for stubdm.
#  - `-incoming $STUBDOM_RESTORE_INCOMING_ARG` reads the saved state from the
#    restore console: file:/dev/hvc2, which stubdm opens itself and switches to
#    raw mode at once. hvc resets a console's termios on every first open and
#    dom0 feeds the state from the moment the console connects, so an fd the
#    shell opened would hand the first bytes to a cooked-mode tty (echo
#    written back into dom0's file, \r turned into \n) before `stty` could run;
#    stubdm's stream also starts with filler that absorbs that short window
#    (src/migration/stream.ts);
#  - the save console is fd 4 (open_consoles), named fd set 1 with -add-fd:
#    libxl saves a stub domain's state into /dev/fdset/1 without add-fd;
#  - QMP: a unix socket the vchan proxy connects to, as QEMU's -chardev/-mon.
# Also records each `-netdev tap` ifname, in order, in $STUBDM_ARGV_FILE.taps.
rewrite_args() {
  : >"$STUBDM_ARGV_FILE.taps"
  prev=""
  while IFS= read -r a; do
    case "$a" in
      '$STUBDOM_RESTORE_INCOMING_ARG') a=$(incoming_arg) ;;
    esac
    if [ "$prev" = "-netdev" ]; then
      case ",$a," in
        ,tap,* | *,type=tap,*)
          ifname=$(printf '%s\n' ",$a," | sed -n 's/.*,ifname=\([^,]*\),.*/\1/p')
          [ -n "$ifname" ] && echo "$ifname" >>"$STUBDM_ARGV_FILE.taps"
          ;;
      esac
    fi
    printf '%s\n' "$a"
    prev="$a"
  done
  printf '%s\n' -chardev "socket,id=libxl-cmd,path=$STUBDM_QMP_SOCK,server=on,wait=off" \
    -mon chardev=libxl-cmd,mode=control
  [ -n "${stubdm_save_fd:-}" ] && printf '%s\n' -add-fd "fd=$stubdm_save_fd,set=1,opaque=stubdom-save-console"
  return 0
}

# What `-incoming $STUBDOM_RESTORE_INCOMING_ARG` becomes (see rewrite_args);
# rootfs-qemu/lib/qemu-stubdom.sh redefines it for QEMU.
incoming_arg() { echo "file:$STUBDM_RESTORE_CONSOLE"; }

# start_dm ARG...: the device model, in the foreground of its (background)
# caller; rootfs-qemu/lib/qemu-stubdom.sh redefines it for QEMU.
# --log-level: stubdm takes its level from argv only (libxl passes none)
start_dm() {
  exec "$STUBDM_DIR/node" $STUBDM_NODE_FLAGS "$STUBDM_DIR/stubdm-start.cjs" --log-level "$STUBDM_LOG_LEVEL" "$@"
}

# The i-th `-netdev tap,ifname=X` is the guest's i-th NIC, which libxl also
# gives us as netfront eth<i> with the guest's MAC. Bridge them: eth<i> and
# the tap stubdm serves the emulated NIC through, both with MACs the guest
# never uses. The tap is created here, persistent, before stubdm starts, so
# stubdm only attaches to it by name (TUNSETIFF, IFF_TAP|IFF_NO_PI). libxl
# attaches the NICs only after the device model reports running, so eth<i>
# joins the bridge in the background when it appears.
wire_network() {
  i=0
  while read -r tap; do
    [ -n "$tap" ] || continue
    eth="eth$i" br="br$i"
    i=$((i + 1))
    tunctl -t "$tap" >/dev/null || { log "cannot create tap $tap"; continue; }
    ip link set "$tap" address "$STUBDOM_TAP_MAC"
    brctl addbr "$br"
    # no STP here, so ports forward at once (Debian's busybox brctl has no setfd)
    brctl addif "$br" "$tap"
    ip link set "$tap" up
    ip link set "$br" up
    (
      n=0
      while [ ! -e "/sys/class/net/$eth" ]; do
        n=$((n + 1))
        [ "$n" -le 1200 ] || { log "no $eth after 120 s: guest NIC $i has no network"; exit 0; }
        usleep 100000
      done
      ip link set "$eth" down
      ip link set "$eth" address "$STUBDOM_ETH_MAC"
      brctl addif "$br" "$eth"
      ip link set "$eth" up
      log "network: $tap <-> $br <-> $eth"
      # A bridge drops frames longer than a port's MTU, so this hop must not
      # be the smallest: raise both ports (the bridge follows) once netfront
      # is connected (it takes more than 1500 only with scatter-gather).
      n=0
      while [ "$(cat "/sys/class/net/$eth/carrier" 2>/dev/null)" != 1 ] && [ "$n" -lt 300 ]; do
        n=$((n + 1))
        usleep 100000
      done
      if ip link set "$eth" mtu "$STUBDOM_NET_MTU" && ip link set "$tap" mtu "$STUBDOM_NET_MTU"; then
        log "network: MTU $STUBDOM_NET_MTU on $tap, $eth"
      else
        log "network: could not raise the MTU of $tap/$eth to $STUBDOM_NET_MTU; jumbo frames will not pass"
      fi
    ) &
  done <"$STUBDM_ARGV_FILE.taps"
}

# fd 4 = the save stream (hvc1), fd set 1 for stubdm (rewrite_args, which
# runs after this and adds -add-fd only when the open worked). Output only;
# stubdm puts it in raw mode before it writes (a `stty` here would not last:
# hvc resets termios when its last opener closes). The restore console is
# opened by stubdm itself (rewrite_args says why). A failed `exec 4>` would
# end this shell (/init), hence the trial open in a subshell first.
open_consoles() {
  stubdm_save_fd=""
  [ -c "$STUBDM_SAVE_CONSOLE" ] || return 0
  if (exec 4>"$STUBDM_SAVE_CONSOLE") 2>/dev/null; then
    exec 4>"$STUBDM_SAVE_CONSOLE"
    stubdm_save_fd=4
  else
    log "cannot open the save console $STUBDM_SAVE_CONSOLE: saving this guest will fail"
  fi
}

# QMP for libxl: dom0 runs vchan-socket-proxy in client mode against
# /local/domain/<stub>/device-model/<guest>/qmp-vchan; we serve that vchan
# and connect each client to stubdm's QMP socket. The proxy exits when its
# client goes away or the socket is not there yet: restart it.
serve_qmp() {
  # Serve only once stubdm listens: the proxy gives up when its first connect
  # to the socket fails, and dom0's side waits (xenstore watch) for our nodes.
  while [ ! -S "$STUBDM_QMP_SOCK" ]; do usleep 100000; done
  while :; do
    vchan-socket-proxy --mode=server 0 "device-model/$target/qmp-vchan" "$STUBDM_QMP_SOCK"
    sleep 0.2
  done
}

# libxl gives a stub domain a fixed 30 s (LIBXL_STUBDOM_START_TIMEOUT, not
# configurable) from its unpause to device-model/<guest>/state = running, and
# then 60 s (LIBXL_DEVICE_MODEL_START_TIMEOUT) for the QMP `cont` that
# unpauses the guest. stubdm writes `running` itself once its ioreq server is
# up and it listens on QMP: measured under Xen 4.17 in QEMU TCG at libxl's
# 128 MiB (with our kernel), 9-11 s from the stub kernel's start on a quiet
# host (dm_start_s 5.6-6.8), but on a busy one (the other core taken by
# builds and tests, or by the sending side of a migration) 21.8 s, and
# several e2e guests then missed the 30 s outright ("startup timed out",
# stubdm still starting). So /init says `running` as soon as stubdm is on its
# way, and the real readiness check is the `cont` (it reaches stubdm only once
# it listens on QMP; libxl unpauses the guest only after `cont` succeeded; if
# stubdm dies first, die() takes the guest down): 90 s of margin instead of 30.
# `stubdom.wait_ready` on the stub domain's command line (stubdomain_cmdline)
# leaves `running` to stubdm alone, which tells libxl exactly when it is ready.
# t_running: when it was written (uptime), for the margin the e2e reports against libxl's
# 30 s; empty when stubdm writes it (then the `ready` line gives t_ready, just after).
early_running() {
  t_running=""
  grep -qw stubdom.wait_ready "$STUBDM_CMDLINE" 2>/dev/null && return 0
  if xenstore-write "device-model/$target/state" running; then
    t_running=$(now)
  else
    log "could not write device-model/$target/state"
  fi
}

# mem_vars PID: _mem = the stub's memory and stubdm's resident set, with shell
# builtins only (mem_line PID prints it). It runs every 10 s for the guest's
# first 3 minutes (below), and each fork + exec of awk there woke the stub's
# single vCPU for a process start under TCG; with this and the framebuffer
# console's faster back-off, the boot scenario's idle stub domain went from
# 0.030 to 0.010 CPU s/s (session 11, run H against run D).
mem_line() { mem_vars "$1"; echo "$_mem"; }
mem_vars() {
  _t=0 _a=0 _r=0
  while read -r _k _v _; do
    case $_k in MemTotal:) _t=$_v ;; MemAvailable:) _a=$_v ;; esac
  done </proc/meminfo
  if [ -r "/proc/$1/status" ]; then
    while read -r _k _v _; do [ "$_k" = VmRSS: ] && _r=$_v; done <"/proc/$1/status"
  fi
  kib_mib "$_t"; _mem="stub_mem_total_mib=$_mib"
  kib_mib $((_t - _a)); _mem="$_mem stub_mem_used_mib=$_mib"
  kib_mib "$_r"; _mem="$_mem stubdm_rss_mib=$_mib"
}
# kib_mib KIB: _mib = MiB with one decimal, rounded (integer arithmetic: sh has
# no floats; a variable, not $(...), which would fork a subshell).
kib_mib() { _mib=$((($1 * 10 + 512) / 1024)); _mib="$((_mib / 10)).$((_mib % 10))"; }

# the rest of /proc/meminfo that says where memory went, in MiB
meminfo_line() {
  awk '/^(MemFree|Buffers|Cached|Shmem|Unevictable|Slab|KernelStack|PageTables|AnonPages|Mapped):/ {
    sub(":", "", $1); s = s sprintf(" %s=%.1f", $1, $2/1024) } END { print "STUBDOM meminfo" s }' /proc/meminfo
}

ramdisk_mib() {
  # "Freeing initrd memory: 34860K" is the size of the ramdisk libxl loaded.
  dmesg | sed -n 's/.*Freeing initrd memory: \([0-9]*\)K.*/\1/p' | awk '{ printf "%.1f", $1/1024 }'
}

# Settings for stubdm from the stub domain's command line (xl.cfg stubdomain_cmdline), as the
# environment a dom0 stubdm would get: stubdm.net_trace=N is STUBDM_NET_TRACE=N (the NIC event
# trace for HMP `info nettrace`; the e2e's E2E_NET_TRACE), stubdm.disk_trace=N is
# STUBDM_DISK_TRACE=N (the IDE event trace for HMP `info disktrace`; E2E_DISK_TRACE),
# stubdm.evtchn_wait_us=N is STUBDM_EVTCHN_WAIT_US=N (the wait in place after an answer,
# native/fdwatch.c; E2E_EVTCHN_WAIT_US), 0 (off) without one: on real Xen it halved
# stubdm-dom0's ioreq round trip, but the stub domain's was no better with it (two runs each
# way, docs/benchmark.md). Digits only; the last one of each counts.
cmdline_env() {
  v=$(cmdline_digits net_trace)
  [ -z "$v" ] || export STUBDM_NET_TRACE="$v"
  v=$(cmdline_digits disk_trace)
  [ -z "$v" ] || export STUBDM_DISK_TRACE="$v"
  v=$(cmdline_digits evtchn_wait_us)
  export STUBDM_EVTCHN_WAIT_US="${v:-0}"
  return 0
}

# cmdline_digits KEY: the digits of the last stubdm.KEY=N on the command line (nothing if none).
cmdline_digits() {
  tr ' ' '\n' <"$STUBDM_CMDLINE" 2>/dev/null | sed -n "s/^stubdm\\.$1=\\([0-9][0-9]*\\)\$/\\1/p" | tail -n 1
}

# Runs the bundle with the production flags, for boots under plain QEMU with
# `stubdom.selftest` on the command line (no Xen needed):
#  - `node -p process.versions.node`: node alone (node_e0_s: it was `-e 0`;
#    printing the version costs nothing measurable);
#  - `stubdm --help`: the whole bundle loaded (koffi is loaded lazily, by Xen
#    runs only);
#  - `stubdm --sim`: stubdm's whole start path but the Xen host (machine,
#    devices, ioreq server, QMP socket), from exec to the QMP socket existing,
#    which is what /init waits for; sim_rss_mib / sim_mem_used_mib are stubdm's
#    RSS and the domain's memory in use at that moment (sim_exit 143: the
#    SIGTERM came before stubdm had installed its handler, right after the socket).
# rootfs= is what the initramfs was unpacked into (ramfs from our kernel's
# built-in rootfstype=ramfs; tmpfs is limited to half the RAM: kernel.config).
# Keys are only ever added (the e2e harness and people read this line).
selftest() {
  t0=$(now)
  node_version=$("$STUBDM_DIR/node" $STUBDM_NODE_FLAGS -p process.versions.node 2>&1 | tr -c '0-9.\n' _)
  t_node=$(now)
  "$STUBDM_DIR/node" $STUBDM_NODE_FLAGS "$STUBDM_DIR/stubdm-start.cjs" --help >/tmp/selftest.out 2>&1
  rc=$?
  t1=$(now)
  help_mem=$(mem_line 1)
  sim=$(selftest_sim)
  echo "STUBDOM selftest help_rc=$rc node_e0_s=$(elapsed "$t0" "$t_node") stubdm_help_s=$(elapsed "$t_node" "$t1") ramdisk_mib=$(ramdisk_mib) $help_mem $sim node_version=${node_version:-none} rootfs=$(stat -f -c %T / 2>/dev/null || echo unknown)"
  [ "$rc" = 0 ] || tail -5 /tmp/selftest.out
  meminfo_line
  slab_line
  # privcmd's `unrestricted` is not in sysfs (permission 0). A restricted
  # privcmd in a domain without `target` logs "No target domain found" once
  # xenbus is up (under Xen): restricted=0 there means the parameter held.
  echo "STUBDOM privcmd builtin=$([ -d /sys/module/xen_privcmd ] && [ ! -e /sys/module/xen_privcmd/initstate ] && echo 1 || echo 0)" \
    "cmdline_unrestricted=$(grep -qw xen_privcmd.unrestricted=1 /proc/cmdline && echo 1 || echo 0)" \
    "restricted=$(dmesg | grep -c 'No target domain found')"
}

# the largest slab caches (slabs x pages per slab), in MiB, when the kernel
# has /proc/slabinfo
slab_line() {
  [ -r /proc/slabinfo ] || return 0
  echo "STUBDOM slab $(awk 'NR > 2 { m = $15 * $6 * 4096 / 1048576; if (m >= 0.2) printf "%s=%.1f\n", $1, m }' /proc/slabinfo |
    sort -t= -k2 -rn | head -12 | tr '\n' ' ')"
}

# stubdm --sim until its QMP socket exists (bounded), then SIGTERM; prints key=values.
selftest_sim() {
  sock=/run/selftest-qmp.sock
  rm -f "$sock"
  t0=$(now)
  "$STUBDM_DIR/node" $STUBDM_NODE_FLAGS "$STUBDM_DIR/stubdm-start.cjs" --sim -machine xenfv -m 16 -serial null \
    -chardev "socket,id=selftest,path=$sock,server=on,wait=off" -mon chardev=selftest,mode=control \
    >/tmp/selftest-sim.out 2>&1 &
  pid=$!
  n=0
  while [ ! -S "$sock" ]; do
    n=$((n + 1))
    if ! kill -0 "$pid" 2>/dev/null || [ "$n" -gt $((STUBDM_READY_TIMEOUT * 20)) ]; then
      kill "$pid" 2>/dev/null
      echo "sim_ready=no"
      return
    fi
    usleep 50000
  done
  t1=$(now)
  m=$(mem_line "$pid")
  kill "$pid"
  wait "$pid"
  rc=$?
  echo "sim_ready=yes sim_ready_s=$(elapsed "$t0" "$t1") sim_exit=$rc $(echo "$m" | sed 's/stub_mem_total_mib=[^ ]* //; s/stub_mem_used_mib=/sim_mem_used_mib=/; s/stubdm_rss_mib=/sim_rss_mib=/')"
}

stubdom_main() {
  export STUBDM_NATIVE_DIR="$STUBDM_DIR/native" STUBDM_PTY_HELPER="$STUBDM_DIR/bin/stubdm-pty"
  # stubdm's start-up milestones on hvc0 (its text log lines, as in dom0: nothing here parses them)
  export STUBDM_LOG_LEVEL="${STUBDM_LOG_LEVEL:-info}"
  mount_basics
  cmdline_env # /proc is mounted now
  t_init=$(now)
  log "init started"
  load_modules /lib/modules
  mount_image
  load_modules "$STUBDM_DIR/modules"
  log "modules loaded, image mounted"
  grep -qw stubdom.selftest /proc/cmdline && selftest
  mount_xenfs || die "no xenstore: xenfs did not mount (not a Xen domain, or xen modules missing)"
  target=$(xenstore-read target 2>/dev/null) || target=""
  case "$target" in
    '' | *[!0-9]*) target=""; die "no xenstore target: this is not a stub domain" ;;
  esac
  log "device model for domain $target"
  open_consoles
  read_dm_argv "$target" "$STUBDM_ARGV_FILE" || die "cannot read the device-model argv of domain $target"
  log "argv read: $(tr '\n' ' ' <"$STUBDM_ARGV_FILE")"
  wire_network

  serve_qmp &
  early_running
  t_exec=$(now)
  old_ifs=$IFS
  IFS='
'
  # shellcheck disable=SC2046 # one argument per line, by design
  set -- $(cat "$STUBDM_ARGV_FILE")
  IFS=$old_ifs
  log "starting stubdm"
  start_dm "$@" &
  dm=$!
  exec 4>&- # stubdm has its copy

  # Ready = stubdm serves QMP (it listens once its ioreq server is set up and
  # it has written state=running itself).
  waited=0
  while :; do
    [ -S "$STUBDM_QMP_SOCK" ] && break
    kill -0 "$dm" 2>/dev/null || { wait "$dm"; die "stubdm exited with status $? before it was ready"; }
    waited=$((waited + 1))
    [ "$waited" -le $((STUBDM_READY_TIMEOUT * 10)) ] || { kill "$dm"; die "stubdm not ready after ${STUBDM_READY_TIMEOUT}s"; }
    usleep 100000
  done
  t_ready=$(now)
  # boot_to_running_s: stub kernel start to state=running (libxl's 30 s wait ends there):
  # /init's early write, or stubdm's own, which comes before its QMP socket (t_ready).
  echo "STUBDOM ready dm_start_s=$(elapsed "$t_exec" "$t_ready") boot_to_ready_s=$t_ready init_to_ready_s=$(elapsed "$t_init" "$t_ready") ramdisk_mib=$(ramdisk_mib) $(mem_line "$dm") boot_to_running_s=${t_running:-$t_ready} running_by=$([ -n "$t_running" ] && echo init || echo stubdm)"

  # Memory as the guest boots and runs: every 10 s for 3 minutes, then every
  # minute. The harness takes the last line before it stops the guest.
  (
    n=0
    while kill -0 "$dm" 2>/dev/null; do
      if [ "$n" -lt 18 ]; then sleep 10; else sleep 60; fi
      n=$((n + 1))
      kill -0 "$dm" 2>/dev/null || break
      # Builtins only, one write: no subshell per sample (mem_vars).
      read -r up _ </proc/uptime
      mem_vars "$dm"
      echo "STUBDOM mem t=$up $_mem"
    done
  ) &

  wait "$dm"
  rc=$?
  die "stubdm exited with status $rc"
}
