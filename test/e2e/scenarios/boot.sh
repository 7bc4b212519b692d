# boot: firmware to guest init. The guest prints its marker first thing in
# init; the driver times `xl create` to that marker as it appears in the
# guest's serial log. shutdown= says whether the guest's poweroff ended the
# domain (poweroff) or the driver had to destroy it.
boot_guest() { echo "E2E boot init uptime=$(cut -d' ' -f1 /proc/uptime)"; }

boot_check() {
  [ -n "$BOOT_SECONDS" ] || { fail "no 'E2E boot init' marker on the guest serial ($GUEST_END)"; return; }
  pass seconds="$BOOT_SECONDS" kernel_to_init="$(marker boot uptime)" shutdown="${SHUTDOWN:-none}"
}
