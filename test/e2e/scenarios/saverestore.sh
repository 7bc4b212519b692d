# saverestore: a guest loops, writing a counter into its data disk (O_DIRECT,
# one 4 KiB block per value), printing it on COM1 and reading the CD-ROM;
# dom0 saves and restores it twice (`xl save`, `xl restore`), then migrates
# it live to this same host twice (`xl migrate -s "" DOM "xl migrate-receive"`:
# an empty ssh command makes xl run the host string as the receiver). Then:
# the counter on COM1 has no gap or repeat across all five lives of the
# domain, every block the guest reported holds its value, and the guest saw
# no I/O error. Each life gets its own serial file (a config passed to
# xl restore / xl migrate -C): a device model truncates its -serial file when
# it opens it, and during migration both run at once.
#
# The guest part runs only on a data disk that starts with SR_MAGIC (this
# scenario writes it on its own copy), so the shared boot is unaffected.
SR_MAGIC=E2E-SAVERESTORE
SR_BASE=8192 # first counter block (4 KiB units): 32 MiB, past what disk_guest writes

saverestore_guest() {
  dev=
  for b in /sys/block/sd*; do [ "$(cat "$b/size")" = "$DATA_SECTORS" ] && dev=/dev/${b##*/}; done
  [ -n "$dev" ] || return 0
  [ "$(dd if="$dev" bs=512 count=1 2>/dev/null | head -n 1)" = "$SR_MAGIC" ] || return 0
  echo "E2E saverestore start"
  i=0
  kerr=
  while [ $i -lt 16000 ]; do
    i=$((i + 1))
    if ! printf 'SRCNT %010d\n' $i | dd of="$dev" bs=4096 seek=$((SR_BASE + i)) conv=sync,notrunc oflag=direct 2>/dev/null; then
      echo "E2E saverestore ioerror=write-$i"
      break
    fi
    echo "E2E sr n=$i"
    dd if=/dev/sr0 of=/dev/null bs=2048 count=2 skip=$((i % 90)) iflag=direct 2>/dev/null ||
      echo "E2E saverestore ioerror=cdrom-$i"
    if [ $((i % 25)) = 0 ] && [ -z "$kerr" ]; then
      kerr=$(dmesg | grep -m1 -i -E 'I/O error|exception Emask|failed command' | tr -c 'A-Za-z0-9.:_-' _ | cut -c1-80)
      [ -z "$kerr" ] || echo "E2E saverestore kerr=$kerr"
    fi
  done
  echo "E2E saverestore end n=$i"
}

# Everything below runs in dom0 but is parsed by the guest's busybox sh too
# (the guest sources every scenario file): no arrays, no process substitution.
# $SR_FILES: the serial files of the domain's lives so far, in order.

# sr_last: the last counter value printed in $SR_FILES (concatenated).
sr_last() {
  # shellcheck disable=SC2086 # a list of paths without spaces
  cat $SR_FILES 2>/dev/null | tr -d '\r' | grep -a -o 'E2E sr n=[0-9]*' | tail -n 1 | cut -d= -f2
}

# sr_wait_advance FROM SECONDS: wait up to SECONDS until the counter passed
# FROM + 5; fails early if the domain is gone.
sr_wait_advance() {
  local from=$1 limit=$2 n i
  for i in $(seq 1 $((limit * 2))); do
    n=$(sr_last)
    [ -n "$n" ] && [ "$n" -ge $((from + 5)) ] && return 0
    [ $((i % 10)) = 0 ] && ! xl domid "$SR_NAME" >/dev/null 2>&1 && return 1 # the guest died
    sleep 0.5
  done
  return 1
}

# sr_state_bytes SAVEFILE: the device model's record in a libxl stream (the
# EMULATOR_CONTEXT record, type 3, emulator 2 = QEMU upstream, index 0; the
# state follows its 16-byte header; docs/specs/libxl-migration-stream.pandoc).
# xl's own header and the domain config come first, so records are 8-byte
# aligned within the stream but not within the file: every offset is tried,
# from the end, and the body must start with a state magic (stubdm's
# container STUBDMSV, QEMU's QEVM).
sr_state_bytes() {
  [ -x /e2e/bin/node ] || { echo "?"; return; }
  /e2e/bin/node -e '
    const fs = require("fs"); const f = process.argv[1];
    const size = fs.statSync(f).size, n = Math.min(size, 16 << 20), b = Buffer.alloc(n);
    const fd = fs.openSync(f, "r"); fs.readSync(fd, b, 0, n, size - n);
    for (let i = n - 24; i >= 0; i--)
      if (b.readUInt32LE(i) === 3 && b.readUInt32LE(i + 8) === 2 && b.readUInt32LE(i + 12) === 0) {
        const len = b.readUInt32LE(i + 4), magic = b.toString("latin1", i + 16, i + 24);
        if (i + 8 + len <= n && (magic === "STUBDMSV" || magic.startsWith("QEVM"))) { console.log(len - 8); process.exit(0); }
      }
    console.log("?");' "$1" 2>/dev/null || echo "?"
}

# sr_cfg GEN: the config of the domain's GEN-th life, with its own serial file.
sr_cfg() {
  guest_cfg "$SR_NAME" | sed -e "s|$RUN_DIR/data.img|$RUN_DIR/sr-data.img|" \
    -e "s|^serial=.*|serial=\"file:$SR_BASE_PATH.$1.serial\"|" >"$SR_BASE_PATH.$1.cfg"
  rm -f "$SR_BASE_PATH.$1.serial"
  SR_FILES="$SR_FILES $SR_BASE_PATH.$1.serial"
}

# mean and comma list of space-separated numbers
sr_mean() { echo "$1" | tr ' ' '\n' | awk 'NF { s += $1; n++ } END { printf "%.1f", n ? s / n : 0 }'; }
sr_list() { echo "$1" | sed 's/^ *//; s/ /,/g'; }

saverestore_run() {
  local gen=0 t0 t1 k last save=/var/lib/xen/e2e-sr.save saves="" restores="" migrates="" bytes="?"
  SR_NAME="e2e-sr-$DM" SR_BASE_PATH=$RUN_DIR/e2e-sr-$DM SR_FILES="" SR_SAVE=$save
  local name=$SR_NAME base=$SR_BASE_PATH
  cp --sparse=always /e2e/img/data.img "$RUN_DIR/sr-data.img"
  printf '%s\n' "$SR_MAGIC" | dd of="$RUN_DIR/sr-data.img" conv=notrunc status=none
  sr_cfg 0
  mkdir -p /var/lib/xen
  if ! timeout 150 xl create "$base.0.cfg" >"$base.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$base.create.log")"; sr_end; return
  fi
  sr_wait_advance 0 "${E2E_GUEST_TIMEOUT:-900}" || { fail "guest never started counting ($(sr_last))"; sr_end; return; }
  for k in 1 2; do
    last=$(sr_last)
    sr_wait_advance "$last" 300 || { fail "counter stuck at $last before save $k"; sr_end; return; }
    t0=$(now)
    if ! timeout 600 xl save "$name" "$save" >"$base.save$k.log" 2>&1; then
      fail "xl save $k failed: $(create_error "$base.save$k.log")"; sr_end; return
    fi
    t1=$(now); saves="$saves $(secs "$t0" "$t1")"
    if xl domid "$name" >/dev/null 2>&1; then fail "domain still there after xl save $k"; sr_end; return; fi
    [ "$k" = 1 ] && bytes=$(sr_state_bytes "$save")
    gen=$((gen + 1)); sr_cfg $gen
    t0=$(now)
    if ! timeout 600 xl restore "$base.$gen.cfg" "$save" >"$base.restore$k.log" 2>&1; then
      fail "xl restore $k failed: $(create_error "$base.restore$k.log")"; sr_end; return
    fi
    t1=$(now); restores="$restores $(secs "$t0" "$t1")"
    rm -f "$save"
    last=$(sr_last)
    sr_wait_advance "$last" 300 || { fail "guest did not carry on after restore $k (counter $last)"; sr_end; return; }
  done
  for k in 1 2; do
    gen=$((gen + 1)); sr_cfg $gen
    last=$(sr_last)
    t0=$(now)
    if ! timeout 900 xl migrate -C "$base.$gen.cfg" -s "" "$name" "xl migrate-receive" >"$base.migrate$k.log" 2>&1; then
      fail "xl migrate $k failed: $(create_error "$base.migrate$k.log")"; sr_end; return
    fi
    t1=$(now); migrates="$migrates $(secs "$t0" "$t1")"
    sr_wait_advance "$last" 300 || { fail "guest did not carry on after migration $k (counter $last)"; sr_end; return; }
  done
  sr_end
  sr_verify
}

# Stop the guest and keep its logs.
sr_end() {
  local d f
  for d in "$SR_NAME" "$SR_NAME--incoming" "$SR_NAME--migratedaway"; do xl destroy "$d" >/dev/null 2>&1; done
  sleep 2
  for f in "$SR_BASE_PATH".*; do cp "$f" "$R/$DM/" 2>/dev/null; done
  cp /var/log/xen/qemu-dm-"$SR_NAME"*.log "$R/$DM/" 2>/dev/null
  rm -f "$SR_SAVE"
}

sr_verify() {
  local all=$RUN_DIR/sr-serial.all n got want err
  # shellcheck disable=SC2086 # a list of paths without spaces
  cat $SR_FILES 2>/dev/null | tr -d '\r' >"$all"
  err=$(grep -a -o 'E2E saverestore \(ioerror\|kerr\)=[^ ]*' "$all" | head -n 1)
  [ -z "$err" ] || { fail "guest: ${err#E2E saverestore }"; return; }
  grep -a -o 'E2E sr n=[0-9]*' "$all" | cut -d= -f2 >"$all.n"
  n=$(wc -l <"$all.n")
  [ "$n" -gt 20 ] || { fail "only $n counter values on COM1"; return; }
  # 1..n in order: no gap, no repeat.
  got=$(awk '$1 != NR { print "value " NR " is " $1; exit }' "$all.n")
  [ -z "$got" ] || { fail "counter on COM1 has a gap or repeat: $got"; return; }
  # Every block 1..n holds its value (the guest printed n only after its write completed).
  seq -f 'SRCNT %010g' 1 "$n" >"$all.want"
  dd if="$RUN_DIR/sr-data.img" bs=4096 skip=$((SR_BASE + 1)) count="$n" 2>/dev/null | tr -d '\000' >"$all.disk"
  if ! cmp -s "$all.want" "$all.disk"; then
    fail "disk blocks 1..$n do not hold what the guest wrote (first difference: $(diff "$all.want" "$all.disk" | head -n 2 | tr '\n' ' '))"
    return
  fi
  pass save_s="$(sr_mean "$saves")" restore_s="$(sr_mean "$restores")" state_bytes="$bytes" \
    migrate_s="$(sr_mean "$migrates")" counter="$n" saves="$(sr_list "$saves")" restores="$(sr_list "$restores")" \
    migrates="$(sr_list "$migrates")"
}
