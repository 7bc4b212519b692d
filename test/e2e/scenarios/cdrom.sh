# cdrom: the guest mounts the ISO 9660 image from the emulated CD-ROM (hdc,
# ATAPI) and checks a known file's checksum.
cdrom_guest() {
  if [ ! -b /dev/sr0 ]; then echo "E2E cdrom error=no-sr0"; return; fi
  if ! mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then echo "E2E cdrom error=mount-failed"; return; fi
  sum=bad
  [ "$(md5sum </mnt/KNOWN.TXT | cut -d' ' -f1)" = "$CD_MD5" ] && sum=ok
  umount /mnt
  echo "E2E cdrom file=$sum"
}

cdrom_check() {
  [ -n "$(marker cdrom file)$(marker cdrom error)" ] || { fail "no 'E2E cdrom' marker ($GUEST_END)"; return; }
  [ -z "$(marker cdrom error)" ] || { fail "guest: $(marker cdrom error)"; return; }
  [ "$(marker cdrom file)" = ok ] || { fail "KNOWN.TXT read from the CD-ROM has a wrong checksum"; return; }
  pass file=ok
}
