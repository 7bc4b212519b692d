# lifecycle: xl create, pause, unpause, destroy on a guest of its own; the
# device model process (or stub domain) must be gone soon after destroy and
# its log must show no crash.
lifecycle_run() {
  local name="e2e-life-$DM" t0 t1 domid pid st dmlog
  guest_cfg "$name" >"$RUN_DIR/$name.cfg"
  t0=$(now)
  if ! timeout 120 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")"
    xl destroy "$name" >/dev/null 2>&1; return
  fi
  t1=$(now)
  domid=$(xl domid "$name")
  pid=$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)
  xl pause "$name" || { fail "xl pause failed"; xl destroy "$name"; return; }
  st=$(xl list "$name" | awk 'NR == 2 { print $5 }')
  case $st in *p*) ;; *) fail "state after xl pause is '$st'"; xl destroy "$name"; return ;; esac
  xl unpause "$name" || { fail "xl unpause failed"; xl destroy "$name"; return; }
  st=$(xl list "$name" | awk 'NR == 2 { print $5 }')
  case $st in *p*) fail "state after xl unpause is '$st'"; xl destroy "$name"; return ;; esac
  sleep 5 # the guest runs (firmware, boot loader) meanwhile
  local t2 t3 i
  t2=$(now)
  timeout 60 xl destroy "$name" >"$RUN_DIR/$name.destroy.log" 2>&1 || { fail "xl destroy failed"; return; }
  for i in $(seq 1 100); do
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || xl list "$name-dm" >/dev/null 2>&1 || break
    sleep 0.2
  done
  t3=$(now)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then fail "device model pid $pid still alive 20 s after xl destroy"; return; fi
  if xl list "$name" >/dev/null 2>&1 || xl list "$name-dm" >/dev/null 2>&1; then fail "domain still listed after xl destroy"; return; fi
  dmlog=/var/log/xen/qemu-dm-$name.log
  if [ -f "$dmlog" ] && grep -E -q 'Uncaught|Segmentation fault|core dumped|Aborted|FATAL|^ +at ' "$dmlog"; then
    fail "device model log shows a crash: $(grep -E -m1 'Uncaught|Segmentation|core dumped|Aborted|FATAL|^ +at ' "$dmlog")"
    return
  fi
  pass create_s="$(secs "$t0" "$t1")" destroy_s="$(secs "$t2" "$t3")" dm_pid="${pid:-stubdom}"
}
