# stubdom: the stub domain's kernel + rootfs booted as a plain PV domain (no
# guest, no libxl stub-domain wiring, so no 30 s limit) with `stubdom.selftest`
# on its command line: /init mounts its image, times node running the stubdm
# bundle, prints `STUBDOM selftest ...` and stops at "no xenstore target".
# Tells how long node takes to start inside a 128 MiB PV domain under this
# emulated Xen, which libxl's fixed 30 s stub-domain wait depends on.
# Runs at 128 MiB (libxl's default for a stub domain) and, for comparison, at
# 256 MiB (keys suffixed _256): what memory pressure costs the start-up.
stubdom_run() {
  is_stubdom || { emit "SKIP $SCEN $DM only for stub domains"; return; }
  local l128 l256
  l128=$(stubdom_selftest 128) || { fail "$l128"; return; }
  l256=$(stubdom_selftest 256 | sed 's/\([a-z_0-9]*\)=/\1_256=/g') || l256="selftest_256=failed"
  pass $l128 $l256
}

stubdom_selftest() { # MiB: prints the selftest's key=values, or why not (exit 1)
  local name="e2e-selftest-$1" log=/var/log/xen/guest-e2e-selftest-$1.log i line
  cat >"$RUN_DIR/$name.cfg" <<CFG
name="$name"
type="pv"
memory=$1
kernel="$STUBDOM_KERNEL"
ramdisk="$STUBDOM_RAMDISK"
extra="stubdom.selftest"
on_poweroff="destroy"
on_crash="destroy"
CFG
  rm -f "$log"
  if ! timeout 120 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    echo "xl create failed: $(tail -n 2 "$RUN_DIR/$name.create.log" | tr '\n' ' ')"; return 1
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
  [ -n "$line" ] || { echo "no 'STUBDOM selftest' line on the console ($log)"; return 1; }
  echo "$line"
}
