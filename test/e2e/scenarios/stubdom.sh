# stubdom: the stub domain's kernel + rootfs booted as a plain PV domain (no
# guest, no libxl stub-domain wiring, so no 30 s limit) with `stubdom.selftest`
# on its command line: /init mounts its image, times node running the stubdm
# bundle, prints `STUBDOM selftest ...` and stops at "no xenstore target".
# Tells how long node takes to start inside a 128 MiB PV domain under this
# emulated Xen, which libxl's fixed 30 s stub-domain wait depends on.
stubdom_run() {
  [ "$DM" = stubdm-stubdom ] || { emit "SKIP $SCEN $DM only for stubdm-stubdom"; return; }
  local name="e2e-selftest" log=/var/log/xen/guest-e2e-selftest.log i line
  cat >"$RUN_DIR/$name.cfg" <<CFG
name="$name"
type="pv"
memory=128
kernel="$STUBDOM_KERNEL"
ramdisk="$STUBDOM_RAMDISK"
extra="stubdom.selftest"
on_poweroff="destroy"
on_crash="destroy"
CFG
  rm -f "$log"
  if ! timeout 120 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(tail -n 2 "$RUN_DIR/$name.create.log" | tr '\n' ' ')"; return
  fi
  for i in $(seq 1 600); do
    grep -aq 'STUBDOM FAIL' "$log" 2>/dev/null && break
    xl domid "$name" >/dev/null 2>&1 || break
    sleep 0.5
  done
  sleep 1
  timeout 60 xl destroy "$name" >/dev/null 2>&1
  cp "$log" "$R/$DM/$name.console.txt" 2>/dev/null
  line=$(tr -d '\r' <"$log" 2>/dev/null | grep -a -m1 '^STUBDOM selftest' | cut -d' ' -f3-)
  if [ -z "$line" ]; then fail "no 'STUBDOM selftest' line on the console ($log)"; return; fi
  pass $line
}
