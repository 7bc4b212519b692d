# disk: the guest reads a known pattern from hdb (ata_piix), writes another
# that dom0 checks in the image after the guest is gone, and measures
# sequential O_DIRECT read and write throughput.
# dom0 then measures the limit on the same run: itself reading and writing
# data.img directly with the guest's block sizes and the DM's cache mode (libxl
# gives every emulated disk cache=writeback: the page cache, a flush at the
# end), which no device model can beat; the PASS line carries it and the
# ratios stubdm/limit and stubdm/qemu-xen (qemu-xen's figures of the same run,
# kept in $R/disk-qemu-xen.txt, when qemu-xen ran before).
# hdb is found by its size: sd names follow probe order, which is async, so
# /dev/sdb is the boot disk (hda) in some boots.
#
# E2E_DISK_TRACE=1 (or a number of entries; 1 is 65536), stubdm only: the
# shared guest's stubdm records its IDE events (STUBDM_DISK_TRACE: for
# stubdm-dom0 through /run/e2e-stubdm-disktrace, read by dom0/stubdm-dm; for
# stubdm-stubdom as stubdomain_cmdline="stubdm.disk_trace=N"), and dom0 appends
# HMP `info disktrace` to results/<dm>/disktrace.txt three times: when the guest
# reaches init (the firmware's PIO reads of the kernel, "=== boot"), right after
# the timed read ("=== read-done") and right after the timed write
# ("=== write-done"). For the last two the guest waits: dom0 writes
# DISK_TRACE_FLAG at DISK_TRACE_FLAG_MIB of this guest's data.img before
# creating it (and zeros it once the guest is gone, so the scenarios' own guests
# never wait), the guest then prints "E2E disk-sync <tag>" and waits for a
# line on tty1, which dom0 types with HMP `sendkey ret` once it has the trace
# (at most DISK_GATE_WAIT s: the guest's disk line says trace_gate=key or
# timeout). The PASS line gets disktrace=ok or failed(...) and the medians of
# the read and write requests and of the firmware's PIO (trace_rd_*, trace_wr_*,
# trace_pio_*; devices/ide/trace.ts says what each is). The dumps and the wait
# fall inside dm_cpu_disk's window: compare that figure from untraced runs only.
DISK_TRACE_FLAG=E2E-DISKTRACE
DISK_TRACE_FLAG_MIB=80 # past what the guest reads (0-64 MiB) and writes (1-2, 8-24 MiB)
DISK_GATE_WAIT=120

# In the guest: is this boot's disk traced (dom0 wrote the flag into hdb)?
disk_trace_flag() {
  [ "$(dd if="$1" bs=512 skip=$((DISK_TRACE_FLAG_MIB * 2048)) count=1 2>/dev/null | head -c ${#DISK_TRACE_FLAG} | tr -d '\000')" = "$DISK_TRACE_FLAG" ]
}

# In the guest, after a timed transfer: say so, and wait while dom0 reads the
# trace (dom0 types a line on tty1, fd 3, when it has it). Keeps the worst
# outcome in $gate (key, then timeout).
disk_trace_gate() {
  local k
  echo "E2E disk-sync $1"
  if read -r -t "$DISK_GATE_WAIT" k <&3; then [ -n "$gate" ] || gate=key; else gate=timeout; fi
}

disk_guest() {
  dev=
  for b in /sys/block/sd*; do [ "$(cat "$b/size")" = "$DATA_SECTORS" ] && dev=/dev/${b##*/}; done
  if [ -z "$dev" ]; then echo "E2E disk error=no-disk-of-$DATA_SECTORS-sectors"; return; fi
  drv=none
  ls /sys/bus/pci/drivers/ata_piix 2>/dev/null | grep -q '^0000:' && drv=ata_piix
  # Traced (E2E_DISK_TRACE): dom0's keys come in on the foreground VT; keep it open from
  # now on so none is lost (a failed exec redirection would end this shell, the guest's init).
  local traced="" gate=""
  if disk_trace_flag "$dev"; then
    if [ -c /dev/tty1 ]; then
      traced=yes
      exec 3</dev/tty1
      stty -echo <&3 2>/dev/null
    else
      gate=no-tty1
    fi
  fi
  dd if=$dev of=/tmp/got bs=64k count=16 2>/dev/null
  rd=$(md5sum </tmp/got | cut -d' ' -f1)
  if [ "$rd" = "$DATA_MD5" ]; then rd=ok; else
    # Say what went wrong, in one word: size read, differing bytes, first
    # difference, and whether an O_DIRECT re-read is right.
    yes E2E-DATA | head -c 1048576 >/tmp/exp
    rd="bad,md5:$rd,bytes:$(wc -c </tmp/got),ndiff:$(cmp -l /tmp/exp /tmp/got 2>/dev/null | wc -l)"
    rd="$rd,first:$(cmp /tmp/exp /tmp/got 2>&1 | sed -n 's/.*char \([0-9]*\).*/\1/p')"
    [ "$(dd if=$dev bs=64k count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = "$DATA_MD5" ] &&
      rd="$rd,direct:ok" || rd="$rd,direct:bad"
    rm -f /tmp/exp
  fi
  rm -f /tmp/got
  yes E2E-WRITTEN | head -c 1048576 | dd of=$dev bs=64k seek=16 iflag=fullblock conv=fsync 2>/dev/null
  echo 3 >/proc/sys/vm/drop_caches
  wr=bad
  [ "$(dd if=$dev bs=64k skip=16 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = "$WRITE_MD5" ] && wr=ok
  # the marks frame the timed I/O for the DM's CPU figure (dm_cpu_disk)
  echo "E2E mark disk0"
  t0=$(cut -d' ' -f1 /proc/uptime)
  dd if=$dev of=/dev/null bs=1M count=64 iflag=direct 2>/tmp/dd-r
  t1=$(cut -d' ' -f1 /proc/uptime)
  t1w=$t1 # the write's start: after dom0 read the trace, when traced
  [ -z "$traced" ] || { disk_trace_gate read-done; t1w=$(cut -d' ' -f1 /proc/uptime); }
  dd if=/dev/zero of=$dev bs=1M count=16 seek=8 oflag=direct conv=fsync 2>/tmp/dd-w
  t2=$(cut -d' ' -f1 /proc/uptime)
  [ -z "$traced" ] || { disk_trace_gate write-done; exec 3<&-; }
  echo "E2E mark disk1"
  # dd's own summary and the guest clocksource: a failed dd or a stalled clock
  # shows here instead of as an impossible MB/s figure.
  echo "E2E diskdd cs=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)" \
    "read=$(tail -n 1 /tmp/dd-r | tr ' ' _) write=$(tail -n 1 /tmp/dd-w | tr ' ' _)"
  echo "E2E disk driver=$drv read=$rd write=$wr $(echo "$t0 $t1 $t1w $t2" |
    awk '{ r = $2 - $1; w = $4 - $3; printf "read_mbps=%.1f write_mbps=%.1f", (r > 0 ? 64 / r : 0), (w > 0 ? 16 / w : 0) }')${gate:+ trace_gate=$gate}"
}

disk_check() {
  local got
  [ -z "$(marker disk error)" ] || { fail "guest: $(marker disk error)"; return; }
  [ -n "$(marker disk driver)" ] || { fail "no 'E2E disk' marker ($GUEST_END)"; return; }
  [ "$(marker disk driver)" = ata_piix ] || { fail "hdb not driven by ata_piix (driver=$(marker disk driver))"; return; }
  [ "$(marker disk read)" = ok ] || { fail "guest read a wrong pattern from hdb ($(marker disk read))"; return; }
  [ "$(marker disk write)" = ok ] || { fail "guest read back a wrong pattern after writing hdb"; return; }
  got=$(dd if="$RUN_DIR/data.img" bs=64k skip=16 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
  [ "$got" = "$WRITE_MD5" ] || { fail "pattern the guest wrote is not in data.img (md5 $got)"; return; }
  local rd wr lim t0 t1 t2 q=""
  rd=$(marker disk read_mbps) wr=$(marker disk write_mbps)
  # The guest is gone; the limit writes the zeros the guest wrote to the same place.
  t0=$(now)
  dd if="$RUN_DIR/data.img" of=/dev/null bs=1M count=64 2>/dev/null
  t1=$(now)
  dd if=/dev/zero of="$RUN_DIR/data.img" bs=1M count=16 seek=8 conv=notrunc,fsync 2>/dev/null
  t2=$(now)
  lim=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { r = b - a; w = c - b;
    printf "%.1f %.1f", (r > 0 ? 64 / r : 0), (w > 0 ? 16 / w : 0) }')
  [ "$DM" = qemu-xen ] && echo "$rd $wr" >"$R/disk-qemu-xen.txt"
  [ "$DM" != qemu-xen ] && [ -s "$R/disk-qemu-xen.txt" ] && q=$(cat "$R/disk-qemu-xen.txt")
  pass read_mbps="$rd" write_mbps="$wr" $(awk -v rd="$rd" -v wr="$wr" -v lim="$lim" -v q="$q" 'BEGIN {
    split(lim, l, " "); printf "limit_read_mbps=%s limit_write_mbps=%s", l[1], l[2]
    if (l[1] > 0) printf " read_of_limit=%.2f", rd / l[1]
    if (l[2] > 0) printf " write_of_limit=%.2f", wr / l[2]
    if (q != "") { split(q, x, " ")
      if (x[1] > 0) printf " read_vs_qemu=%.2f", rd / x[1]
      if (x[2] > 0) printf " write_vs_qemu=%.2f", wr / x[2] } }') \
    $(cpu_rate "$RUN_DIR/cpu-e2e-$DM.txt" disk0 disk1 dm_cpu_disk) $(disk_trace_keys)
}

# ---- E2E_DISK_TRACE, in dom0 (see the top of this file) ----

# Entries of the disk trace for this run's stubdm (empty: none): E2E_DISK_TRACE=1 is 65536.
disk_trace_entries() {
  case $DM in stubdm-*) ;; *) return 0 ;; esac
  case ${E2E_DISK_TRACE:-} in '' | 0) ;; 1) echo 65536 ;; *[!0-9]*) ;; *) echo "$E2E_DISK_TRACE" ;; esac
}

# disk_trace_mark DATA-IMG TEXT: TEXT (or zeros, when empty) at the flag's place in the image.
disk_trace_mark() {
  { printf '%s' "$2"; head -c $((512 - ${#2})) /dev/zero; } |
    dd of="$1" bs=512 seek=$((DISK_TRACE_FLAG_MIB * 2048)) count=1 conv=notrunc status=none
}

# Before the shared guest is created: the trace for its stubdm (a file dom0/stubdm-dm reads,
# or the stub domain's command line), the flag that makes its disk_guest wait for dom0.
disk_shared_cfg() {
  local n
  n=$(disk_trace_entries)
  DISK_TRACE_SEEN=""
  # The shared guest's dumps; another boot of it (abuse's fresh guest) keeps its own.
  DISK_TRACE_FILE=$R/$DM/disktrace.txt
  [ "$1" = "e2e-$DM" ] || DISK_TRACE_FILE=$R/$DM/disktrace-$1.txt
  [ -n "$n" ] || return 0
  disk_trace_mark "$RUN_DIR/data.img" "$DISK_TRACE_FLAG" >&2
  mkdir -p "$R/$DM" && rm -f "$DISK_TRACE_FILE"
  # The stub domain's /init turns this into STUBDM_DISK_TRACE (rootfs/lib/stubdom.sh cmdline_env).
  if is_stubdom; then echo "stubdomain_cmdline=\"stubdm.disk_trace=$n\""; else echo "$n" >/run/e2e-stubdm-disktrace; fi
}

disk_shared_created() { rm -f /run/e2e-stubdm-disktrace; } # read by stubdm-dm when libxl started it

# The guest's scenarios after the shared guest boot their own guests from the same image: they must not wait.
disk_shared_end() {
  [ -n "$(disk_trace_entries)" ] && disk_trace_mark "$RUN_DIR/data.img" ""
  return 0
}

# disk_trace_dump DOMID TAG: append HMP info disktrace to results/<dm>/disktrace.txt under "=== TAG".
disk_trace_dump() {
  local out=${DISK_TRACE_FILE:-$R/$DM/disktrace.txt}
  { echo "=== $2 $(date -u +%T)"; timeout 120 xl qemu-monitor-command "$1" "info disktrace" 2>&1 | tr -d '\r'; } >>"$out"
  echo "E2E-DOM0 $DM: disk trace $2: $(grep -c '' "$out") lines in $out" >&2
}

# Each 0.5 s while the shared guest runs: the trace at guest init (no wait), and after each timed
# transfer the guest announces ("E2E disk-sync TAG"), then the key that lets it go on.
disk_shared_poll() {
  local serial=$2 domid=$3 tag
  [ -n "$(disk_trace_entries)" ] && [ -n "$domid" ] || return 0
  for tag in $(tr -d '\r' <"$serial" | sed -n -e 's/^E2E boot init.*/boot/p' -e 's/^E2E disk-sync \([a-z-]*\)$/\1/p'); do
    case " $DISK_TRACE_SEEN " in *" $tag "*) continue ;; esac
    DISK_TRACE_SEEN="$DISK_TRACE_SEEN $tag"
    disk_trace_dump "$domid" "$tag"
    # The guest waits after each timed transfer (not at init) until a line comes on tty1.
    [ "$tag" = boot ] || timeout 60 xl qemu-monitor-command "$domid" "sendkey ret" >/dev/null 2>&1
  done
}

# The PASS line's trace keys (nothing when not tracing): disktrace=ok|failed(why), then from
# each dump its summary line's medians, prefixed trace_pio_ (boot), trace_rd_, trace_wr_.
disk_trace_keys() {
  local f=${DISK_TRACE_FILE:-$R/$DM/disktrace.txt} why=""
  [ -n "$(disk_trace_entries)" ] || return 0
  [ -s "$f" ] || why="no-dump"
  [ -z "$why" ] && ! grep -q '^disktrace: [0-9]* events' "$f" && why="no-trace-in-dump"
  [ -z "$why" ] && [ "$(marker disk trace_gate)" != key ] && why="gate-$(marker disk trace_gate)"
  echo "disktrace=${why:+failed(}${why:-ok}${why:+)}"
  disk_trace_section "$f" boot pio trace_pio_ "ioreqs_per_sector dm_us cmds sectors"
  disk_trace_section "$f" read-done read trace_rd_ "kib ioreqs dm_us gap_ms backend_ms irq_ack_ms req_ms dm_ms"
  disk_trace_section "$f" write-done write trace_wr_ "kib ioreqs dm_us gap_ms backend_ms irq_ack_ms req_ms dm_ms"
}

# disk_trace_section FILE TAG LINE PREFIX "KEYS": KEYS of the "disktrace LINE:" summary in the
# dump under "=== TAG", each as PREFIXkey=value.
disk_trace_section() {
  awk -v tag="=== $2 " -v line="disktrace $3:" -v p="$4" -v keys="$5" '
    index($0, tag) == 1 { on = 1; next }
    /^=== / { on = 0 }
    on && index($0, line) == 1 { for (i = 3; i <= NF; i++) { n = index($i, "="); v[substr($i, 1, n - 1)] = substr($i, n + 1) } }
    END { k = split(keys, want, " "); for (j = 1; j <= k; j++) if (want[j] in v) printf " %s%s=%s", p, want[j], v[want[j]] }' "$1" 2>/dev/null
}
