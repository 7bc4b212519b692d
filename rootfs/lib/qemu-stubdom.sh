# The same stub domain with Debian's QEMU (qemu-system-xen) as the device
# model instead of stubdm: a baseline for the e2e benchmark (qemu-stubdom,
# scripts/build-qemu-stubdom.sh). Sourced by rootfs/init-qemu after
# stubdom.sh; redefines only what differs. The rest (xenstore argv, consoles,
# tap + bridge, QMP over vchan, the guest's shutdown if the DM dies) is
# exactly what stubdm's stub domain does, and what a Linux QEMU stub domain's
# init does (Xen docs/misc/stubdom.txt).

: "${STUBDM_QEMU:=$STUBDM_DIR/bin/qemu-system-i386}"
STUBDM_INCOMING_FD=3

# QEMU 7.2 has no file: migration URI (QEMU 8.1 added it): the restore console
# is opened here as fd 3 and switched to raw mode at once, before QEMU reads.
incoming_arg() { echo "fd:$STUBDM_INCOMING_FD"; }

# QEMU writes device-model/<guest>/state = running itself (relative to this
# domain's xenstore home, hw/i386/xen/xen-hvm.c), as stubdm does.
start_dm() {
  if grep -qx "fd:$STUBDM_INCOMING_FD" "$STUBDM_ARGV_FILE"; then
    exec 3<"$STUBDM_RESTORE_CONSOLE" || { echo "STUBDOM FAIL cannot open $STUBDM_RESTORE_CONSOLE"; exit 1; }
    stty raw -opost -echo <&3 || log "cannot set $STUBDM_RESTORE_CONSOLE to raw mode"
  fi
  # The save console (fd 4, fd set 1): QEMU writes the state as it is, so
  # the tty must not turn \n into \r\n; the setting lasts while fd 4 is open.
  [ -n "${stubdm_save_fd:-}" ] && { stty raw -opost -echo <&4 || log "cannot set the save console to raw mode"; }
  # -L: the option ROMs (iPXE for the NICs) and VGA BIOSes in the image
  exec "$STUBDM_QEMU" -L "$STUBDM_DIR/share/qemu" "$@"
}

selftest() {
  t0=$(now)
  "$STUBDM_QEMU" -version >/tmp/selftest.out 2>&1
  rc=$?
  echo "STUBDOM selftest qemu_version_rc=$rc qemu_version_s=$(elapsed "$t0" "$(now)") ramdisk_mib=$(ramdisk_mib) $(mem_line 1)"
  [ "$rc" = 0 ] || tail -5 /tmp/selftest.out
  meminfo_line
}
