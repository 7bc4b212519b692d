# net: an emulated e1000 on xenbr0 (vif model=e1000), traffic between the
# guest (10.9.0.2) and dom0 (10.9.0.1 on xenbr0), on a guest boot of its own:
#   link_s       e1000 driver load to carrier up, in the guest
#   probe_s      the part of it until eth0 exists (the driver's probe: reset,
#                the whole EEPROM bit-banged through EECD, every bit a few exits)
#   ping_ms      median of 20 pings guest -> dom0 (ping_lost: how many got no answer)
#   tcp_tx_mbps  4 MiB guest -> dom0, timed by dom0 from the first byte to EOF
#   tcp_rx_mbps  4 MiB dom0 -> guest, timed by the guest the same way
#   irq_ping, irq_tx, irq_rx  the guest's eth0 interrupts (/proc/interrupts)
#                during the 20 pings, the guest -> dom0 stream and the
#                dom0 -> guest stream (the last includes dom0's 3 jumbo pings);
#   segs_tx, segs_rx  TCP segments the guest sent / received in its stream
#   acks_rx      segments the guest sent while receiving (its ACKs);
#   retrans_tx   the guest's retransmitted segments while sending.
#                Interrupts and segments per transfer say what each frame
#                cost in exits (each interrupt is 5-7 register accesses)
#                without changing what is timed.
#   dm_cpu_net   the DM's CPU seconds per second from link up to the end of
#                the dom0 -> guest stream (pings, both transfers and the
#                pauses between them), from the guest's "E2E mark net0/net1"
#   mtu9000      MTU 9000 on both ends (xenbr0 and every port too), 9000-byte
#                pings both ways; neither side reassembled a fragment (so the
#                frames crossed whole)
#   nettrace     only with E2E_NET_TRACE=1 (or =ENTRIES, default 8192) and a
#                stubdm: ok when dom0 got HMP `info nettrace` right after the
#                20 pings into results/<dm>/nettrace.txt (stubdm's NIC events,
#                STUBDM_NET_TRACE, and each ping's phases: issue #10), else
#                why not. The guest waits while dom0 reads it (the gate below).
# Every byte is checked: md5 of what was sent against what arrived, both ways.
# Guest-side timings use the guest's clock, dom0-side ones dom0's.
# The guest part runs on every boot but does nothing without an e1000.
NET_GUEST_IP=10.9.0.2 NET_DOM0_IP=10.9.0.1 NET_PREFIX=24
NET_MAC=00:16:3e:5e:00:02
NET_MIB=4           # MiB each way
NET_WAIT=300        # s for any one transfer
NET_GATE_PORT=5003  # dom0 listens here only while it wants the guest to wait (net_trace_gate)
NET_GATE_WAIT=120   # s the guest waits at most

# uptime with hundredths (the guest and dom0 both have /proc/uptime)
net_now() { cut -d' ' -f1 /proc/uptime; }

# net_recv PORT FILE SECONDS (in the background): receive one TCP stream
# into FILE; FILE.t gets "<first byte time> <EOF time>"; gives up after
# SECONDS. busybox nc quits when its stdin ends, so it reads a FIFO held open
# instead of /dev/null. Nothing of it writes to our stdout (dom0's driver
# output goes through tee, which would wait for it). net_recv_stop FILE ends it.
net_recv() {
  local port=$1 out=$2 secs=$3
  rm -f "$out" "$out.t" "$out.hold" "$out.pid"
  mkfifo "$out.hold"
  (
    exec 3<>"$out.hold"
    sh -c 'echo $$ >"$1"; exec timeout "$2" busybox nc -l -p "$3"' - "$out.pid" "$secs" "$port" <&3 | {
      dd bs=1 count=1 of="$out" 2>/dev/null
      a=$(net_now)
      cat >>"$out"
      echo "$a $(net_now)" >"$out.t"
    }
  ) </dev/null >/dev/null 2>&1 &
}
net_recv_stop() { [ -f "$1.pid" ] && kill "$(cat "$1.pid")" 2>/dev/null; rm -f "$1.pid"; }

# MB/s for BYTES over the span in FILE.t
net_mbps() { awk -v n="$1" '{ d = $2 - $1; printf "%.2f", (d > 0 ? n / d / 1e6 : 0) }' "$2.t" 2>/dev/null; }
net_reasm() { awk '$1 == "Ip:" && !h { for (i = 2; i <= NF; i++) if ($i == "ReasmReqds") c = i; h = 1; next } $1 == "Ip:" { print $c }' /proc/net/snmp; }
net_tcp() { awk -v f="$1" '$1 == "Tcp:" && !h { for (i = 2; i <= NF; i++) if ($i == f) c = i; h = 1; next } $1 == "Tcp:" { print $c }' /proc/net/snmp; }
net_retrans() { net_tcp RetransSegs; }
# eth0's interrupts so far, summed over CPUs (0 when the line is missing)
net_irqs() { awk '/eth0/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts; }

# In the guest, right after the pings: hold on while dom0 reads the device
# model's NIC trace, so that the trace ends with the pings and not with the
# streams that follow. dom0 listens on NET_GATE_PORT only when it traces and
# ends the connection once it has the trace; without a listener the connect
# is refused at once (one SYN and its RST). nc's stdin is a FIFO held open:
# busybox nc quits when its stdin ends, here it must wait for dom0.
net_trace_gate() {
  rm -f /tmp/gate.hold && mkfifo /tmp/gate.hold
  (exec 3<>/tmp/gate.hold; exec timeout "$NET_GATE_WAIT" nc "$NET_DOM0_IP" "$NET_GATE_PORT" <&3 >/dev/null 2>&1)
  rm -f /tmp/gate.hold
}

net_guest() {
  local d nic="" t0 tp t1 i
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x100e ] && nic=$d
  done
  [ -n "$nic" ] || return 0
  grep -q 'e2e_pxe=1' /proc/cmdline && return 0 # the pxe scenario's boot
  t0=$(net_now)
  while read -r m; do insmod "/$m" 2>/dev/null; done </net.modules
  i=0
  while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  [ -e /sys/class/net/eth0 ] || { echo "E2E net error=no-eth0-after-e1000-load"; return; }
  tp=$(net_now)
  ip link set eth0 up
  i=0
  while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i + 1)); done
  t1=$(net_now)
  [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] || { echo "E2E net error=no-carrier-after-120s"; return; }
  ip link set eth0 mtu 9000 || echo "E2E net error=mtu-9000-refused"
  ip addr add "$NET_GUEST_IP/$NET_PREFIX" dev eth0
  net_recv 5002 /tmp/netrx "$NET_WAIT"
  local r0 s0
  r0=$(net_reasm) s0=$(net_retrans)
  echo "E2E net link_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
    "probe_s=$(awk -v a="$t0" -v b="$tp" 'BEGIN { printf "%.2f", b - a }') mac=$(cat /sys/class/net/eth0/address)"
  echo "E2E mark net0"
  # dom0 answers ARP once its side is bridged: wait for it (bounded)
  i=0
  until ping -c 1 -W 1 "$NET_DOM0_IP" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 60 ] || { echo "E2E net error=dom0-never-answered-ping"; echo "E2E net-sync tx-done"; net_recv_stop /tmp/netrx; return; }
  done
  local q0 q1
  q0=$(net_irqs)
  ping -c 20 -i 0.2 -W 5 "$NET_DOM0_IP" >/tmp/ping.txt 2>&1
  q1=$(net_irqs)
  echo "E2E net-sync pings-done"
  net_trace_gate
  local pms lost jumbo=bad
  pms=$(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' /tmp/ping.txt | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2 }')
  lost=$((20 - $(grep -c 'time=' /tmp/ping.txt)))
  [ "$(ping -c 3 -s 8972 -W 5 "$NET_DOM0_IP" 2>/dev/null | grep -c 'bytes from.*time=')" = 3 ] && jumbo=ok
  dd if=/dev/urandom of=/tmp/nettx bs=64k count=$((NET_MIB * 16)) 2>/dev/null
  local txmd5
  txmd5=$(md5sum </tmp/nettx | cut -d' ' -f1)
  local x0 o0 t0r
  x0=$(net_irqs) o0=$(net_tcp OutSegs) t0r=$(net_retrans)
  timeout "$NET_WAIT" nc "$NET_DOM0_IP" 5001 </tmp/nettx
  echo "E2E net ping_ms=$pms ping_lost=$lost jumbo_ping=$jumbo tx_md5=$txmd5 irq_ping=$((q1 - q0))" \
    "irq_tx=$(($(net_irqs) - x0)) segs_tx=$(($(net_tcp OutSegs) - o0)) retrans_tx=$(($(net_retrans) - t0r))"
  local y0 i0 o1
  y0=$(net_irqs) i0=$(net_tcp InSegs) o1=$(net_tcp OutSegs)
  echo "E2E net-sync tx-done"
  # dom0 now pings us with 9000 bytes and sends its file
  i=0
  while [ ! -f /tmp/netrx.t ] && [ $i -lt $((NET_WAIT * 5)) ]; do sleep 0.2; i=$((i + 1)); done
  net_recv_stop /tmp/netrx
  echo "E2E mark net1"
  echo "E2E net irq_rx=$(($(net_irqs) - y0)) segs_rx=$(($(net_tcp InSegs) - i0)) acks_rx=$(($(net_tcp OutSegs) - o1))"
  local rxb rxmd5 e=0 f
  rxb=$(wc -c </tmp/netrx 2>/dev/null || echo 0)
  rxmd5=$(md5sum </tmp/netrx 2>/dev/null | cut -d' ' -f1)
  for f in rx_errors rx_crc_errors rx_frame_errors rx_length_errors rx_missed_errors rx_fifo_errors tx_errors; do
    e=$((e + $(cat /sys/class/net/eth0/statistics/$f 2>/dev/null || echo 0)))
  done
  echo "E2E net rx_bytes=$rxb rx_md5=$rxmd5 tcp_rx_mbps=$(net_mbps "$rxb" /tmp/netrx) nic_errors=$e" \
    "reasm=$(($(net_reasm) - r0)) retrans=$(($(net_retrans) - s0))"
  rm -f /tmp/netrx /tmp/nettx
}

# What the device model's log says about the e1000 it has not got, and the
# log's last line (why it stopped), for FAIL reasons. Empty: nothing to say.
net_no_e1000() {
  local log=/var/log/xen/qemu-dm-$1.log no last
  no=$(tr -d '\r' <"$log" 2>/dev/null | grep -a -m1 -o -- '-device e1000: not emulated yet[^"]*')
  last=$(tr -d '\r' <"$log" 2>/dev/null | grep -a -v '^stubdm-dm: .* argv:' | tail -n 1 | cut -c1-200)
  [ -z "$no" ] && [ -z "$last" ] && return 0
  echo "${no:+$no; }log ends: ${last:-(empty)}"
}

# Entries of the NIC trace for this run's stubdm (empty: none): E2E_NET_TRACE=1 is 8192.
net_trace_entries() {
  case $DM in stubdm-*) ;; *) return 0 ;; esac
  case ${E2E_NET_TRACE:-} in '' | 0) ;; 1) echo 8192 ;; *[!0-9]*) ;; *) echo "$E2E_NET_TRACE" ;; esac
}

# net_trace_dump DOMID: HMP info nettrace into results/<dm>/nettrace.txt; prints the key's value.
net_trace_dump() {
  local out=$R/$DM/nettrace.txt
  mkdir -p "$R/$DM"
  if timeout 120 xl qemu-monitor-command "$1" "info nettrace" 2>&1 | tr -d '\r' >"$out" &&
    grep -q '^nettrace: [0-9]* events' "$out"; then
    echo "E2E-DOM0 $DM: net trace $(head -n 1 "$out")" >&2
    echo ok
  else
    echo "failed($(head -c 80 "$out" | tr -c 'A-Za-z0-9._-' _))"
  fi
}

net_run() {
  local name="e2e-net-$DM" serial domid t0 i line jumbo=bad txmd5 rxmd5 tx_mbps reasm0 reasm1 why
  local trace traced="" tracekey=""
  trace=$(net_trace_entries)
  serial=$RUN_DIR/$name.serial
  [ -d /sys/class/net/xenbr0 ] || { ip link add xenbr0 type bridge && ip link set xenbr0 up; } ||
    { fail "cannot create bridge xenbr0 in dom0"; return; }
  ip addr replace "$NET_DOM0_IP/$NET_PREFIX" dev xenbr0
  # vif-bridge gives every new port the bridge's MTU (set_mtu)
  ip link set xenbr0 mtu 9000 || { fail "cannot set xenbr0's MTU to 9000"; return; }
  rm -f "$serial" && : >"$serial"
  {
    guest_cfg "$name"
    echo "vif=[ \"model=e1000,bridge=xenbr0,mac=$NET_MAC\" ]"
    # The stub domain's /init turns this into STUBDM_NET_TRACE (rootfs/lib/stubdom.sh cmdline_env).
    [ -n "$trace" ] && is_stubdom && echo "stubdomain_cmdline=\"stubdm.net_trace=$trace\""
  } >"$RUN_DIR/$name.cfg"
  # dom0's stubdm: dom0/stubdm-dm reads it when libxl starts it.
  if [ -n "$trace" ] && ! is_stubdom; then echo "$trace" >/run/e2e-stubdm-nettrace; fi
  # The guest waits after its pings while this listens (net_trace_gate).
  [ -n "$trace" ] && net_recv "$NET_GATE_PORT" /tmp/net-gate $((${E2E_GUEST_TIMEOUT:-900} + NET_WAIT))
  reasm0=$(net_reasm)
  # open from before the guest exists until well after it could have sent
  net_recv 5001 /tmp/net-rx $((${E2E_GUEST_TIMEOUT:-900} + NET_WAIT))
  t0=$(now)
  if ! timeout 150 xl create "$RUN_DIR/$name.cfg" >"$RUN_DIR/$name.create.log" 2>&1; then
    rm -f /run/e2e-stubdm-nettrace
    why=$(net_no_e1000 "$name")
    fail "xl create failed: $(create_error "$RUN_DIR/$name.create.log")${why:+ (the device model says: $why)}"
    timeout 60 xl destroy "$name" >/dev/null 2>&1; net_recv_stop /tmp/net-rx; net_recv_stop /tmp/net-gate
    ip link set xenbr0 mtu 1500; save_dm_logs "$name"; return
  fi
  rm -f /run/e2e-stubdm-nettrace # read by stubdm-dm when libxl started it
  domid=$(xl domid "$name" 2>/dev/null)
  rm -f "$RUN_DIR/cpu-$name.txt"
  dm_cpu_target "$name" "$(xenstore-read "/local/domain/$domid/image/device-model-pid" 2>/dev/null)"
  echo "E2E-DOM0 $DM: net guest $domid up; bridge: $(ls /sys/class/net/xenbr0/brif | tr '\n' ' ')"
  # Until the guest is done sending (or gives up), then our half.
  local deadline=$((SECONDS + ${E2E_GUEST_TIMEOUT:-900}))
  while :; do
    cpu_poll "$serial" "$RUN_DIR/cpu-$name.txt"
    # The pings are done and the guest waits at the gate: read the trace, then let it go on.
    if [ -n "$trace" ] && [ -z "$traced" ] && tr -d '\r' <"$serial" | grep -a -q '^E2E net-sync pings-done'; then
      tracekey=$(net_trace_dump "$domid")
      traced=yes
      net_recv_stop /tmp/net-gate
    fi
    tr -d '\r' <"$serial" | grep -a -q -E '^E2E (net-sync tx-done|net error|done)' && break
    xl domid "$name" >/dev/null 2>&1 || break
    [ $SECONDS -lt $deadline ] || break
    sleep 0.5
  done
  if tr -d '\r' <"$serial" | grep -a -q '^E2E net-sync tx-done'; then
    [ "$(busybox ping -c 3 -s 8972 -W 5 "$NET_GUEST_IP" 2>/dev/null | grep -c 'bytes from.*time=')" = 3 ] && jumbo=ok
    dd if=/dev/urandom of=/tmp/net-tx bs=64k count=$((NET_MIB * 16)) 2>/dev/null
    txmd5=$(md5sum </tmp/net-tx | cut -d' ' -f1)
    for i in $(seq 1 20); do
      timeout "$NET_WAIT" busybox nc "$NET_GUEST_IP" 5002 </tmp/net-tx && break
      sleep 1
    done
  fi
  while cpu_poll "$serial" "$RUN_DIR/cpu-$name.txt"; ! tr -d '\r' <"$serial" | grep -a -q '^E2E done' &&
    xl domid "$name" >/dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do
    sleep 0.5
  done
  reasm1=$(net_reasm)
  timeout 60 xl destroy "$name" >/dev/null 2>&1
  net_recv_stop /tmp/net-rx
  net_recv_stop /tmp/net-gate
  [ -n "$trace" ] && [ -z "$traced" ] && tracekey="failed(the-guest-never-finished-its-pings)"
  rm -f /tmp/net-gate /tmp/net-gate.t /tmp/net-gate.hold
  ip link set xenbr0 mtu 1500
  save_dm_logs "$name"
  tr -d '\r' <"$serial" | grep '^E2E ' >"$RUN_DIR/net-markers"
  nm() { # nm KEY: the guest's value
    awk -v k="$1=" '$1 == "E2E" && $2 == "net" { for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' "$RUN_DIR/net-markers"
  }
  why=$(net_no_e1000 "$name")
  [ -z "$(nm error)" ] || { fail "guest: $(nm error)${why:+ (the device model says: $why)}"; return; }
  [ -n "$(nm link_s)" ] || { fail "the guest saw no e1000 (no 'E2E net link_s' marker)${why:+; the device model says: $why}"; return; }
  [ -n "$(nm tx_md5)" ] || { fail "the guest did not finish sending (link_s=$(nm link_s))"; return; }
  [ "$(nm ping_lost)" = 0 ] || { fail "$(nm ping_lost) of 20 pings to dom0 got no answer"; return; }
  rxmd5=$(md5sum </tmp/net-rx 2>/dev/null | cut -d' ' -f1)
  [ "$rxmd5" = "$(nm tx_md5)" ] ||
    { fail "guest -> dom0: dom0 got $(wc -c </tmp/net-rx 2>/dev/null || echo 0) bytes, md5 $rxmd5, not the guest's $(nm tx_md5)"; return; }
  tx_mbps=$(net_mbps $((NET_MIB * 1048576)) /tmp/net-rx)
  [ -n "$txmd5" ] && [ "$(nm rx_md5)" = "$txmd5" ] ||
    { fail "dom0 -> guest: guest got $(nm rx_bytes) bytes, md5 $(nm rx_md5), not dom0's ${txmd5:-(not sent)}"; return; }
  [ "$(nm nic_errors)" = 0 ] || { fail "the guest's eth0 counted $(nm nic_errors) errors"; return; }
  local mtu="ok"
  [ "$(nm jumbo_ping)" = ok ] || mtu="guest-ping-failed"
  [ "$jumbo" = ok ] || mtu="dom0-ping-failed"
  [ "$(nm reasm)" = 0 ] && [ "$reasm1" = "$reasm0" ] || mtu="fragmented(guest:$(nm reasm),dom0:$((reasm1 - reasm0)))"
  [ "$mtu" = ok ] || { fail "9000-byte MTU: $mtu"; return; }
  rm -f /tmp/net-rx /tmp/net-tx
  pass link_s="$(nm link_s)" probe_s="$(nm probe_s)" ping_ms="$(nm ping_ms)" tcp_tx_mbps="$tx_mbps" tcp_rx_mbps="$(nm tcp_rx_mbps)" \
    mtu9000=ok retrans="$(nm retrans)" irq_ping="$(nm irq_ping)" irq_tx="$(nm irq_tx)" segs_tx="$(nm segs_tx)" retrans_tx="$(nm retrans_tx)" \
    irq_rx="$(nm irq_rx)" segs_rx="$(nm segs_rx)" acks_rx="$(nm acks_rx)" $(cpu_rate "$RUN_DIR/cpu-$name.txt" net0 net1 dm_cpu_net) \
    ${trace:+nettrace=$tracekey}
}
