# xlops: the xl operations that go through the device model, on a guest of
# its own: `xl qemu-monitor-command` (info status/block/pci/chardev/network,
# an unknown command), `xl cd-eject` and `xl cd-insert` of a second ISO
# (cd2.iso, MARKER2.TXT) on the emulated CD-ROM (hdc), and `xl trigger
# s3resume` (reported, not required: no guest here is suspended).
#
# dom0 and the guest take turns through a flag block on the guest's own copy
# of the data disk (the guest reads it O_DIRECT, dom0 writes the image
# file): the guest must not hold /dev/sr0 open while dom0 ejects, because
# Linux locks the tray while the device is open and an eject of a locked
# tray is refused (by QEMU and by stubdm alike).
#
# libxl 4.17 refuses cd-insert/cd-eject for a domain with a stub domain
# (libxl_disk.c libxl_cdrom_insert): there only the monitor commands run
# (QMP reaches the stub domain through libxl's vchan proxy) and the line is
# SKIP with the reason and hmp=ok, or FAIL if the monitor answered wrong.
#
# xentop's VBD columns (issue #14): libxenstat asks a dom0 device model for
# them over its own QMP socket (/var/run/xen/qmp-libxenstat-<domid>, which
# libxl passes as -chardev libxenstat-cmd), query-blockstats, but only for a
# domain with a qdisk disk (/local/domain/0/backend/qdisk/<domid>)
# [xen 4.17: tools/libs/stat/xenstat_qmp.c; docs/xen-contract.md §11c]. So in dom0 the data disk
# gets backendtype=qdisk (the guest still reads it as IDE: its kernel runs
# with xen_emul_unplug=never), and the PASS line carries xentop's VBD_RD and
# VBD_RSECT for the guest, summed over its disks: zero is a failure for
# stubdm (qemu-xen's reference is 0: its counters cover only xen-block). Beside
# them, dom0/xenstat-probe.py replays libxenstat's exchange on that socket with
# its 10 ms reads and timestamps (xenstat_caps_ms, xenstat_stats_ms,
# xenstat_parse; the details in hmp.txt), for qemu-xen too. A stub domain's
# model has no socket in dom0: all of these are n/a there.
#
# The guest part runs only on a data disk that starts with XL_MAGIC.
XL_MAGIC=E2E-XLOPS
XL_FLAG_BLOCK=9000 # 4 KiB block of the flag (36 MiB: past what disk_guest writes)

xlops_flag() { dd if="$1" bs=4096 skip=$XL_FLAG_BLOCK count=1 iflag=direct 2>/dev/null | head -n 1 | tr -d '\0'; }

# xlops_wait DEV WORD: until dom0 wrote WORD into the flag block (bounded: 600 s).
xlops_wait() {
  i=0
  while [ $i -lt 1200 ]; do
    [ "$(xlops_flag "$1")" = "$2" ] && return 0
    sleep 0.5
    i=$((i + 1))
  done
  return 1
}

xlops_guest() {
  dev=
  for b in /sys/block/sd*; do [ "$(cat "$b/size")" = "$DATA_SECTORS" ] && dev=/dev/${b##*/}; done
  [ -n "$dev" ] || return 0
  [ "$(dd if="$dev" bs=512 count=1 2>/dev/null | head -n 1)" = "$XL_MAGIC" ] || return 0
  v=bad
  if mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
    [ "$(md5sum </mnt/KNOWN.TXT | cut -d' ' -f1)" = "$CD_MD5" ] && v=ok
    umount /mnt
  fi
  echo "E2E xlops cd1=$v"
  xlops_wait "$dev" EJECTED || { echo "E2E xlops error=no-eject-flag"; return; }
  # No medium: the open fails (ENOMEDIUM) once the drive reports it gone.
  if dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null; then v=still-readable; else v=ok; fi
  echo "E2E xlops ejected=$v"
  xlops_wait "$dev" INSERTED || { echo "E2E xlops error=no-insert-flag"; return; }
  # The first open after the change sees NOT READY / UNIT ATTENTION and rereads the capacity.
  v=mount-failed
  i=0
  while [ $i -lt 20 ]; do
    if mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then
      v=bad
      [ "$(md5sum </mnt/MARKER2.TXT 2>/dev/null | cut -d' ' -f1)" = "$CD2_MD5" ] && v=ok
      umount /mnt
      break
    fi
    sleep 0.5
    i=$((i + 1))
  done
  echo "E2E xlops cd2=$v"
}

# Everything below runs in dom0 but is parsed by the guest's busybox sh too.

# xlops_marker KEY: the guest's value of KEY so far (its serial file).
xlops_marker() {
  tr -d '\r' <"$XL_SERIAL" 2>/dev/null | awk -v k="$1=" '$1 == "E2E" && $2 == "xlops" {
    for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }'
}

# xlops_await KEY SECONDS: wait until the guest printed KEY (or an error); fails if the domain is gone.
xlops_await() {
  local i
  for i in $(seq 1 $(($2 * 2))); do
    [ -n "$(xlops_marker "$1")" ] && return 0
    [ -n "$(xlops_marker error)" ] && return 1
    [ $((i % 10)) = 0 ] && ! xl domid "$XL_NAME" >/dev/null 2>&1 && return 1
    sleep 0.5
  done
  return 1
}

xlops_setflag() { printf '%s\n' "$1" | dd of="$RUN_DIR/xlops-data.img" bs=4096 seek=$XL_FLAG_BLOCK conv=notrunc,sync status=none; }

# xlops_hmp CMD: the monitor's answer on one line (CR and LF -> '|'); exit status of xl.
xlops_hmp() {
  local out rc
  out=$(timeout 60 xl qemu-monitor-command "$XL_NAME" "$1" 2>&1)
  rc=$?
  echo "== $1 (exit $rc)" >>"$XL_BASE.hmp.txt"
  echo "$out" >>"$XL_BASE.hmp.txt"
  echo "$out" | tr '\r\n' '||'
  return $rc
}

xlops_run() {
  XL_NAME="e2e-xlops-$DM" XL_BASE=$RUN_DIR/e2e-xlops-$DM XL_SERIAL=$RUN_DIR/e2e-xlops-$DM.serial
  local name=$XL_NAME base=$XL_BASE t0 t1 out eject_s insert_s s3 why=""
  cp --sparse=always /e2e/img/data.img "$RUN_DIR/xlops-data.img"
  printf '%s\n' "$XL_MAGIC" | dd of="$RUN_DIR/xlops-data.img" conv=notrunc status=none
  xlops_setflag WAIT
  cp /e2e/img/cd2.iso "$RUN_DIR/cd2.iso"
  if is_stubdom; then
    guest_cfg "$name" | sed -e "s|$RUN_DIR/data.img|$RUN_DIR/xlops-data.img|" >"$base.cfg"
  else
    guest_cfg "$name" | sed -e "s|target=$RUN_DIR/data.img|backendtype=qdisk,target=$RUN_DIR/xlops-data.img|" >"$base.cfg"
  fi
  rm -f "$XL_SERIAL" "$base.hmp.txt"
  if ! timeout 150 xl create "$base.cfg" >"$base.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$base.create.log")"; xlops_end; return
  fi
  xlops_await cd1 "${E2E_GUEST_TIMEOUT:-900}" || { fail "guest never read the first CD ($(xlops_marker error))"; xlops_end; return; }
  [ "$(xlops_marker cd1)" = ok ] || why="$why cd1=$(xlops_marker cd1)"

  # xl qemu-monitor-command: QMP human-monitor-command.
  out=$(xlops_hmp "info status") || why="$why hmp-status-exit"
  case $out in *"VM status: running"*) ;; *) why="$why info-status='$(echo "$out" | cut -c1-60)'" ;; esac
  out=$(xlops_hmp "info block") || why="$why hmp-block-exit"
  # In a stub domain the image is a blkfront disk of the stub (/dev/xvd*), not the dom0 path.
  case $out in
  *ide-5632*cd.iso*) ;;
  *ide-5632*/dev/*) is_stubdom || why="$why info-block-no-cd" ;;
  *) why="$why info-block-no-cd" ;;
  esac
  out=$(xlops_hmp "info pci") || why="$why hmp-pci-exit"
  case $out in *8086:7010*) ;; *) why="$why info-pci-no-ide" ;; esac
  out=$(xlops_hmp "info chardev") || why="$why hmp-chardev-exit"
  case $out in *serial0*) ;; *) why="$why info-chardev-no-serial0" ;; esac
  xlops_hmp "info network" >/dev/null || why="$why hmp-network-exit"
  out=$(xlops_hmp "info blockstats") || why="$why hmp-blockstats-exit"
  case $out in *"rd_bytes="*) ;; *) why="$why info-blockstats='$(echo "$out" | cut -c1-60)'" ;; esac
  local vbd_rd=n/a vbd_rsect=n/a xs_caps=n/a xs_stats=n/a xs_parse=n/a
  if ! is_stubdom; then
    set -- $(xlops_xentop_vbd "$name")
    vbd_rd=${1:-none} vbd_rsect=${2:-none}
    # libxenstat's own exchange, timed (recorded, not judged: xentop above is the check).
    set -- $(xlops_xenstat_probe "$name")
    xs_caps=${1:-none} xs_stats=${2:-none} xs_parse=${3:-none}
    # qemu-xen's query-blockstats counts only its xen-block (qdisk) backends,
    # which this guest never uses (it reads the disk as IDE): its figure is
    # recorded beside ours, and 0 there is what stock QEMU shows (seen on real
    # Xen: HMP "info blockstats" lists two unnamed qdisk entries, all zero).
    if [ "$DM" != qemu-xen ]; then
      [ "$vbd_rd" -gt 0 ] 2>/dev/null && [ "$vbd_rsect" -gt 0 ] 2>/dev/null || why="$why xentop-vbd-rd=$vbd_rd/rsect=$vbd_rsect"
    fi
  fi
  XL_VBD="xentop_vbd_rd=$vbd_rd xentop_vbd_rsect=$vbd_rsect xenstat_caps_ms=$xs_caps xenstat_stats_ms=$xs_stats xenstat_parse=$xs_parse"
  out=$(xlops_hmp "frobnicate") # QEMU: not an error, the text "unknown command: 'frobnicate'"
  case $out in *"unknown command"*) ;; *) why="$why unknown-cmd='$(echo "$out" | cut -c1-60)'" ;; esac
  if is_stubdom; then
    # What libxl does with cd-eject here, for the record (it must refuse).
    timeout 60 xl cd-eject "$name" hdc >"$base.eject.log" 2>&1 && why="$why cd-eject-accepted-by-libxl"
    xlops_end
    if [ -n "$why" ]; then fail "xlops:$why $XL_VBD"; return; fi
    emit "SKIP $SCEN $DM cd-eject/cd-insert: libxl 4.17 refuses them for a domain with a stub domain (libxl_disk.c); hmp=ok $XL_VBD"
    return
  fi

  # xl cd-eject: query-version, eject {id: ide-5632}.
  t0=$(now)
  if ! timeout 120 xl cd-eject "$name" hdc >"$base.eject.log" 2>&1; then
    fail "xl cd-eject failed: $(create_error "$base.eject.log")$why"; xlops_end; return
  fi
  t1=$(now); eject_s=$(secs "$t0" "$t1")
  out=$(xlops_hmp "info block")
  case $out in *"ide-5632: [not inserted]"*) ;; *) why="$why block-after-eject='$(echo "$out" | cut -c1-80)'" ;; esac
  xlops_setflag EJECTED
  xlops_await ejected 300 || { fail "guest did not report the eject ($(xlops_marker error))$why"; xlops_end; return; }
  [ "$(xlops_marker ejected)" = ok ] || why="$why ejected=$(xlops_marker ejected)"

  # xl cd-insert: query-version, eject, add-fd (the image, SCM_RIGHTS), blockdev-change-medium /dev/fdset/N.
  t0=$(now)
  if ! timeout 120 xl cd-insert "$name" hdc "$RUN_DIR/cd2.iso" >"$base.insert.log" 2>&1; then
    fail "xl cd-insert failed: $(create_error "$base.insert.log")$why"; xlops_end; return
  fi
  t1=$(now); insert_s=$(secs "$t0" "$t1")
  xlops_setflag INSERTED
  xlops_await cd2 300 || { fail "guest did not report the new CD ($(xlops_marker error))$why"; xlops_end; return; }
  [ "$(xlops_marker cd2)" = ok ] || why="$why cd2=$(xlops_marker cd2)"
  out=$(xlops_hmp "info block")
  case $out in *"ide-5632: [not inserted]"*) why="$why block-after-insert-empty" ;; esac

  # xl trigger s3resume -> QMP system_wakeup; the guest is not suspended, so an error is the right answer.
  if timeout 60 xl trigger "$name" s3resume >"$base.s3resume.log" 2>&1; then s3=ok; else s3=refused; fi
  xlops_end
  if [ -n "$why" ]; then fail "xlops:$why $XL_VBD"; return; fi
  pass cd1=ok eject_s="$eject_s" ejected=ok insert_s="$insert_s" cd2=ok hmp=ok s3resume="$s3" $XL_VBD
}

# xlops_xentop_vbd NAME: "VBD_RD VBD_RSECT" of domain NAME from xentop's
# batch output (columns found by the header), the largest of up to five
# tries: libxenstat gives a model 10 ms to answer each QMP command (its
# poll timeout) and under TCG a reply can come later, which shows as 0.
xlops_xentop_vbd() {
  local i best_rd=0 best_rs=0
  for i in 1 2 3 4 5; do
    set -- $(timeout 30 xentop -b -f -i 2 -d 1 2>/dev/null | awk -v n="$1" '
      $1 == "NAME" { for (i = 1; i <= NF; i++) col[$i] = i; next }
      $1 == n && ("VBD_RD" in col) { v = $(col["VBD_RD"]) " " $(col["VBD_RSECT"]) }
      END { print v }') "$1"
    echo "== xentop try $i: $*" >>"$XL_BASE.hmp.txt"
    if [ $# -eq 3 ] && [ "$1" -gt "$best_rd" ] 2>/dev/null; then best_rd=$1 best_rs=$2; fi
    [ "$best_rd" -gt 0 ] && break
    shift $(($# - 1))
    sleep 1
  done
  echo "$best_rd $best_rs"
}

# xlops_xenstat_probe NAME: "CAPS_MS STATS_MS PARSE" of libxenstat's QMP
# exchange with NAME's device model on /var/run/xen/qmp-libxenstat-<domid>,
# replayed by dom0/xenstat-probe.py with libxenstat's 10 ms reads: connect to
# the end of the capabilities reply, query-blockstats to the end of its reply,
# and whether the blockstats buffer was one JSON document with rd_bytes > 0
# (ok; zero: one document, no bytes read; bad; none: a read came back empty).
# Its whole output, with every message's arrival time and whether libxenstat
# would ask at all (the domain's qdisk backend directory in xenstore; the
# backend bus in sysfs, without which it collects no VBDs), goes to hmp.txt.
xlops_xenstat_probe() {
  local domid sock out rc qdisk=no bus=no
  domid=$(xl domid "$1" 2>/dev/null)
  sock=/var/run/xen/qmp-libxenstat-$domid
  xenstore-read "/local/domain/0/backend/qdisk/$domid" >/dev/null 2>&1 && qdisk=yes
  [ -d /sys/bus/xen-backend/devices ] && bus=yes
  out=$(timeout 60 python3 /e2e/dom0/xenstat-probe.py "$sock" 2>&1)
  rc=$?
  { echo "== xenstat probe $sock (exit $rc; qdisk backend in xenstore: $qdisk; /sys/bus/xen-backend/devices: $bus)"; echo "$out"; } >>"$XL_BASE.hmp.txt"
  echo "$out" | head -n 1 | awk '{ for (i = 1; i <= NF; i++) { j = index($i, "="); if (j) v[substr($i, 1, j - 1)] = substr($i, j + 1) } }
    END { print v["xenstat_caps_ms"], v["xenstat_stats_ms"], v["xenstat_parse"] }'
}

xlops_end() {
  timeout 60 xl destroy "$XL_NAME" >/dev/null 2>&1
  sleep 1
  cp "$XL_BASE".* "$R/$DM/" 2>/dev/null
  [ -f "$XL_SERIAL" ] && cp "$XL_SERIAL" "$R/$DM/$XL_NAME.serial.txt"
  cp /var/log/xen/qemu-dm-"$XL_NAME"*.log "$R/$DM/" 2>/dev/null
}

# ---------------------------------------------------------------------------
# restrict (E2E_SCENARIOS=restrict; issue #14): a guest with dm_restrict=1.
# libxl 4.17 then runs a dom0 device model with -xen-domid-restrict, -chroot
# /var/run/xen/qemu-root-<domid> (mode 0000), -runas <uid>:<gid> of the
# xen-qemuuser-range-base user + domid, -S and a pre-opened QMP fd, and waits
# for query-status = prelaunch (libxl_dm.c). Checked: xl create works (no
# start-up race), the guest reaches init and finishes its run, the DM's uid is
# the range user's and its root the chroot (/proc/<pid>/status, root), and for
# stubdm the restriction itself: HMP `info restrict` must say guest=ok (the
# handles work) and dm_op=EPERM for a domain that does not exist (an
# unrestricted handle gets ESRCH from Xen there; the kernel's EPERM comes only
# from a restricted fd). Stub domains: SKIP (libxl passes -xen-domid-restrict
# and a dom0 -chroot into the stub's argv but no -runas/-S; stubdm leaves them
# alone there).
RESTRICT_UID_BASE=131072

restrict_user() {
  grep -q '^xen-qemuuser-range-base:' /etc/passwd ||
    echo "xen-qemuuser-range-base:x:$RESTRICT_UID_BASE:$RESTRICT_UID_BASE:Xen QEMU range base:/nonexistent:/usr/sbin/nologin" >>/etc/passwd
  grep -q '^xen-qemuuser-range-base:' /etc/group || echo "xen-qemuuser-range-base:x:$RESTRICT_UID_BASE:" >>/etc/group
}

restrict_run() {
  if is_stubdom; then
    emit "SKIP $SCEN $DM dm_restrict applies to a dom0 device model (libxl 4.17 passes no -runas/-S to a stub domain; stubdm ignores -xen-domid-restrict/-chroot there)"
    return
  fi
  local name="e2e-restrict-$DM" base="$RUN_DIR/e2e-restrict-$DM" serial="$RUN_DIR/e2e-restrict-$DM.serial"
  local t0 t1 create_s domid pid uid root want_uid probe="n/a" state_key i why=""
  restrict_user
  cp --sparse=always /e2e/img/data.img "$RUN_DIR/restrict-data.img"
  { guest_cfg "$name" | sed -e "s|$RUN_DIR/data.img|$RUN_DIR/restrict-data.img|"; echo 'dm_restrict=1'; } >"$base.cfg"
  rm -f "$serial" "$base.hmp.txt"
  t0=$(now)
  if ! timeout 150 xl create "$base.cfg" >"$base.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$base.create.log")"; restrict_end; return
  fi
  t1=$(now); create_s=$(secs "$t0" "$t1")
  domid=$(xl domid "$name" 2>/dev/null)
  pid=$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)
  state_key=$(xenstore-read "/local/domain/0/device-model/$domid/state" 2>/dev/null || echo none)
  for i in $(seq 1 $((${E2E_GUEST_TIMEOUT:-900} * 2))); do
    grep -q 'E2E boot init' "$serial" 2>/dev/null && break
    [ $((i % 10)) = 0 ] && ! xl domid "$name" >/dev/null 2>&1 && break
    sleep 0.5
  done
  grep -q 'E2E boot init' "$serial" 2>/dev/null || { fail "guest never reached init (domid=$domid pid=$pid)"; restrict_end; return; }
  if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then fail "no device-model process (pid '$pid')"; restrict_end; return; fi
  want_uid=$((RESTRICT_UID_BASE + domid))
  uid=$(awk '$1 == "Uid:" { print $2 "," $3 "," $4 "," $5 }' "/proc/$pid/status")
  [ "$uid" = "$want_uid,$want_uid,$want_uid,$want_uid" ] || why="$why uid=$uid(want=$want_uid)"
  root=$(readlink "/proc/$pid/root")
  [ "$root" = "/var/run/xen/qemu-root-$domid" ] || [ "$root" = "/run/xen/qemu-root-$domid" ] || why="$why root=$root"
  if [ "$DM" = stubdm-dom0 ]; then
    XL_NAME=$name XL_BASE=$base
    probe=$(xlops_hmp "info restrict" | tr -d '|') || why="$why hmp-exit"
    case $probe in
    *"restrict=on "*"guest=ok "*"dm_op=EPERM "*) ;;
    *) why="$why probe='$probe'" ;;
    esac
    probe=$(echo "$probe" | sed 's/.*dm_op=\([A-Z0-9]*\).*/\1/')
  fi
  # The guest's own run (disk, CD-ROM) through the restricted device model, to its end.
  for i in $(seq 1 $((${E2E_GUEST_TIMEOUT:-900} * 2))); do
    grep -q 'E2E done' "$serial" 2>/dev/null && break
    [ $((i % 10)) = 0 ] && ! xl domid "$name" >/dev/null 2>&1 && break
    sleep 0.5
  done
  grep -q 'E2E done' "$serial" 2>/dev/null || why="$why guest-not-done"
  restrict_end
  if [ -n "$why" ]; then fail "restrict:$why"; return; fi
  pass create_s="$create_s" init=ok done=ok uid="$want_uid" root=chroot probe="$probe" state_key="$state_key"
}

restrict_end() {
  timeout 60 xl destroy "e2e-restrict-$DM" >/dev/null 2>&1
  sleep 1
  cp "$RUN_DIR/e2e-restrict-$DM".* "$R/$DM/" 2>/dev/null
  cp /var/log/xen/qemu-dm-"e2e-restrict-$DM"*.log "$R/$DM/" 2>/dev/null
}
