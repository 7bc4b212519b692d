#!/usr/bin/env bash
# End-to-end suite: real Xen 4.17 in QEMU TCG, PV dom0, HVM guests booted by
# stock `xl` with each device model under test. Prints one
# `PASS|FAIL|SKIP <scenario> <dm> ...` line per scenario and device model, a
# side-by-side table, and writes build/e2e/results.json.
#   E2E_DMS="qemu-xen stubdm-dom0 stubdm-stubdom"   (default: all three; also qemu-stubdom,
#                                    Debian QEMU in the same stub domain: scripts/build-qemu-stubdom.sh)
#   E2E_PROJECT=/path/to/worktree    (whose stubdm to run; default: this repository)
#   E2E_STUBDOM_BUILD=no             (take build/stubdom/{kernel,rootfs} as they are)
#   E2E_SCENARIOS="boot disk cdrom lifecycle dmcrash stubdom stubnet net"   (files in test/e2e/scenarios/;
#                                    also pxe, saverestore, abuse: README)
#   E2E_GUEST_TIMEOUT=900 (s per guest boot)  E2E_VM_TIMEOUT=3600 (s for the whole VM)
#   E2E_XEN_ARGS="sched_ratelimit_us=0"  (appended to Xen's command line: experiments with its scheduler)
#   E2E_STALL_S=900 (s of silence on the console and the work disk before the VM counts as frozen:
#                    stall_watch in lib/host.sh writes stall.txt and stops it)
#   E2E_GUEST_KERNEL=ours|debian  (the guests' kernel: scripts/build-guest-kernel.sh (default), or Debian's)
# Ends with the wall time of each phase (host builds, the VM, per DM and scenario).
# Exit: 0 all passed, 1 a scenario failed, 2 setup error.
set -euo pipefail
. "$(dirname "$0")/lib/host.sh"
need_root
export E2E_DMS=${E2E_DMS:-qemu-xen stubdm-dom0 stubdm-stubdom}
export E2E_SCENARIOS=${E2E_SCENARIOS:-boot disk cdrom lifecycle dmcrash stubdom stubnet net}
export E2E_MODE=test
START=$SECONDS
build_all
phase_begin "project (native addons, bundle, stub domain)"
prepare_project
phase_end
phase_begin "QEMU stub domain"
prepare_qemu_stubdom
phase_end
RUN=$BUILD/run-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN" && ln -sfn "$(basename "$RUN")" "$BUILD/last"
phase_begin "work disk"
build_workdisk "$RUN"
phase_end
log "artefacts ready after $((SECONDS - START)) s; booting Xen in QEMU TCG (console: $RUN/console.log)"
VM0=$SECONDS
: >"$RUN/console.log"
run_vm "$RUN" "${E2E_VM_TIMEOUT:-3600}" file &
vm=$!
# The QEMU under run_vm's timeout, for the stall watch.
for _ in $(seq 50); do qpid=$(pgrep -P "$(pgrep -P $vm -x timeout || echo $vm)" -x qemu-system-x86 || true); [ -n "$qpid" ] && break; sleep 0.2; done
[ -n "$qpid" ] && stall_watch "$RUN" "$qpid" &
# Progress: the driver's result lines and dom0 milestones as they happen.
tail --pid=$vm -n +1 -F "$RUN/console.log" 2>/dev/null |
  grep --line-buffered -a -E '^(E2E-DOM0|E2E-STAGE1|PASS|FAIL|SKIP) ' | sed -u 's/\r$//; s/^/  vm| /' >&2 &
vmrc=0
wait $vm || vmrc=$?
sleep 0.5
[ $vmrc = 0 ] || log "QEMU exited with status $vmrc$([ $vmrc = 124 ] && echo ' (timed out)')"
log "VM ran $((SECONDS - VM0)) s"
_PHASE="VM: Xen in QEMU, whole run (its parts below)" _PHASE_T0=$VM0
phase_end
# TCG starved by other load: Xen misses its HPET overflow and loses time, and
# every duration measured inside (guest uptime, dom0 timers) shrinks with it
# (seen: read_mbps=2133.3 write_mbps=0.0 in such a run).
if grep -a -q 'Platform timer appears to have unexpectedly wrapped' "$RUN/console.log"; then
  log "WARNING: Xen lost time in this run ('Platform timer ... unexpectedly wrapped' on its console): timings are unreliable"
fi
extract_results "$RUN"
R=$RUN/results
echo
[ -f "$R/lines.txt" ] && cat "$R/lines.txt"
rc=0
node --import tsx "$E2E_DIR/report.ts" "$R/lines.txt" "$BUILD/results.json" $((SECONDS - START)) \
  "$E2E_DMS" "$E2E_SCENARIOS" console="$RUN/console.log" results="$R" || rc=$?
echo
phases_print "$R/phases.txt"
echo "wall time $((SECONDS - START)) s; results: $BUILD/results.json"
if [ $rc != 0 ]; then
  echo "logs:"
  echo "  Xen + dom0 console:  $RUN/console.log"
  for f in "$R/dom0-dmesg.txt" "$R/xl-dmesg.txt" "$R/driver.txt"; do [ -f "$f" ] && echo "  $(basename "$f"):  $f"; done
  for d in "$R"/*/; do
    [ -d "$d" ] || continue
    case $(basename "$d") in xen-logs) continue ;; esac
    for f in "$d"*; do [ -f "$f" ] && echo "  $(basename "$d")/$(basename "$f"):  $f"; done
  done
  [ -d "$R/xen-logs" ] && echo "  /var/log/xen:  $R/xen-logs/"
fi
exit $rc
