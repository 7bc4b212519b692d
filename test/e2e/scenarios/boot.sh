# boot: firmware to guest init. The guest prints its marker first thing in
# init; the driver times `xl create` to that marker as it appears in the
# guest's serial log. shutdown= says whether the guest's poweroff ended the
# domain (poweroff) or the driver had to destroy it.
boot_guest() { echo "E2E boot init uptime=$(cut -d' ' -f1 /proc/uptime)"; }

# After every other scenario's guest part, on the shared boot only (the net,
# pxe and stubnet guests have a NIC; saverestore's guest never gets here), two
# figures the device models are compared on (issue #16):
#   md5_mbps     the guest's CPU: md5sum of 16 MiB already in RAM, timed by the
#                guest; no device is touched, so a device model that burns
#                the host's CPU shows as a slower guest (under TCG both share
#                the same 2 host cores)
#   dm_cpu_idle  the DM's CPU seconds per second while the guest sleeps:
#                dom0 measures a fixed BOOT_IDLE_S window from the moment it
#                sees "E2E mark idle" (driver.sh dm_cpu_window); the guest
#                sleeps 5 s longer, for dom0's 0.5 s polling and xentop's start
#   pio_rtt_us   one ioreq round trip as the guest sees it: the median of 500
#                reads of COM1's scratch register (guest/rtt.c; also its p90
#                and min), what every register access of a driver pays
#   dm_rss_mib   the DM's resident memory: a dom0 DM's VmRSS at the end of that
#                window; in a stub domain what its /init last reported
#                (stubdm_rss_mib, the DM process's VmRSS, stubdm's or QEMU's)
BOOT_IDLE_S=15
boot_idle_guest() {
  local d t0 t1
  for d in /sys/bus/pci/devices/*; do
    case $(cat "$d/class" 2>/dev/null) in 0x02*) return 0 ;; esac
  done
  yes E2E-CPU | head -c 8388608 >/tmp/cpu
  t0=$(cut -d' ' -f1 /proc/uptime)
  md5sum /tmp/cpu /tmp/cpu >/dev/null
  t1=$(cut -d' ' -f1 /proc/uptime)
  rm -f /tmp/cpu
  echo "E2E boot md5_mbps=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b > a ? 16 / (b - a) : 0) }')"
  e2e-rtt 500
  echo "E2E mark idle"
  sleep $((BOOT_IDLE_S + 5))
}

# stubdm-stubdom: what the stub domain's /init printed on hvc0, which libxl
# logs to qemu-dm-<guest>.log (rootfs/lib/stubdom.sh): `STUBDOM ready
# dm_start_s= ramdisk_mib= ...` once, then `STUBDOM mem stub_mem_used_mib=
# stubdm_rss_mib=` every 10 s (the last one is taken), or `STUBDOM FAIL why`.
# dm_start_s = stubdm exec to ready; ready_s = stub kernel start to ready (QMP socket);
# running_s = stub kernel start to state=running (/init writes it as soon as stubdm is
# exec'd; older images and stubdom.wait_ready: stubdm, just before ready, so ready_s);
# margin_s = 30 - running_s, what is left of libxl's fixed 30 s wait for state=running
# (LIBXL_STUBDOM_START_TIMEOUT, counted from the stub domain's unpause, a few ms before its
# kernel's uptime starts). dom0_busy=1: E2E_BUSY ran a CPU hog in dom0 during xl create.
stubdom_keys() {
  local f=/var/log/xen/qemu-dm-e2e-$DM.log
  is_stubdom && [ -f "$f" ] || return 0
  tr -d '\r' <"$f" | awk '$1 == "STUBDOM" && ($2 == "ready" || $2 == "mem") {
      for (i = 3; i <= NF; i++) { n = index($i, "="); if (n) v[substr($i, 1, n - 1)] = substr($i, n + 1) } }
    END { if ("dm_start_s" in v) { printf "ramdisk_mib=%s stub_mem_used_mib=%s stubdm_rss_mib=%s dm_start_s=%s ready_s=%s stub_mem_total_mib=%s", \
      v["ramdisk_mib"], v["stub_mem_used_mib"], v["stubdm_rss_mib"], v["dm_start_s"], v["boot_to_ready_s"], v["stub_mem_total_mib"]
      r = ("boot_to_running_s" in v) ? v["boot_to_running_s"] : v["boot_to_ready_s"]
      if (r != "") printf " running_s=%s margin_s=%.1f", r, 30 - r } }'
  if [ "${E2E_BUSY:-0}" = 1 ]; then printf ' dom0_busy=1'; fi
}
stubdom_failure() {
  local f=/var/log/xen/qemu-dm-e2e-$DM.log
  is_stubdom && [ -f "$f" ] || return 0
  tr -d '\r' <"$f" | grep -m1 '^STUBDOM FAIL' | sed 's/^STUBDOM FAIL/; stub domain:/'
}

# stubdm, in dom0 or in the stub domain: `xl create` to stubdm's "device model
# running" log line (a stub domain's clock is Xen's wall clock too), i.e. how long
# libxl and the stub domain take before stubdm serves ioreqs. The line is text
# (`2026-12-02T14:40:34.822Z INFO  stubdm: device model running ...`, the default)
# or, with --log-format json, pino's JSON with epoch ms in "time".
dm_ready_key() {
  local f=/var/log/xen/qemu-dm-e2e-$DM.log ms line
  case $DM in stubdm-*) ;; *) return 0 ;; esac
  line=$(tr -d '\r' <"$f" 2>/dev/null | grep -a -m1 -E '^[0-9T:.-]+Z [A-Z]+ +stubdm: device model running|"msg":"device model running"')
  case $line in
    '{'*) ms=$(echo "$line" | sed -n 's/.*"time":\([0-9]*\).*/\1/p') ;;
    ?*) ms=$(date -u -d "${line%% *}" +%s%3N 2>/dev/null) ;;
    *) ms="" ;;
  esac
  [ -n "$ms" ] && [ -n "${CREATE_T0:-}" ] || return 0
  awk -v a="$CREATE_T0" -v b="$ms" 'BEGIN { printf "create_to_ready_s=%.1f", b / 1000 - a }'
}

# run=package on stubdm-dom0's line when dom0/stubdm-dm ran the npm package
# (E2E_STUBDM_RUN=package): its own words in the DM log, not the setting.
dm_run_key() {
  [ "$DM" = stubdm-dom0 ] || return 0
  grep -q '^stubdm-dm: running the npm package' "/var/log/xen/qemu-dm-e2e-$DM.log" 2>/dev/null && echo run=package
}

boot_check() {
  [ -n "$BOOT_SECONDS" ] || { fail "no 'E2E boot init' marker on the guest serial ($GUEST_END)$(stubdom_failure)"; return; }
  local idle md5 stub rss rtt k v
  idle=$(cat "$RUN_DIR/cpu-e2e-$DM.txt.idle" 2>/dev/null) md5=$(marker boot md5_mbps) stub=$(stubdom_keys)
  rtt=""
  for k in pio_rtt_us pio_rtt_p90_us pio_rtt_min_us; do v=$(marker boot "$k"); [ -z "$v" ] || rtt="$rtt $k=$v"; done
  rss=$(cat "$RUN_DIR/cpu-e2e-$DM.txt.idle.rss" 2>/dev/null)
  [ -n "$rss" ] || rss=$(echo "$stub" | sed -n 's/.*stubdm_rss_mib=\([0-9.][0-9.]*\).*/\1/p')
  pass seconds="$BOOT_SECONDS" kernel_to_init="$(marker boot uptime)" shutdown="${SHUTDOWN:-none}" $stub $(dm_ready_key) $(dm_run_key) \
    ${md5:+md5_mbps=$md5} $rtt ${idle:+dm_cpu_idle=$idle} ${rss:+dm_rss_mib=$rss}
}
