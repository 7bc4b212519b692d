#!/bin/bash
# Scenario driver, run in dom0 by init.sh. For each device model under test:
# one guest boot serves every scenario with a <name>_check function (markers
# the guest printed on its serial), then each scenario with a <name>_run
# function runs on its own. Writes PASS/FAIL/SKIP lines to results/lines.txt.
# Every wait is bounded: a hung guest becomes a FAIL line.
set -u
. /e2e/config.env
. /e2e/img/expect.env
R=/e2e/results
LINES=$R/lines.txt
SCENARIOS=${E2E_SCENARIOS:-boot disk cdrom lifecycle dmcrash stubdom stubnet net}
DMS=${E2E_DMS:-qemu-xen stubdm-dom0 stubdm-stubdom}
# The stub domain's kernel and rootfs: scripts/build-stubdom.sh for
# stubdm-stubdom, scripts/build-qemu-stubdom.sh for qemu-stubdom (set per DM).
STUBDOM_KERNEL=/e2e/stubdom/kernel STUBDOM_RAMDISK=/e2e/stubdom/rootfs
STUBDOM_DEFAULT_DIR=/usr/lib/xen-4.17/boot                             # libxl's default stubdomain_kernel/ramdisk
for f in /e2e/scenarios/*.sh; do . "$f"; done

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
emit() { echo "$*"; echo "$*" >>"$LINES"; }
# phase NAME T0: the wall time since T0 (a now value) of one part of this DM's
# run, for run.sh's summary of where the suite's time goes (results/phases.txt).
phase() { printf '%s\t%s\t%s\n' "$DM" "$1" "$(secs "$2" "$(now)")" >>"$R/phases.txt"; }
pass() { emit "PASS $SCEN $DM $*"; }
fail() { emit "FAIL $SCEN $DM $*"; }
has_fn() { declare -F "$1" >/dev/null; }
# the device model runs in a stub domain (stubdm's or QEMU's)
is_stubdom() { case $DM in *-stubdom) return 0 ;; *) return 1 ;; esac; }
# marker SCENARIO KEY: value of KEY in the guest's "E2E SCENARIO k=v ..." lines
marker() {
  awk -v s="$1" -v k="$2=" '$1 == "E2E" && $2 == s {
    for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' \
    "$RUN_DIR/markers" 2>/dev/null
}

# The device model's CPU time, to compare what each DM costs the host while its
# guest idles, does disk I/O and does network I/O (issue #16). DM_CPU_ID is the
# DM's pid in dom0, or its stub domain's name (<guest>-dm); set per guest. Any
# other dom0 process can be measured the same way with DM_CPU_ID=<pid> for the
# call (vga.sh: the xenpv QEMU that serves a stub domain's VNC).
DM_CPU_ID="" CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
dm_cpu_target() { # GUEST-NAME DM-PID
  if is_stubdom; then DM_CPU_ID=$1-dm; else DM_CPU_ID=$2; fi
}
# DM_CPU_ID names a domain (not a pid: a stub domain is <guest>-dm).
dm_cpu_domain() { case $DM_CPU_ID in *[!0-9]*) return 0 ;; *) return 1 ;; esac; }
# CPU seconds the DM used so far (empty if it is gone): utime + stime of
# /proc/<pid>/stat for a dom0 process (all its threads; comm is cut off first,
# it is in parentheses and may hold spaces); `xl list`'s Time(s) for a stub
# domain: all of its vCPU time, its kernel's included (0.1 s steps).
dm_cpu_s() {
  [ -n "$DM_CPU_ID" ] || return 0
  if dm_cpu_domain; then
    xl list "$DM_CPU_ID" 2>/dev/null | awk 'NR == 2 { print $6 }'
  else
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$DM_CPU_ID/stat" 2>/dev/null
  fi
}
# dm_cpu_window SECONDS FILE (in the background): the DM's CPU seconds per
# second over the next SECONDS into FILE, and for a dom0 DM its resident set
# at the end into FILE.rss (MiB, VmRSS; a stub domain's /init reports its DM's
# itself, boot.sh stubdom_keys). For a stub domain from xentop's
# second frame (CPU(%) over exactly that interval, from Xen's nanosecond
# counters; `xl list`'s 0.1 s steps would be 0.007 CPU s/s over a 15 s idle
# window, as large as the figure itself).
dm_cpu_window() {
  local a b t0 t1
  if dm_cpu_domain; then
    timeout $(($1 + 30)) xentop -b -f -i 2 -d "$1" 2>/dev/null |
      awk -v n="$DM_CPU_ID" '$1 == n { v = $4 } END { if (v != "") printf "%.3f\n", v / 100 }' >"$2"
  else
    t0=$(now) a=$(dm_cpu_s)
    sleep "$1"
    t1=$(now) b=$(dm_cpu_s)
    [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.3f\n", (b - a) / (t1 - t0) }' >"$2"
    awk '$1 == "VmRSS:" { printf "%.1f\n", $2 / 1024 }' "/proc/$DM_CPU_ID/status" >"$2.rss" 2>/dev/null
  fi
}
# cpu_poll SERIAL NOTES: the first time the guest prints "E2E mark TAG", note
# "TAG <time> <DM CPU s>" in NOTES (cpu_rate turns two notes into a figure).
# Seen from the driver's 0.5 s polls: a window opens and closes up to 0.5 s
# late, so the phases they frame last several seconds. TAG idle starts the
# fixed BOOT_IDLE_S window (boot.sh) in the background instead.
cpu_poll() {
  local tag
  for tag in $(tr -d '\r' <"$1" 2>/dev/null | sed -n 's/^E2E mark \([a-z0-9]*\)$/\1/p'); do
    grep -q "^$tag " "$2" 2>/dev/null && continue
    if [ "$tag" = idle ]; then
      echo "$tag $(now)" >>"$2"
      dm_cpu_window "$BOOT_IDLE_S" "$2.idle" </dev/null >/dev/null 2>&1 &
      CPU_JOB=$!
    else
      echo "$tag $(now) $(dm_cpu_s)" >>"$2"
    fi
  done
}
# cpu_rate NOTES A B KEY: "KEY=<DM CPU s per s between notes A and B>", or
# nothing when either note (or its CPU reading) is missing.
cpu_rate() {
  awk -v a="$2" -v b="$3" -v k="$4" 'NF == 3 && $1 == a { ta = $2; ca = $3 } NF == 3 && $1 == b { tb = $2; cb = $3 }
    END { if (ta != "" && tb != "" && tb > ta) printf "%s=%.3f", k, (cb - ca) / (tb - ta) }' "$1" 2>/dev/null
}

# The xl.cfg lines that select the device model; everything else is shared.
dm_lines() {
  case $DM in
  qemu-xen) echo 'device_model_version="qemu-xen"' ;;
  stubdm-dom0)
    echo 'device_model_version="qemu-xen"'
    echo 'device_model_override="/e2e/dom0/stubdm-dm"' ;;
  stubdm-stubdom)
    # What an operator writes once `build-stubdom.sh --install` ran (preflight
    # installs the same files): libxl picks the kernel, ramdisk and 128 MiB.
    echo 'device_model_version="qemu-xen"'
    echo 'device_model_stubdomain_override=1'
    # The stub's /init makes it STUBDM_EVTCHN_WAIT_US (a scenario's own stubdomain_cmdline, later
    # in the file, replaces this one: the disk and net traces).
    [ -z "${E2E_EVTCHN_WAIT_US:-}" ] || echo "stubdomain_cmdline=\"stubdm.evtchn_wait_us=$E2E_EVTCHN_WAIT_US\""
    [ -z "${E2E_STUBDOM_MEMORY:-}" ] || echo "stubdomain_memory=$E2E_STUBDOM_MEMORY" ;;
  qemu-stubdom)
    # Debian's QEMU in the same Linux stub domain (scripts/build-qemu-stubdom.sh),
    # named explicitly: libxl's default files are stubdm's in this run.
    echo 'device_model_version="qemu-xen"'
    echo 'device_model_stubdomain_override=1'
    echo "stubdomain_kernel=\"$STUBDOM_KERNEL\""
    echo "stubdomain_ramdisk=\"$STUBDOM_RAMDISK\""
    [ -z "${E2E_STUBDOM_MEMORY:-}" ] || echo "stubdomain_memory=$E2E_STUBDOM_MEMORY" ;;
  esac
}

guest_cfg() {
  cat <<CFG
name="$1"
type="hvm"
memory=256
vcpus=1
disk=[ "format=raw,vdev=hda,access=rw,target=$RUN_DIR/boot.img",
       "format=raw,vdev=hdb,access=rw,target=$RUN_DIR/data.img",
       "format=raw,vdev=hdc,access=ro,devtype=cdrom,target=$RUN_DIR/cd.iso" ]
serial="file:$RUN_DIR/$1.serial"
vnc=0
sdl=0
vga="none"
boot="c"
on_poweroff="destroy"
on_reboot="destroy"
on_crash="destroy"
CFG
  dm_lines
}

# Why a device model cannot run here (empty: it can). SKIP reasons start "SKIP".
dm_unavailable() {
  case $DM in
  qemu-xen) [ -x /usr/libexec/xen-qemu-system-i386 ] || echo "no /usr/libexec/xen-qemu-system-i386" ;;
  stubdm-dom0) [ -f /e2e/project/src/main.ts ] || echo "src/main.ts is not in the tree yet" ;;
  stubdm-stubdom)
    if [ "$E2E_STUBDOM_SCRIPT" != yes ]; then echo "SKIP stubdm-stubdom not built (no scripts/build-stubdom.sh)"; return; fi
    [ -f "$STUBDOM_KERNEL" ] && [ -f "$STUBDOM_RAMDISK" ] ||
      echo "build/stubdom/ has no kernel + rootfs (scripts/build-stubdom.sh not run or failed)" ;;
  qemu-stubdom)
    [ -f "$STUBDOM_KERNEL" ] && [ -f "$STUBDOM_RAMDISK" ] ||
      echo "build/qemu-stubdom/ has no kernel + rootfs (scripts/build-qemu-stubdom.sh not run or failed)" ;;
  *) echo "unknown device model '$DM' (known: qemu-xen stubdm-dom0 stubdm-stubdom qemu-stubdom)" ;;
  esac
}

save_dm_logs() {
  local name=$1
  cp "$RUN_DIR/$name.cfg" "$RUN_DIR/$name".*.log "$R/$DM/" 2>/dev/null
  [ -f "$RUN_DIR/$name.serial" ] && cp "$RUN_DIR/$name.serial" "$R/$DM/$name.serial.txt"
  cp /var/log/xen/qemu-dm-"$name"*.log "$R/$DM/" 2>/dev/null
}

# The first libxl error of a failed `xl create` (the last lines are about the
# cleanup), on one line.
create_error() {
  { grep -m 2 -E 'error|failed|timed out' "$1" || tail -n 2 "$1"; } | sed 's/^libxl: error: //' | tr '\n' ' '
}

# shared_hook STAGE ARGS...: a scenario's part in the shared guest's boot, for each
# scenario that has one: <name>_shared_cfg NAME (before xl create: extra xl.cfg lines on
# stdout, files the guest or the DM reads), <name>_shared_created NAME (xl create
# returned), <name>_shared_poll NAME SERIAL DOMID (each 0.5 s while the guest runs, after
# cpu_poll), <name>_shared_end NAME (the guest is gone).
shared_hook() {
  local stage=$1 s
  shift
  for s in $SCENARIOS; do has_fn "${s}_shared_$stage" && "${s}_shared_$stage" "$@"; done
  return 0
}

# One guest boot for every <name>_check scenario. Sets BOOT_SECONDS, GUEST_END,
# SHUTDOWN and writes $RUN_DIR/markers. $1: the domain name (default e2e-$DM; the
# abuse scenario boots its fresh guest under another).
# shellcheck disable=SC2120 # scenarios/abuse.sh passes the name
guest_run() {
  local name=${1:-e2e-$DM} serial deadline t0 tailpid=""
  serial=$RUN_DIR/$name.serial
  BOOT_SECONDS="" GUEST_END="" SHUTDOWN="" CPU_JOB=""
  rm -f "$RUN_DIR/cpu-$name.txt" "$RUN_DIR/cpu-$name.txt.idle" "$RUN_DIR/cpu-$name.txt.idle.rss"
  { guest_cfg "$name"; shared_hook cfg "$name"; } >"$RUN_DIR/$name.cfg"
  rm -f "$serial" && : >"$serial"
  [ "${E2E_MODE:-test}" = demo ] && { tail -n +1 -F "$serial" 2>/dev/null & tailpid=$!; }
  echo "E2E-DOM0 $DM: xl create $name"
  # E2E_BUSY=1: a CPU hog in dom0 while xl create runs (the stub domain's start-up against
  # libxl's fixed 30 s on a loaded host: boot's margin_s). Xen here has one CPU: at nice 19
  # the hog leaves dom0's own work (libxl, xenstored, backends) alone but keeps dom0's vCPU
  # busy, so Xen's scheduler splits the CPU with the stub domain as with a busy neighbour.
  local hog=""
  if [ "${E2E_BUSY:-0}" = 1 ]; then nice -n 19 bash -c 'while :; do :; done' & hog=$!; fi
  t0=$(now)
  CREATE_T0=$t0
  local created=yes
  timeout 150 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1 || created=no
  [ -n "$hog" ] && { kill "$hog"; wait "$hog"; } 2>/dev/null
  shared_hook created "$name"
  if [ $created = no ]; then
    GUEST_END="xl create failed: $(create_error "$RUN_DIR/$name.create.log")"
    timeout 60 xl destroy "$name" >/dev/null 2>&1
  else
    echo "E2E-DOM0 $DM: xl create returned after $(secs "$t0" "$(now)") s"
    deadline=$((SECONDS + ${E2E_GUEST_TIMEOUT:-900}))
    local domid dmpid dmlog=/var/log/xen/qemu-dm-$name.log why
    domid=$(xl domid "$name" 2>/dev/null)
    dmpid=$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)
    dm_cpu_target "$name" "$dmpid"
    # E2E_STUBDM_STRACE="DELAY SECONDS" for qemu-xen too (stubdm-dom0 starts its own
    # in dom0/stubdm-dm): the same syscall count over the same part of the guest's run.
    if [ "$DM" = qemu-xen ] && [ -n "${E2E_STUBDM_STRACE:-}" ] && [ -x /e2e/bin/strace ] && [ -n "$dmpid" ]; then
      (
        sleep "${E2E_STUBDM_STRACE% *}"
        LD_LIBRARY_PATH=/e2e/bin/strace-libs timeout -s INT "${E2E_STUBDM_STRACE#* }" \
          /e2e/bin/strace -c -f -p "$dmpid" -o "$R/$DM/strace-$dmpid.txt"
      ) >/dev/null 2>&1 &
    fi
    while :; do
      cpu_poll "$serial" "$RUN_DIR/cpu-$name.txt"
      shared_hook poll "$name" "$serial" "$domid"
      if [ -z "$BOOT_SECONDS" ] && grep -q 'E2E boot init' "$serial"; then BOOT_SECONDS=$(secs "$t0" "$(now)"); fi
      if grep -q 'E2E done' "$serial"; then GUEST_END="guest finished"; break; fi
      if ! xl domid "$name" >/dev/null 2>&1; then GUEST_END="domain ended before 'E2E done'"; break; fi
      # A device model that is gone cannot finish the guest: fail now, not at the timeout.
      if [ -n "$dmpid" ] && ! kill -0 "$dmpid" 2>/dev/null; then
        GUEST_END="device model (pid $dmpid) exited: $(tail -n 1 "$dmlog" 2>/dev/null | cut -c1-200)"; break
      fi
      why=$(tr -d '\r' <"$dmlog" 2>/dev/null | grep -a -m1 '^STUBDOM FAIL')
      if [ -n "$why" ]; then GUEST_END="stub domain: ${why#STUBDOM FAIL }"; break; fi
      if [ $SECONDS -ge $deadline ]; then GUEST_END="guest timed out after ${E2E_GUEST_TIMEOUT:-900} s"; break; fi
      sleep 0.5
    done
    # the idle window ends on its own (BOOT_IDLE_S)
    [ -z "$CPU_JOB" ] || wait "$CPU_JOB"
    local i
    for i in $(seq 1 60); do xl domid "$name" >/dev/null 2>&1 || break; sleep 0.5; done
    if xl domid "$name" >/dev/null 2>&1; then
      SHUTDOWN=destroyed
      timeout 60 xl destroy "$name" >/dev/null 2>&1
    else
      SHUTDOWN=poweroff
    fi
    sleep 1
  fi
  [ -n "$tailpid" ] && kill "$tailpid" 2>/dev/null
  shared_hook end "$name"
  tr -d '\r' <"$serial" | grep '^E2E ' >"$RUN_DIR/markers"
  echo "E2E-DOM0 $DM: $GUEST_END (boot ${BOOT_SECONDS:-?} s, end: ${SHUTDOWN:-n/a})"
  save_dm_logs "$name"
}

# stubdm under TCG: start node once so tsx's cache is warm and a broken tree
# shows its error here rather than as a libxl timeout.
preflight() {
  if [ "$DM" = stubdm-stubdom ]; then
    # = scripts/build-stubdom.sh --install: where libxl looks by default
    # (libxl__xenfirmwaredir_path()); dom0's disk is a snapshot, so this
    # lasts for this run only.
    install -D -m 644 "$STUBDOM_KERNEL" "$STUBDOM_DEFAULT_DIR/qemu-stubdom-linux-kernel"
    install -D -m 644 "$STUBDOM_RAMDISK" "$STUBDOM_DEFAULT_DIR/qemu-stubdom-linux-rootfs"
    echo "E2E-DOM0 $DM: installed kernel and rootfs in $STUBDOM_DEFAULT_DIR"
    return 0
  fi
  [ "$DM" = stubdm-dom0 ] || return 0
  local t0
  t0=$(now)
  timeout 180 /e2e/dom0/stubdm-dm --help >"$R/$DM/preflight.txt" 2>&1
  echo "E2E-DOM0 $DM: preflight '--help' exit $? in $(secs "$t0" "$(now)") s:"
  head -c 1500 "$R/$DM/preflight.txt" | sed 's/^/  | /'
}

: >"$LINES"
for DM in $DMS; do
  RUN_DIR=/e2e/run/$DM
  case $DM in
    qemu-stubdom) STUBDOM_KERNEL=/e2e/qemu-stubdom/kernel STUBDOM_RAMDISK=/e2e/qemu-stubdom/rootfs ;;
    *) STUBDOM_KERNEL=/e2e/stubdom/kernel STUBDOM_RAMDISK=/e2e/stubdom/rootfs ;;
  esac
  mkdir -p "$RUN_DIR" "$R/$DM"
  why=$(dm_unavailable)
  if [ -n "$why" ]; then
    for SCEN in $SCENARIOS; do
      case $why in SKIP*) emit "SKIP $SCEN $DM ${why#SKIP $DM }" ;; *) fail "$why" ;; esac
    done
    continue
  fi
  dm_t0=$(now)
  cp --sparse=always /e2e/img/boot.img /e2e/img/data.img /e2e/img/cd.iso "$RUN_DIR/"
  preflight
  phase preflight "$dm_t0"
  need_guest=no
  for SCEN in $SCENARIOS; do has_fn "${SCEN}_check" && need_guest=yes; done
  t0=$(now)
  [ $need_guest = yes ] && { guest_run; phase "shared guest (boot ${BOOT_SECONDS:-?} s)" "$t0"; }
  for SCEN in $SCENARIOS; do
    t0=$(now)
    if has_fn "${SCEN}_check"; then "${SCEN}_check"
    elif has_fn "${SCEN}_run"; then "${SCEN}_run"; save_dm_logs "e2e-life-$DM"; phase "$SCEN" "$t0"
    else fail "no scenario named '$SCEN' (test/e2e/scenarios/$SCEN.sh)"
    fi
  done
  phase total "$dm_t0"
done
sync
