#!/usr/bin/env bash
# Demo: real Xen 4.17 in QEMU TCG; dom0 boots one HVM guest whose device model
# is stubdm (in dom0, --no-stubdom) and shows the guest's serial console as it
# runs (firmware -> SYSLINUX -> Linux -> the e2e checks), then the results.
# Same machinery and cache as `npm run e2e`. Needs root.
#   E2E_DMS=stubdm-dom0 (or qemu-xen to compare)  E2E_SCENARIOS="boot disk cdrom"
# QEMU's console is this terminal: Ctrl-A X quits.
set -euo pipefail
. "$(dirname "$0")/lib/host.sh"
need_root
export E2E_DMS=${E2E_DMS:-stubdm-dom0}
export E2E_SCENARIOS=${E2E_SCENARIOS:-boot disk cdrom}
export E2E_MODE=demo
build_all
prepare_project
RUN=$BUILD/demo
rm -rf "$RUN" && mkdir -p "$RUN"
build_workdisk "$RUN"
log "booting Xen in QEMU TCG; dom0 then starts the guest with $E2E_DMS and shows its serial console"
run_vm "$RUN" "${E2E_VM_TIMEOUT:-1200}" stdio || true
extract_results "$RUN"
echo
[ -f "$RUN/results/lines.txt" ] && cat "$RUN/results/lines.txt"
echo "logs: $RUN/results/"
