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
disk_guest() {
  dev=
  for b in /sys/block/sd*; do [ "$(cat "$b/size")" = "$DATA_SECTORS" ] && dev=/dev/${b##*/}; done
  if [ -z "$dev" ]; then echo "E2E disk error=no-disk-of-$DATA_SECTORS-sectors"; return; fi
  drv=none
  ls /sys/bus/pci/drivers/ata_piix 2>/dev/null | grep -q '^0000:' && drv=ata_piix
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
  dd if=/dev/zero of=$dev bs=1M count=16 seek=8 oflag=direct conv=fsync 2>/tmp/dd-w
  t2=$(cut -d' ' -f1 /proc/uptime)
  echo "E2E mark disk1"
  # dd's own summary and the guest clocksource: a failed dd or a stalled clock
  # shows here instead of as an impossible MB/s figure.
  echo "E2E diskdd cs=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)" \
    "read=$(tail -n 1 /tmp/dd-r | tr ' ' _) write=$(tail -n 1 /tmp/dd-w | tr ' ' _)"
  echo "E2E disk driver=$drv read=$rd write=$wr $(echo "$t0 $t1 $t2" |
    awk '{ r = $2 - $1; w = $3 - $2; printf "read_mbps=%.1f write_mbps=%.1f", (r > 0 ? 64 / r : 0), (w > 0 ? 16 / w : 0) }')"
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
    $(cpu_rate "$RUN_DIR/cpu-e2e-$DM.txt" disk0 disk1 dm_cpu_disk)
}
