# abuse: a hostile guest on real Xen. A guest of its own runs test/e2e/guest/abuse.c for
# E2E_ABUSE_SECONDS (default 120): seeded random accesses to every port and MMIO range the
# device model serves, random PCI config writes (BARs, command), random PRD tables and e1000
# descriptor rings in its own pages with the engines started, REP INS/OUTS (what it excludes,
# and why: the header of abuse.c). Then dom0 destroys it, and a fresh guest on the same dom0
# boots with pristine images and must pass the `boot` and `disk` checks. This covers what the
# simulator's fuzzer cannot: real event channels, the FFI and the mapcache under hostile load.
#
# Judged (stubdm-dom0, stubdm-stubdom): the device model stayed up until the destroy (dom0:
# its pid; stub domain: `<guest>-dm` listed and no `STUBDOM FAIL`), its log shows no crash,
# its memory stayed under the bound below, dom0's kernel logged no Oops/BUG, the guest lived
# through the whole period, and the fresh guest passed. For the baselines (qemu-xen,
# qemu-stubdom) the same checks are reported, not judged: PASS with dm_survived=no and
# finding=... says what QEMU did.
# Keys: abuse_s accesses (what the guest did; from its last progress line if it died) seed,
# dm_rss_mib (dom0 DMs: peak VmRSS, sampled every 5 s) or stub_mem_used_mib (stub domains:
# peak of /init's `STUBDOM mem` lines; they come every 60 s after the first 3 minutes, so
# mem_samples says how many fell in the run), fresh_boot=ok.
# Knobs: E2E_ABUSE_SECONDS, E2E_ABUSE_SEED (0 = the guest picks one; it is printed, give it
# back to replay), E2E_ABUSE_DEVICES (default "nic": an e1000 on xenbr0 for its MMIO BAR,
# I/O BAR and rings; add "vga" for stdvga's ports, frame buffer and 0xA0000 window; "" for the
# base machine only), E2E_ABUSE_RSS_MAX_MIB, E2E_ABUSE_STUB_MAX_MIB.
ABUSE_SECTORS=8192 # the parameter disk (hdb), found by this size in the guest
# Bounds. stubdm in dom0 runs at 80-130 MiB RSS with a guest; 256 leaves room for node's
# heap limit and says "it did not grow with the abuse". A 128 MiB stub domain has 114.6 MiB
# usable and 65-85 in use with a guest (rootfs/STARTUP.md, README): 104 leaves it 10 MiB free.
ABUSE_RSS_MAX_MIB=${E2E_ABUSE_RSS_MAX_MIB:-256}
ABUSE_STUB_MAX_MIB=${E2E_ABUSE_STUB_MAX_MIB:-104}

# Guest side, first of the scenarios' guest parts (files run in name order): only in a
# guest whose hdb is the parameter disk; it never returns there (dom0 destroys the guest).
abuse_guest() {
  local b dev="" hdr secs seed d n=0
  for b in /sys/block/sd*; do [ "$(cat "$b/size" 2>/dev/null)" = "$ABUSE_SECTORS" ] && dev=/dev/${b##*/}; done
  [ -n "$dev" ] || return 0
  hdr=$(dd if="$dev" bs=512 count=1 2>/dev/null | head -n 1)
  case $hdr in "E2E-ABUSE "*) ;; *) return 0 ;; esac
  secs=$(echo "$hdr" | sed -n 's/.* secs=\([0-9]*\).*/\1/p')
  seed=$(echo "$hdr" | sed -n 's/.* seed=\([0-9a-fx]*\).*/\1/p')
  # The guest's own drivers must not fight over the hardware: the IDE function and the
  # keyboard controller are unbound (the disks go, the program needs none: it runs from the
  # initramfs); the serial driver stays (the console), the program writes COM1 itself.
  for d in /sys/bus/pci/drivers/ata_piix/0000:*; do
    [ -e "$d" ] && echo "${d##*/}" >/sys/bus/pci/drivers/ata_piix/unbind && n=$((n + 1))
  done
  echo i8042 >/sys/bus/platform/drivers/i8042/unbind 2>/dev/null
  # Random i8042 traffic could spell Alt-SysRq-B; and our DMA pages must not be migrated.
  echo 0 >/proc/sys/kernel/sysrq
  echo 0 >/proc/sys/vm/compact_unevictable_allowed 2>/dev/null
  echo "E2E abuse-guest unbound=$n secs=$secs"
  /bin/e2e-abuse "$secs" "$seed" </dev/null
  echo "E2E abuse-exit rc=$?"
  while :; do sleep 3600; done
}

# dom0 side helpers
abuse_is_baseline() { case $DM in qemu-*) return 0 ;; *) return 1 ;; esac; }
abuse_cfg() { # NAME DIR: the abuse guest (its own copies of the images) with the device-model lines
  local vga=none vif=""
  case " ${E2E_ABUSE_DEVICES-nic} " in *" vga "*) vga=stdvga ;; esac
  case " ${E2E_ABUSE_DEVICES-nic} " in *" nic "*) vif='vif=[ "model=e1000,bridge=xenbr0,mac=00:16:3e:5e:00:0a" ]' ;; esac
  cat <<CFG
name="$1"
type="hvm"
memory=256
vcpus=1
disk=[ "format=raw,vdev=hda,access=rw,target=$2/boot.img",
       "format=raw,vdev=hdb,access=rw,target=$2/params.img",
       "format=raw,vdev=hdc,access=ro,devtype=cdrom,target=$2/cd.iso" ]
$vif
serial="file:$2/$1.serial"
vnc=0
sdl=0
vga="$vga"
boot="c"
on_poweroff="destroy"
on_reboot="destroy"
on_crash="destroy"
CFG
  dm_lines
}
# abuse_key FILE SCEN KEY: the last value of KEY in the serial's "E2E SCEN" lines
abuse_key() {
  # The guest's progress dots share the serial line with its markers ("....E2E abuse done=1 ..."):
  # a marker starts wherever "E2E abuse" does (session 6's first run printed accesses=? without this).
  tr -d '\r' <"$1" 2>/dev/null | sed 's/.*\(E2E abuse\)/\1/' | awk -v s="$2" -v k="$3=" '$1 == "E2E" && $2 == s {
    for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }'
}
abuse_oopses() { dmesg 2>/dev/null | grep -c -E 'BUG:|Oops|general protection fault|kernel BUG|WARNING: CPU'; }

abuse_run() {
  local name="e2e-abuse-$DM" dir=$RUN_DIR/abuse secs=${E2E_ABUSE_SECONDS:-120} serial domid dmpid="" \
    dmlog t_start="" deadline problems="" guest_end="" rss=0 r oops0 acc seed done_s stub_max="" samples=0
  [ -d /sys/class/net/xenbr0 ] || { ip link add xenbr0 type bridge && ip link set xenbr0 up; }
  rm -rf "$dir" && mkdir -p "$dir"
  # Copies: the abuse writes random sectors to every disk it is given.
  cp --sparse=always /e2e/img/boot.img /e2e/img/cd.iso "$dir/"
  truncate -s $((ABUSE_SECTORS * 512)) "$dir/params.img"
  printf 'E2E-ABUSE secs=%s seed=%s \n' "$secs" "${E2E_ABUSE_SEED:-0}" | dd of="$dir/params.img" conv=notrunc status=none
  serial=$dir/$name.serial dmlog=/var/log/xen/qemu-dm-$name.log
  : >"$serial"
  abuse_cfg "$name" "$dir" >"$dir/$name.cfg"
  oops0=$(abuse_oopses)
  if ! timeout 150 xl create "$dir/$name.cfg" >"$dir/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$dir/$name.create.log")"
    timeout 60 xl destroy "$name" >/dev/null 2>&1; abuse_save "$name" "$dir"; return
  fi
  domid=$(xl domid "$name" 2>/dev/null)
  is_stubdom || dmpid=$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)
  # Boot, then the abuse period (bounded), sampling the DM as it goes.
  deadline=$((SECONDS + ${E2E_GUEST_TIMEOUT:-900}))
  while :; do
    if [ -z "$t_start" ] && grep -aq 'E2E abuse-start' "$serial"; then
      t_start=$SECONDS deadline=$((SECONDS + secs + 600))
    fi
    grep -aq 'E2E abuse done=' "$serial" && break
    grep -aq 'E2E abuse error=\|E2E abuse-exit rc=[1-9]' "$serial" && { guest_end="abuse program failed: $(tr -d '\r' <"$serial" | grep -a -m1 'E2E abuse error=\|E2E abuse-exit' | cut -c1-120)"; break; }
    if ! xl domid "$name" >/dev/null 2>&1; then guest_end="guest ended after $((SECONDS - ${t_start:-SECONDS})) s of abuse"; break; fi
    if [ -n "$dmpid" ]; then
      r=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$dmpid/status" 2>/dev/null)
      if [ -z "$r" ]; then problems+="device model pid $dmpid exited under the guest; "; break; fi
      [ "$r" -gt "$rss" ] && rss=$r
    fi
    if is_stubdom && ! xl domid "$name-dm" >/dev/null 2>&1; then problems+="stub domain $name-dm gone under the guest; "; break; fi
    [ $SECONDS -ge $deadline ] && { guest_end="timed out ($([ -n "$t_start" ] && echo "no result after $((SECONDS - t_start)) s" || echo "abuse never started"))"; break; }
    sleep 5
  done
  # The DM must still be there when dom0 destroys the guest.
  if [ -n "$dmpid" ] && ! kill -0 "$dmpid" 2>/dev/null && [ -z "$problems" ]; then problems+="device model pid $dmpid exited before the destroy; "; fi
  if is_stubdom && [ -z "$problems" ] && ! xl domid "$name-dm" >/dev/null 2>&1; then problems+="stub domain gone before the destroy; "; fi
  # The log up to here is the abuse period; what the teardown adds is judged apart (below).
  local pre=0
  [ -f "$dmlog" ] && pre=$(wc -c <"$dmlog")
  timeout 60 xl destroy "$name" >/dev/null 2>&1
  for _ in $(seq 1 100); do
    { [ -n "$dmpid" ] && kill -0 "$dmpid" 2>/dev/null; } || xl list "$name-dm" >/dev/null 2>&1 || break
    sleep 0.2
  done
  { [ -n "$dmpid" ] && kill -0 "$dmpid" 2>/dev/null; } && problems+="device model pid $dmpid alive 20 s after xl destroy; "
  xl list "$name-dm" >/dev/null 2>&1 && problems+="stub domain alive 20 s after xl destroy; "
  abuse_save "$name" "$dir"
  # During the abuse: a crash, the stub domain's /init saying stubdm died, or (stubdm) an
  # exception that reached the ioreq loop or the process (stubdm answers those and keeps
  # running, but each is a bug the guest found). After the destroy: only a crash (a device
  # model losing its guest may log errors on its way out).
  # FATAL: a fatal line in stubdm's text log (its level name) or QEMU's; "level":60 the same with --log-format json.
  local logkib=0 hard='Uncaught|Segmentation fault|core dumped|Aborted|FATAL|"level":60|^ +at '
  if [ -f "$dmlog" ]; then
    r=$(head -c "$pre" "$dmlog" | tr -d '\r' | grep -a -E -m1 "$hard|^STUBDOM FAIL|device threw while serving|uncaught exception|unhandled rejection" | cut -c1-160)
    [ -n "$r" ] && problems+="DM log: $r; "
    r=$(tail -c +$((pre + 1)) "$dmlog" | tr -d '\r' | grep -a -E -m1 "$hard" | cut -c1-160)
    [ -n "$r" ] && problems+="DM log after the destroy: $r; "
    logkib=$(($(wc -c <"$dmlog") / 1024))
  fi
  if is_stubdom; then
    # peak stub_mem_used_mib of /init's lines (the `ready` line and every `mem` line)
    r=$(tr -d '\r' <"$dmlog" 2>/dev/null | awk '$1 == "STUBDOM" && ($2 == "mem" || $2 == "ready") {
        for (i = 3; i <= NF; i++) if (index($i, "stub_mem_used_mib=") == 1) { v = substr($i, 19) + 0; n++; if (v > m) m = v } }
      END { printf "%s %d", (n ? m : "-"), n }')
    stub_max=${r% *} samples=${r#* }
    [ "$stub_max" = - ] && stub_max=""
  fi
  # Memory is judged for stubdm only: QEMU's footprint is its own (reported below).
  if abuse_is_baseline; then
    :
  elif is_stubdom; then
    if [ -z "$stub_max" ]; then problems+="no STUBDOM mem line in the DM log; "
    elif awk -v m="$stub_max" -v b="$ABUSE_STUB_MAX_MIB" 'BEGIN { exit !(m > b) }'; then
      problems+="stub_mem_used_mib $stub_max over $ABUSE_STUB_MAX_MIB; "
    fi
  elif [ "$rss" -gt "$ABUSE_RSS_MAX_MIB" ]; then
    problems+="RSS $rss MiB over $ABUSE_RSS_MAX_MIB; "
  fi
  [ "$(abuse_oopses)" -gt "$oops0" ] && problems+="dom0 kernel: $(dmesg | grep -E -m1 'BUG:|Oops|general protection fault|kernel BUG|WARNING: CPU' | cut -c1-120); "
  seed=$(abuse_key "$serial" abuse seed)
  [ -n "$seed" ] || seed=$(abuse_key "$serial" abuse-start seed)
  acc=$(abuse_key "$serial" abuse accesses)
  [ -n "$acc" ] || acc=$(abuse_key "$serial" abuse-progress accesses)
  done_s=$(abuse_key "$serial" abuse abuse_s)
  # No accesses read back means nothing was shown to have abused the DM: not a PASS.
  [ "${acc:-0}" -gt 0 ] 2>/dev/null || problems+="the guest reported no accesses (abuse.c's lines not on its serial); "
  [ -n "$guest_end" ] && problems+="guest: $guest_end; "

  # A fresh guest on the same dom0, pristine images, the shared boot: boot and disk checks.
  local fresh=$dir/fresh keep="" result
  mkdir -p "$fresh"
  cp --sparse=always /e2e/img/boot.img /e2e/img/data.img /e2e/img/cd.iso "$fresh/"
  [ -f "$R/disk-qemu-xen.txt" ] && keep=$(cat "$R/disk-qemu-xen.txt")
  result=$(
    RUN_DIR=$fresh
    guest_run "e2e-fresh-$DM" >&2
    # shellcheck disable=SC2317 # called by boot_check and disk_check
    pass() { echo "ok"; }
    # shellcheck disable=SC2317
    fail() { echo "$*"; }
    r=$(boot_check)
    [ "$r" = ok ] && r=$(disk_check)
    echo "$r"
  )
  if [ -n "$keep" ]; then echo "$keep" >"$R/disk-qemu-xen.txt"; elif [ "$DM" = qemu-xen ]; then rm -f "$R/disk-qemu-xen.txt"; fi
  [ "$result" = ok ] || problems+="fresh guest: ${result:-no result}; "

  local keys="abuse_s=${done_s:-?} accesses=${acc:-?} seed=${seed:-?} devices=${E2E_ABUSE_DEVICES:-none}"
  # what reached the device model: MMIO BARs mapped, accesses of each kind (abuse.c's counters)
  keys+=" mmio_bars=$(abuse_key "$serial" abuse-start mmio_bars) mmio=$(abuse_key "$serial" abuse mmio)"
  keys+=" cfg=$(abuse_key "$serial" abuse cfg) dma=$(abuse_key "$serial" abuse dma) rings=$(abuse_key "$serial" abuse rings)"
  if is_stubdom; then keys+=" stub_mem_used_mib=${stub_max:-?} mem_samples=$samples"; else keys+=" dm_rss_mib=$rss"; fi
  keys+=" dm_log_kib=$logkib"
  keys+=" fresh_boot=$([ "$result" = ok ] && echo ok || echo bad)"
  # shellcheck disable=SC2086 # $keys is a list of key=value words
  if [ -z "$problems" ]; then
    pass $keys dm_survived=yes
  elif abuse_is_baseline; then
    # shellcheck disable=SC2086
    pass $keys dm_survived=no finding="$(echo "${problems%; }" | tr ' ' '_' | cut -c1-300)"
  else
    fail "${problems%; } ($keys)"
  fi
}

abuse_save() { # NAME DIR: the abuse guest's config, serial and DM log with the results
  cp "$2/$1.cfg" "$2/$1.create.log" "$R/$DM/" 2>/dev/null
  [ -f "$2/$1.serial" ] && tr -d '\r' <"$2/$1.serial" | grep -a '^E2E ' >"$R/$DM/$1.markers.txt"
  # the serial's end, printable (the abuse writes random bytes to COM1): a guest panic shows here
  [ -f "$2/$1.serial" ] && tail -c 8192 "$2/$1.serial" | tr -c '[:print:]\n' '.' >"$R/$DM/$1.serial-tail.txt"
  cp /var/log/xen/qemu-dm-"$1"*.log "$R/$DM/" 2>/dev/null
}
