# dmcrash: the device model dies under a running guest. A guest whose device
# model is gone hangs on its next port access, and libxl watches the guest, not
# the stub domain; so the stub domain's /init must say why on hvc0 and shut the
# guest down as crashed (xl then applies on_crash = destroy, which takes the
# stub domain with it). stubdm is stopped the way any QMP client could stop
# it: `quit` on libxl's QMP socket, which libxl's vchan proxy carries into the
# stub domain. Only for stub domains (stubdm-stubdom, and qemu-stubdom, whose
# /init is the same): a dom0 device model has no such watchdog (neither has
# qemu-xen).
dmcrash_run() {
  is_stubdom || { emit "SKIP $SCEN $DM only for stub domains (a dom0 device model has no watchdog)"; return; }
  local name="e2e-crash-$DM" domid sock t0 t1 i log reply
  guest_cfg "$name" >"$RUN_DIR/$name.cfg"
  if ! timeout 120 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")"
    xl destroy "$name" >/dev/null 2>&1; save_dm_logs "$name"; return
  fi
  domid=$(xl domid "$name")
  sleep 5 # the guest is running its firmware: its vCPU issues ioreqs
  sock=/var/run/xen/qmp-libxl-$domid
  t0=$(now)
  reply=$(timeout 30 /e2e/bin/node -e '
    const s = require("net").connect(process.argv[1]);
    let buf = "", sent = false;
    s.on("data", (d) => {
      buf += d;
      if (!sent && buf.includes("\"QMP\"")) {
        sent = true;
        s.write("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
      }
    });
    s.on("close", () => { process.stdout.write(buf.replace(/\s+/g, " ")); });
    s.on("error", (e) => { console.log("error " + e.message); process.exit(1); });
  ' "$sock" 2>&1)
  # Gone = neither the guest nor its stub domain is listed.
  for i in $(seq 1 600); do
    xl list "$name" >/dev/null 2>&1 || xl list "$name-dm" >/dev/null 2>&1 || break
    sleep 0.2
  done
  t1=$(now)
  save_dm_logs "$name"
  log=$(cat /var/log/xen/qemu-dm-"$name"*.log 2>/dev/null | tr -d '\r')
  if xl list "$name" >/dev/null 2>&1 || xl list "$name-dm" >/dev/null 2>&1; then
    fail "guest or stub domain still listed 120 s after QMP quit (QMP said: ${reply:0:200})"
    xl destroy "$name" >/dev/null 2>&1; return
  fi
  case $reply in *'"return"'*) ;; *) fail "QMP quit was not answered: ${reply:0:200}"; return ;; esac
  echo "$log" | grep -q '^STUBDOM FAIL' || { fail "the stub domain did not say why on hvc0 (no STUBDOM FAIL line)"; return; }
  # xl applied on_crash: the guest was shut down as crashed (SHUTDOWN_crash =
  # reason code 3), not destroyed by anyone else.
  grep -q 'has shut down, reason code 3' /var/log/xen/xl-"$name".log 2>/dev/null ||
    { fail "xl did not see the guest crash: $(head -3 /var/log/xen/xl-"$name".log 2>/dev/null | tr '\n' ' ')"; return; }
  pass gone_s="$(secs "$t0" "$t1")" why="$(echo "$log" | grep -m1 '^STUBDOM FAIL' | cut -d' ' -f3- | tr ' ' '_' | cut -c1-60)"
}
