# vga: a guest of its own with the standard VGA (vga="stdvga", videoram=16,
# vnc=1 on 127.0.0.1). dom0's bin/vga-tool.mjs (test/e2e/dom0/vga-tool.ts)
# drives it:
#   - text console: when the guest says "text=ready" (SeaBIOS banner, SYSLINUX,
#     Linux's VGA console untouched: the guest's console is COM1), a QMP
#     screendump, compared pixel by pixel with qemu-xen's of the same run
#     (qemu-xen runs first in E2E_DMS: its pictures stay in /e2e/run/qemu-xen/vga).
#     The guest's UUID is fixed, so SeaBIOS's "Machine UUID" line is the same
#     text in every run. At most one differing 9x16 cell passes: the cursor,
#     which QEMU blinks and stubdm draws steadily (docs/vga.md §5);
#   - keys through VNC (the port `xl vncviewer` uses, console/vnc-port): "go"
#     makes the guest load bochs-drm and print its mode, "w" makes it fill
#     /dev/fb0 with a known pattern (`yes VGA_PATTERN`), "q" lets it power off;
#   - the VNC client's copy of the screen must become the whole pattern
#     (vnc_update_ms: from the guest's "fb=written" line on COM1, as dom0 sees
#     it, to the last pattern pixel at the client; negative when the picture
#     was complete before the line reached the serial file), and so must a
#     screendump of the VBE mode;
#   - then the guest idles at its VBE mode (it waits for "q") while dom0
#     measures VGA_IDLE_S seconds of the device model's CPU (driver.sh
#     dm_cpu_window) twice: with the tool's VNC client connected and waiting
#     for an incremental update (dm_cpu_vnc_idle; vnc_idle_updates: updates
#     it got meanwhile), then with no client (dm_cpu_idle_novnc). A stub
#     domain's VNC is served by dom0's xenpv QEMU, measured over the same
#     windows (vncd_cpu_vnc_idle, vncd_cpu_idle_novnc); vnc_idle_vs_qemu_xen
#     is (DM + that QEMU) / qemu-xen's DM with a client, same guest, same run.
#     The client is the tool itself in dom0: one outstanding request, no
#     traffic and no CPU while nothing changes (vga-tool.ts step 5).
# A stub domain: libxl gives the stub a vfb/vkb whose VNC is dom0's xenpv QEMU.
# stubdm-stubdom draws the guest into that vfb (/dev/fb0, fixed 800x600: the
# guest at the top left, cropped) and reads its keyboard and pointer
# (/dev/input/event*) into the i8042 (issue #11 item 3): the tool types through
# that VNC (--vnc-crop: the pattern is checked where the framebuffer and the
# guest's mode overlap). The port: console/vnc-port of the guest (what
# `xl vncviewer` reads), else of the stub domain (where libxl records the
# query-vnc answer of the stub's xenpv QEMU); vnc_port_at= says which. qemu-stubdom
# draws nothing there: with no VNC port the same keys go in through QMP (HMP
# `sendkey`, what `xl qemu-monitor-command` does; keys=qmp). A stub domain's screendumps go to the stub's save console
# (/dev/fdset/1), which dom0's xenpv QEMU writes to /var/lib/xen/qemu-save.<domid>.
# PNG copies of every picture land in results/<dm>/vga-*.png.
# VRAM: stubdm's default keeps it in the device model and serves BAR0 through
# ioreqs; E2E_STUBDM_VRAM=guest (stubdm-dom0 only) tries guest pages instead,
# E2E_STUBDM_VRAM=both runs stubdm-dom0 once each way (see vga_run).
VGA_PATTERN=E2E-VGA-pattern-0123456789x # 27 bytes + yes's newline: 28, no divisor of a line's length
VGA_KEY_WAIT=120
VGA_IDLE_S=30
# The last key comes after the VNC check (up to 120 s), the VBE screendump and both idle windows.
VGA_LAST_KEY_WAIT=$((VGA_KEY_WAIT * 2 + VGA_IDLE_S * 2 + 120))
VGA_UUID=5a1e2e00-0000-4000-8000-00000000e2e1
# qemu-xen's pictures and figures of this run (the reference column).
VGA_REF=${VGA_REF:-/e2e/run/qemu-xen/vga}

vga_owns() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1234 ] && [ "$(cat "$d/device" 2>/dev/null)" = 0x1111 ] && return 0
  done
  return 1
}

# The next line typed on tty1 (dom0 types through VNC), or "timeout" after
# $1 seconds (default VGA_KEY_WAIT).
vga_key() {
  local k=
  read -r -t "${1:-$VGA_KEY_WAIT}" k <&3 || k=timeout
  echo "${k:-empty}" | tr -cd 'A-Za-z0-9_-'
}

vga_guest() {
  vga_owns || return 0
  # Keys go to the foreground VT (tty1); keep it open from now on so nothing
  # typed is lost, and without echo so the text screen stays as it was.
  # (a failed exec redirection would end this shell, which is the guest's init)
  [ -c /dev/tty1 ] || { echo "E2E vga error=no-tty1"; return; }
  exec 3</dev/tty1
  stty -echo <&3 2>/dev/null
  echo "E2E vga text=ready"
  echo "E2E vga key1=$(vga_key)"
  while read -r m; do insmod "/$m" 2>/dev/null; done </vga.modules
  local i=0 f=/sys/class/graphics/fb0
  while { [ ! -e $f/stride ] || [ ! -c /dev/fb0 ]; } && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
  [ -c /dev/fb0 ] || { echo "E2E vga error=no-fb0-after-bochs"; return; }
  # fbcon took the console when fb0 appeared: give it back (to the dummy
  # console bochs-drm left) and stop the cursor, so only our bytes are drawn.
  for v in /sys/class/vtconsole/vtcon*; do
    grep -q 'frame buffer' "$v/name" 2>/dev/null && echo 0 >"$v/bind"
  done
  echo 0 >/sys/class/graphics/fbcon/cursor_blink 2>/dev/null
  local w h bpp stride name n
  # The visible mode ("U:1024x768p-0"), else the virtual size (the same with drm's fbdev).
  IFS=, read -r w h <$f/virtual_size
  # shellcheck disable=SC2046 # two numbers, split on purpose
  set -- $(sed -n '1s/^[A-Za-z]*:\([0-9]*\)x\([0-9]*\).*/\1 \2/p' $f/modes 2>/dev/null)
  [ $# = 2 ] && w=$1 h=$2
  bpp=$(cat $f/bits_per_pixel) stride=$(cat $f/stride)
  name=$(tr -cd 'A-Za-z0-9._-' <$f/name)
  echo "E2E vga mode=${w}x${h}x$bpp stride=$stride fbname=$name"
  n=$((stride * h))
  # The pattern goes to /dev/fb0 in ONE write() from a file: Linux 6.1's fbdev
  # emulation (drm_fb_helper_memory_range_to_clip) turns a write of exactly one
  # whole scanline into an empty damage rectangle (the end offset modulo the line
  # length is 0, so x2 = 0), and bochs-drm's shadow buffer then never reaches
  # VRAM. `head -c N >/dev/fb0` writes 4 KiB at a time, which at 1024x768x32
  # (4096-byte lines) is exactly that: the screen kept fbcon's last picture under
  # every device model (docs/vga.md §10).
  yes "$VGA_PATTERN" | head -c "$n" >/tmp/vga-pattern
  echo "E2E vga key2=$(vga_key)"
  dd if=/tmp/vga-pattern of=/dev/fb0 bs="$n" count=1 2>/dev/null || echo "E2E vga error=fb0-write-failed"
  echo "E2E vga fb=written"
  echo "E2E vga key3=$(vga_key "$VGA_LAST_KEY_WAIT")"
  # What the guest reads back (bochs-drm's fbdev shadow buffer): after dom0's checks, off the timed path.
  local got want
  got=$(head -c "$n" /dev/fb0 | md5sum | cut -d' ' -f1)
  want=$(md5sum </tmp/vga-pattern | cut -d' ' -f1)
  [ "$got" = "$want" ] && echo "E2E vga readback=ok" || echo "E2E vga readback=bad"
}

# The value of KEY in this guest's "E2E vga ..." lines.
vga_marker() {
  tr -d '\r' <"$1" 2>/dev/null | awk -v k="$2=" '$1 == "E2E" && $2 == "vga" {
    for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }'
}

# E2E_STUBDM_VRAM=both: stubdm-dom0 boots the vga guest twice, VRAM in stubdm
# (line "vga") then as guest pages (line "vga-guestvram"), in one e2e run.
vga_run() {
  if [ "$DM" = stubdm-dom0 ] && [ "${E2E_STUBDM_VRAM:-}" = both ]; then
    vga_once ioreq
    local scen=$SCEN
    SCEN=vga-guestvram
    vga_once guest
    SCEN=$scen
  else
    vga_once "${E2E_STUBDM_VRAM:-ioreq}"
  fi
}

# vga_once VRAM: one boot; VRAM (ioreq|guest) is what stubdm-dom0 is told
# (dom0/stubdm-dm reads /run/e2e-stubdm-vram); the other DMs have their own.
vga_once() {
  # No bash arrays here: the guest's busybox sh sources this file too.
  local name="e2e-vga-$DM" serial out domid dmpid port="none" vram extra="" hasref=no res why kv i stubid="" portat=none tool
  serial=$RUN_DIR/$name.serial
  out=$RUN_DIR/$SCEN
  # Written by the device model (a dom0 DM with -runas is not root).
  rm -rf "$out" && mkdir -p "$out" && chmod 1777 "$out"
  [ -f /e2e/bin/vga-tool.mjs ] || { fail "no /e2e/bin/vga-tool.mjs (esbuild bundle failed on the host: build/e2e/vga-tool.log)"; return; }
  {
    echo "name=\"$name\""
    echo 'type="hvm"'
    echo "uuid=\"$VGA_UUID\""
    echo 'memory=256'
    echo 'vcpus=1'
    echo "disk=[ \"format=raw,vdev=hda,access=rw,target=$RUN_DIR/boot.img\" ]"
    echo "serial=\"file:$serial\""
    echo 'vga="stdvga"'
    echo 'videoram=16'
    echo 'vnc=1'
    echo 'vnclisten="127.0.0.1"'
    echo 'sdl=0'
    echo 'boot="c"'
    echo 'on_poweroff="destroy"'
    echo 'on_reboot="destroy"'
    echo 'on_crash="destroy"'
    dm_lines
  } >"$RUN_DIR/$name.cfg"
  rm -f "$serial" && : >"$serial"
  echo "$1" >/run/e2e-stubdm-vram
  if ! timeout 150 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")"
    rm -f /run/e2e-stubdm-vram
    timeout 60 xl destroy "$name" >/dev/null 2>&1
    vga_save "$name"; return
  fi
  rm -f /run/e2e-stubdm-vram # read by stubdm-dm when libxl started it
  domid=$(xl domid "$name")
  dmpid=$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)
  case $DM in
  qemu-xen) vram=guest ;; # QEMU populates VRAM as guest pages (contract §3.3)
  stubdm-dom0)
    vram=$1
    # src/devices/vga/pci.ts falls back to VRAM in the DM when guest pages fail.
    grep -q 'VRAM as guest pages failed' "/var/log/xen/qemu-dm-$name.log" 2>/dev/null && vram=guest-failed-so-ioreq ;;
  *) vram=ioreq ;; # stubdm's default: VRAM in the device model
  esac
  if is_stubdom; then
    extra="--dump-as /dev/fdset/1 --dump-file /var/lib/xen/qemu-save.$domid"
    if [ "$DM" = stubdm-stubdom ]; then
      stubid=$(xl domid "$name-dm" 2>/dev/null) # the stub domain, as stubnet.sh finds it
      port=$(xenstore-read "/local/domain/$domid/console/vnc-port" 2>/dev/null) && portat=guest
      if [ -z "$port" ] && [ -n "$stubid" ]; then
        # The xenpv QEMU may publish its port a moment after xl create returned.
        for i in $(seq 1 60); do
          port=$(xenstore-read "/local/domain/$stubid/console/vnc-port" 2>/dev/null) && { portat=stub; break; }
          sleep 0.5
        done
      fi
      [ -n "$port" ] || { fail "no console/vnc-port under /local/domain/$domid or the stub domain's (${stubid:-?}): nothing for xl vncviewer"; timeout 60 xl destroy "$name"; vga_save "$name"; return; }
      extra="$extra --vnc-crop"
    fi
  else
    port=$(xenstore-read "/local/domain/$domid/console/vnc-port" 2>/dev/null)
    [ -n "$port" ] || { fail "no console/vnc-port in xenstore for domain $domid: xl vncviewer would fail"; timeout 60 xl destroy "$name"; vga_save "$name"; return; }
  fi
  if [ "$DM" != qemu-xen ] && [ -f "$VGA_REF/text.ppm" ]; then extra="$extra --ref $VGA_REF" hasref=yes; fi
  # In the background: the idle windows are measured here while the tool holds its VNC client.
  rm -f "$RUN_DIR/vga-tool.out"
  # shellcheck disable=SC2086 # extra: words without spaces
  timeout $((${E2E_GUEST_TIMEOUT:-900} + 900)) /e2e/bin/node /e2e/bin/vga-tool.mjs --qmp "/var/run/xen/qmp-libxl-$domid" \
    --serial "$serial" --out "$out" --vnc "$port" $extra --timeout "${E2E_GUEST_TIMEOUT:-900}" --cpu-windows \
    ${dmpid:+--dm-pid "$dmpid"} </dev/null >"$RUN_DIR/vga-tool.out" 2>"$RUN_DIR/vga-tool.err" &
  tool=$!
  vga_cpu_windows "$out" "$tool" "$name" "$dmpid" "$stubid"
  wait "$tool"
  res=$(cat "$RUN_DIR/vga-tool.out" 2>/dev/null)
  echo "E2E-DOM0 $DM: vga-tool: ${res:-nothing (see $RUN_DIR/vga-tool.err)}"
  # The guest reads back its framebuffer and powers off (bounded by its own key wait).
  for i in $(seq 1 $((VGA_KEY_WAIT * 2 + 120))); do
    grep -q 'E2E done' "$serial" 2>/dev/null && break
    xl domid "$name" >/dev/null 2>&1 || break
    sleep 0.5
  done
  for i in $(seq 1 60); do xl domid "$name" >/dev/null 2>&1 || break; sleep 0.5; done
  xl domid "$name" >/dev/null 2>&1 && timeout 60 xl destroy "$name" >/dev/null 2>&1
  vga_save "$name"
  # the fallback is logged when the VGA is built, so also after a failed run
  [ "$DM" = stubdm-dom0 ] && grep -q 'VRAM as guest pages failed' "$R/$DM/qemu-dm-$name.log" 2>/dev/null && vram=guest-failed-so-ioreq
  case $res in
  OK\ *) kv=${res#OK } ;;
  FAIL\ *) fail "${res#FAIL } vram=$vram"; return ;;
  *) fail "vga-tool printed no verdict: $(tail -n 2 "$RUN_DIR/vga-tool.err" 2>/dev/null | tr '\n' ' ' | cut -c1-200)"; return ;;
  esac
  local rb key1 diff_cells bad
  rb=$(vga_marker "$serial" readback) key1=$(vga_marker "$serial" key1)
  # shellcheck disable=SC2086 # kv is a list of key=value words
  diff_cells=$(printf '%s\n' $kv | sed -n 's/^diff_cells=//p')
  # shellcheck disable=SC2086
  bad=$(printf '%s\n' $kv | sed -n 's/^vbe_bad_pixels=//p')
  [ "$DM" = qemu-xen ] && kv="match=ref $kv"
  [ $hasref = yes ] || [ "$DM" = qemu-xen ] || kv="match=n/a(no-qemu-xen-picture) $kv"
  why=""
  [ -n "$diff_cells" ] && [ "$diff_cells" != 0 ] && [ "$diff_cells" != 1 ] && why="text console differs from qemu-xen's in $diff_cells cells ($SCEN-text.png);"
  [ "$bad" = 0 ] || why="$why VBE screendump: ${bad:-?} pixels are not the pattern;"
  [ "$rb" = ok ] || why="$why guest read back ${rb:-nothing} from /dev/fb0;"
  if [ "$key1" != go ]; then why="$why keys typed through $([ "$port" = none ] && echo 'QMP sendkey' || echo VNC) did not reach the guest (key1=$key1);"; fi
  if [ -n "$why" ]; then fail "$why $kv vram=$vram"; return; fi
  if [ "$port" = none ]; then kv="$kv keys=qmp"; else kv="$kv keys=ok"; fi
  if is_stubdom; then kv="$kv vnc_port_at=$portat"; fi
  pass "$kv readback=$rb vram=$vram$(vga_cpu_keys "$out")"
}

# The dom0 QEMU (-machine xenpv) that backs stub domain $1's consoles and vfb:
# its VNC server is the one `xl vncviewer` reaches. libxl spawns it as the
# stub domain's own device model, so its pid is under the stub domain's
# image/device-model-pid (libxl_dm.c libxl__spawn_local_dm with the stub's
# domid); else the process started with "-xen-domid $1" and "-machine xenpv".
vga_vncd_pid() {
  local p c
  p=$(xenstore-read "/local/domain/$1/image/device-model-pid" 2>/dev/null)
  if [ -n "$p" ] && [ -d "/proc/$p" ]; then echo "$p"; return; fi
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
    case $c in *"-xen-domid $1 "*xenpv*) echo "${p#/proc/}"; return ;; esac
  done
}

# vga_cpu_windows OUT TOOL-PID GUEST DM-PID STUB-DOMID: while vga-tool runs,
# each time it says the guest idles at its VBE mode (OUT/idle-vnc.go: its VNC
# client connected; OUT/idle-novnc.go: none), measure VGA_IDLE_S seconds of
# the DM's CPU into OUT/cpu-W.txt (driver.sh dm_cpu_window: /proc/<pid>/stat,
# or xentop for a stub domain) and, for a stub domain, of the dom0 xenpv QEMU
# that serves its VNC into OUT/vncd-cpu-W.txt, over the same window; then let
# the tool go on (OUT/idle-W.done).
vga_cpu_windows() {
  local out=$1 tool=$2 vncd="" w j
  dm_cpu_target "$3" "$4"
  if is_stubdom && [ -n "$5" ]; then vncd=$(vga_vncd_pid "$5"); fi
  while kill -0 "$tool" 2>/dev/null; do
    for w in vnc novnc; do
      if [ ! -f "$out/idle-$w.go" ] || [ -f "$out/idle-$w.done" ]; then continue; fi
      [ "$DM" != stubdm-stubdom ] || vga_stub_cpu "$3" >"$out/stubcpu-$w.0"
      dm_cpu_window "$VGA_IDLE_S" "$out/cpu-$w.txt" </dev/null >/dev/null 2>&1 &
      j=$!
      [ -z "$vncd" ] || (DM_CPU_ID=$vncd && dm_cpu_window "$VGA_IDLE_S" "$out/vncd-cpu-$w.txt")
      wait "$j"
      [ "$DM" != stubdm-stubdom ] || vga_stub_cpu "$3" >"$out/stubcpu-$w.1"
      : >"$out/idle-$w.done"
    done
    sleep 0.5
  done
}

# vga_stub_cpu GUEST: stubdm's `info stats` CPU lines from inside the stub
# domain (its own process.cpuUsage and the stub kernel's /proc/stat cpu line,
# its interrupt and context-switch totals and /proc/interrupts by source),
# read just before and after a window (stubdm-stubdom only): the two say how much of the domain's
# busy time (xentop) is stubdm and how much the stub's kernel and other
# processes, and what woke the stub. Outside the window itself (xentop's frames frame it).
vga_stub_cpu() {
  timeout 60 xl qemu-monitor-command "$1" "info stats" 2>/dev/null | tr -d '\r' | grep -E '^/(cpu|kernel)/'
}

# vga_stub_cpu_keys DIR W: stubdm_cpu_<W>_idle (stubdm's CPU s/s over the
# window, by the stub kernel's clock), stub_busy_<W>_idle (the stub
# kernel's non-idle share of its vCPU: user+nice+system+irq+softirq ticks),
# stub_irq_<W>_per_s and stub_ctxt_<W>_per_s (its interrupts and context
# switches a second); DIR/stubirq-<W>.txt: interrupts a second by source, most first.
vga_stub_cpu_keys() {
  local a=$1/stubcpu-$2.0 b=$1/stubcpu-$2.1
  [ -s "$a" ] && [ -s "$b" ] || { printf ' stubdm_cpu_%s_idle=n/a' "$2"; return; }
  awk -v w="$2" -v dir="$1" '
    function load(f, arr,   l, n, i, kv, p) {
      while ((getline l < f) > 0) {
        p = l; sub(/:.*/, "", p); n = split(l, kv, " ")
        for (i = 2; i <= n; i++) { split(kv[i], x, "="); arr[p "/" x[1]] = x[2] }
      }
    }
    BEGIN {
      load(ARGV[1], A); load(ARGV[2], B); ARGV[1] = ARGV[2] = ""
      split("user nice system idle iowait irq softirq steal", F, " ")
      all = 0; busy = 0
      for (i = 1; i <= 8; i++) {
        k = "/cpu/kernel/" F[i] "-ticks"; d = B[k] - A[k]; all += d
        if (F[i] != "idle" && F[i] != "iowait" && F[i] != "steal") busy += d
      }
      us = (B["/cpu/process/user-us"] + B["/cpu/process/system-us"]) - (A["/cpu/process/user-us"] + A["/cpu/process/system-us"])
      if (all <= 0) { printf " stubdm_cpu_%s_idle=n/a", w; exit }
      # USER_HZ is 100: all ticks / 100 is the wall time on the stub'"'"'s single vCPU.
      s = all / 100
      printf " stubdm_cpu_%s_idle=%.4f stub_busy_%s_idle=%.4f", w, us / 1e6 / s, w, busy / all
      if (("/kernel/stat/intr" in A) && ("/kernel/stat/intr" in B))
        printf " stub_irq_%s_per_s=%.1f stub_ctxt_%s_per_s=%.1f", w, (B["/kernel/stat/intr"] - A["/kernel/stat/intr"]) / s, \
          w, (B["/kernel/stat/ctxt"] - A["/kernel/stat/ctxt"]) / s
      for (k in B) if (index(k, "/kernel/interrupts/") == 1 && (k in A) && B[k] > A[k])
        printf "%.2f %s\n", (B[k] - A[k]) / s, substr(k, 20) > (dir "/stubirq-" w ".txt.tmp")
    }' "$a" "$b"
  if [ -f "$1/stubirq-$2.txt.tmp" ]; then sort -rn "$1/stubirq-$2.txt.tmp" >"$1/stubirq-$2.txt"; rm -f "$1/stubirq-$2.txt.tmp"; fi
}

# The figures vga_cpu_windows took, as PASS-line keys (n/a: the window ran but
# gave no figure; absent: no such window, e.g. no VNC client without a port).
vga_cpu_keys() {
  local f v w mine ref
  for f in cpu-vnc:dm_cpu_vnc_idle cpu-novnc:dm_cpu_idle_novnc vncd-cpu-vnc:vncd_cpu_vnc_idle vncd-cpu-novnc:vncd_cpu_idle_novnc; do
    w=${f%%:*} w=${w#vncd-} w=${w#cpu-}
    [ -f "$1/idle-$w.go" ] || continue
    case $f in vncd-*) is_stubdom || continue ;; esac
    v=$(cat "$1/${f%%:*}.txt" 2>/dev/null)
    printf ' %s=%s' "${f#*:}" "${v:-n/a}"
  done
  if [ "$DM" = stubdm-stubdom ]; then # stubdm's `info stats`; QEMU has no such lines
    for w in vnc novnc; do [ -f "$1/idle-$w.go" ] && vga_stub_cpu_keys "$1" "$w"; done
  fi
  # What a connected client costs against qemu-xen's with the same guest (a stub domain: it and its VNC QEMU).
  ref=$(cat "$VGA_REF/cpu-vnc.txt" 2>/dev/null)
  mine=$(cat "$1/cpu-vnc.txt" 2>/dev/null)
  if [ -n "$mine" ] && is_stubdom; then
    v=$(cat "$1/vncd-cpu-vnc.txt" 2>/dev/null)
    mine=${v:+$(awk -v a="$mine" -v b="$v" 'BEGIN { printf "%.3f", a + b }')}
  fi
  if [ "$DM" != qemu-xen ] && [ -n "$ref" ] && [ -n "$mine" ]; then
    awk -v a="$mine" -v b="$ref" 'BEGIN { if (b > 0) printf " vnc_idle_vs_qemu_xen=%.2f", a / b; else printf " vnc_idle_vs_qemu_xen=n/a(qemu-xen=0)" }'
  fi
}

vga_save() {
  save_dm_logs "$1"
  cp "$RUN_DIR/vga-tool.err" "$R/$DM/vga-tool.err.txt" 2>/dev/null
  local p
  for p in "$RUN_DIR/$SCEN"/*.png; do [ -f "$p" ] && cp "$p" "$R/$DM/$SCEN-${p##*/}"; done
  return 0
}
