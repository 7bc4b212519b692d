# pxe: a guest with no disk and boot="n" boots the harness kernel and
# initramfs over the network through its e1000's option ROM (iPXE, from the
# NIC's ROM BAR): dom0 serves DHCP on xenbr0 (busybox udhcpd; the boot file
# is an iPXE script over HTTP) and HTTP (busybox httpd) with the same
# vmlinuz + init.xz the boot disk carries. No dnsmasq or TFTP: iPXE fetches
# over HTTP, and dom0's busybox has both servers, so the cached dom0 image
# stays as it is. PASS pxe_s = xl create to the guest's init.
# The kernel command line carries e2e_pxe=1: the guest's other scenario
# parts see it (net_guest stays quiet), and pxe_guest says it booted so.
PXE_DIR=/tmp/pxe-www

pxe_guest() {
  grep -q 'e2e_pxe=1' /proc/cmdline || return 0
  echo "E2E pxe booted=1 uptime=$(cut -d' ' -f1 /proc/uptime)"
}

pxe_run() {
  local name="e2e-pxe-$DM" serial t0 i pxe_s="" httpd udhcpd got
  serial=$RUN_DIR/$name.serial
  [ -f /e2e/img/vmlinuz ] && [ -f /e2e/img/init.xz ] || { fail "the work disk has no img/vmlinuz + img/init.xz (test/e2e/lib/host.sh build_workdisk)"; return; }
  [ -d /sys/class/net/xenbr0 ] || { ip link add xenbr0 type bridge && ip link set xenbr0 up; } ||
    { fail "cannot create bridge xenbr0 in dom0"; return; }
  ip addr replace 10.9.0.1/24 dev xenbr0
  rm -rf "$PXE_DIR" && mkdir -p "$PXE_DIR"
  cp /e2e/img/vmlinuz /e2e/img/init.xz "$PXE_DIR/"
  printf '%s\n' '#!ipxe' \
    'kernel http://10.9.0.1/vmlinuz console=ttyS0 quiet loglevel=1 panic=-1 xen_emul_unplug=never e2e_pxe=1' \
    'initrd http://10.9.0.1/init.xz' 'boot' >"$PXE_DIR/boot.ipxe"
  printf '%s\n' 'start 10.9.0.50' 'end 10.9.0.60' 'interface xenbr0' "lease_file $PXE_DIR/leases" \
    'siaddr 10.9.0.1' 'boot_file http://10.9.0.1/boot.ipxe' 'opt subnet 255.255.255.0' 'opt router 10.9.0.1' \
    >"$PXE_DIR/udhcpd.conf"
  : >"$PXE_DIR/leases"
  busybox httpd -f -vv -p 10.9.0.1:80 -h "$PXE_DIR" </dev/null >/dev/null 2>"$RUN_DIR/pxe-httpd.log" &
  httpd=$!
  busybox udhcpd -f "$PXE_DIR/udhcpd.conf" </dev/null >"$RUN_DIR/pxe-udhcpd.log" 2>&1 &
  udhcpd=$!
  # The shared config without its disks (SeaBIOS tries disks before the NIC's ROM), booting from the network.
  { guest_cfg "$name" | sed -e '/^disk=/,/]$/d' -e 's/^boot=.*/boot="n"/'; echo 'vif=[ "model=e1000,bridge=xenbr0,mac=00:16:3e:5e:00:03" ]'; } >"$RUN_DIR/$name.cfg"
  rm -f "$serial" && : >"$serial"
  t0=$(now)
  if ! timeout 150 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")$(why=$(net_no_e1000 "$name"); [ -z "$why" ] || echo " (the device model says: $why)")"
    timeout 60 xl destroy "$name" >/dev/null 2>&1
    kill $httpd $udhcpd 2>/dev/null; save_dm_logs "$name"; cp "$RUN_DIR"/pxe-*.log "$R/$DM/" 2>/dev/null; return
  fi
  local deadline=$((SECONDS + ${E2E_GUEST_TIMEOUT:-900}))
  while [ $SECONDS -lt $deadline ] && xl domid "$name" >/dev/null 2>&1; do
    if [ -z "$pxe_s" ] && tr -d '\r' <"$serial" | grep -a -q '^E2E pxe booted=1'; then pxe_s=$(secs "$t0" "$(now)"); fi
    tr -d '\r' <"$serial" | grep -a -q '^E2E done' && break
    sleep 0.5
  done
  timeout 60 xl destroy "$name" >/dev/null 2>&1
  kill $httpd $udhcpd 2>/dev/null
  save_dm_logs "$name"
  cp "$RUN_DIR"/pxe-*.log "$R/$DM/" 2>/dev/null
  if [ -n "$pxe_s" ]; then
    pass pxe_s="$pxe_s"
    return
  fi
  # How far it got: a lease, the script, the kernel.
  got="dhcp_acks:$(grep -a -c -i 'sending ack' "$RUN_DIR/pxe-udhcpd.log" 2>/dev/null) http:$(grep -a -o -E 'url:/[a-z.]+' "$RUN_DIR/pxe-httpd.log" 2>/dev/null | tr '\n' ' ')"
  local why
  why=$(net_no_e1000 "$name")
  fail "no 'E2E pxe booted=1' from the guest ($got)${why:+; the device model says: $why}"
}
