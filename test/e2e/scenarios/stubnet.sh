# stubnet: a guest with a NIC, its device model in a stub domain. libxl gives
# the stub domain a netfront (eth0, backend in dom0 on xenbr0) and passes
# stubdm `-netdev type=tap,ifname=vif<guest>.0-emu` + `-device e1000`; the stub
# domain's /init must create that tap and bridge it with eth0, with MACs of its
# own on both (rootfs/lib/stubdom.sh wire_network). stubdm has no e1000 yet (it
# reports the device and ignores it), so this checks the plumbing libxl and
# /init set up, not traffic: the guest still boots, the stub's netfront is
# connected, and /init reports the bridge.
stubnet_run() {
  is_stubdom || { emit "SKIP $SCEN $DM only for stub domains (the stub domain's tap + bridge)"; return; }
  local name="e2e-net-$DM" domid stub i log line st mac
  # What a Xen host's network set-up gives vif-bridge: a bridge named xenbr0.
  if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge && ip link set xenbr0 up || { fail "cannot create bridge xenbr0 in dom0"; return; }
  fi
  { guest_cfg "$name"; echo 'vif=[ "mac=00:16:3e:5e:00:01,bridge=xenbr0,model=e1000" ]'; } >"$RUN_DIR/$name.cfg"
  if ! timeout 120 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")"
    xl destroy "$name" >/dev/null 2>&1; save_dm_logs "$name"; return
  fi
  domid=$(xl domid "$name")
  stub=$(xl domid "$name-dm" 2>/dev/null)
  log=/var/log/xen/qemu-dm-$name.log
  line=""
  for i in $(seq 1 600); do
    line=$(tr -d '\r' <"$log" 2>/dev/null | grep -a -m1 'network: .* <-> br0 <-> eth0')
    [ -n "$line" ] && break
    tr -d '\r' <"$log" 2>/dev/null | grep -a -q '^STUBDOM FAIL' && break
    sleep 0.2
  done
  # The stub domain's netfront as dom0's netback sees it: 4 = connected.
  st=$(xenstore-read "/local/domain/0/backend/vif/$stub/0/state" 2>/dev/null)
  mac=$(xenstore-read "/local/domain/0/backend/vif/$stub/0/mac" 2>/dev/null)
  timeout 60 xl destroy "$name" >/dev/null 2>&1
  save_dm_logs "$name"
  [ -n "$line" ] || { fail "the stub domain did not bridge its tap with eth0: $(tr -d '\r' <"$log" 2>/dev/null | grep -a -m1 -E 'STUBDOM FAIL|tap|network' || echo 'no network line')"; return; }
  [ "$st" = 4 ] || { fail "stub domain $stub's vif 0 backend state is '$st', not 4 (connected)"; return; }
  [ "$mac" = 00:16:3e:5e:00:01 ] || { fail "stub domain's vif carries MAC '$mac', not the guest's"; return; }
  pass tap="$(echo "$line" | sed 's/.*network: \([^ ]*\) .*/\1/')" stub_vif_state="$st" stub_vif_mac="$mac"
}
