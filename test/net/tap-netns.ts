// Run by test/net/tap.test.ts as `unshare --net --mount` (with /sys mounted
// again) `node --import tsx --test this-file`: in a fresh network namespace (nothing else on it, gone when
// the process exits), a real tap opened by TapBackend is 10.77.0.1/24, and a
// made-up host 10.77.0.2 (MAC 02:00:00:00:77:02) sits "behind" it, played by
// the test through the backend: the kernel's UDP datagrams to 10.77.0.2 come
// out of TapBackend's receiver, and frames TapBackend sends reach a UDP
// socket bound to 10.77.0.1. Not a *.test.ts file: it needs the namespace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { TapBackend, onesSum } from '../../src/net/index.ts';

const IF = 'sdmtap0';
const HOST_MAC = [0x02, 0x00, 0x00, 0x00, 0x77, 0x02];
const TAP_IP = [10, 77, 0, 1];
const PEER_IP = [10, 77, 0, 2];
const PEER_PORT = 9999;
const quiet = pino({ level: 'silent' });

let tap: TapBackend;
let tapMac: number[];
let sock: dgram.Socket;
let sockPort: number;

function sh(cmd: string): void {
  execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
}
const stat = (name: string): number => Number(readFileSync(`/sys/class/net/${IF}/statistics/${name}`, 'utf8'));
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Payload of datagram `seq`: its number, then bytes derived from it. */
function payload(seq: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt32BE(seq, 0);
  for (let i = 4; i < len; i++) b[i] = (seq * 7 + i) & 0xff;
  return b;
}

/** UDP datagrams to PEER_IP:PEER_PORT among received frames: [seq, payload] (null for other frames). */
function udpToPeer(f: Uint8Array): Buffer | null {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 17) return null;
  if (f[30] !== PEER_IP[0] || f[31] !== PEER_IP[1] || f[32] !== PEER_IP[2] || f[33] !== PEER_IP[3]) return null;
  if (((f[36] << 8) | f[37]) !== PEER_PORT) return null;
  const ihl = (f[14] & 0xf) * 4;
  const udpLen = (f[14 + ihl + 4] << 8) | f[14 + ihl + 5];
  return Buffer.from(f.subarray(14 + ihl + 8, 14 + ihl + udpLen));
}

/** An Ethernet/IPv4/UDP frame from the peer to the tap's address, UDP checksum done or left to offload. */
function peerFrame(data: Buffer, partial: boolean, src: number[] = PEER_IP): Uint8Array {
  const udpLen = 8 + data.length;
  const f = new Uint8Array(14 + 20 + udpLen);
  f.set(tapMac, 0);
  f.set(HOST_MAC, 6);
  f[12] = 0x08;
  const ip = 14;
  f[ip] = 0x45;
  f[ip + 2] = (20 + udpLen) >> 8;
  f[ip + 3] = (20 + udpLen) & 0xff;
  f[ip + 6] = 0x40; // DF
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  f.set(src, ip + 12);
  f.set(TAP_IP, ip + 16);
  const hc = ~onesSum(f, ip, ip + 20) & 0xffff;
  f[ip + 10] = hc >> 8;
  f[ip + 11] = hc & 0xff;
  const u = ip + 20;
  f[u] = PEER_PORT >> 8;
  f[u + 1] = PEER_PORT & 0xff;
  f[u + 2] = sockPort >> 8;
  f[u + 3] = sockPort & 0xff;
  f[u + 4] = udpLen >> 8;
  f[u + 5] = udpLen & 0xff;
  f.set(data, u + 8);
  const pseudo = onesSum(f, ip + 12, ip + 20, 17 + udpLen);
  const c = partial ? pseudo : ~onesSum(f, u, f.length, pseudo) & 0xffff || 0xffff;
  f[u + 6] = c >> 8;
  f[u + 7] = c & 0xff;
  return f;
}

before(async () => {
  tap = TapBackend.open({ ifname: IF, log: quiet });
  assert.equal(tap.name, IF);
  // No IPv6 on the tap: its router solicitations and MLD reports would be frames the tests do not
  // count (the backpressure test compares the tap's tx_dropped with the UDP datagrams it lost).
  sh(`echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/${IF}/disable_ipv6 &&
      ip link set lo up && ip link set ${IF} up && ip addr add 10.77.0.1/24 dev ${IF} &&
      ip neigh replace 10.77.0.2 lladdr 02:00:00:00:77:02 dev ${IF} nud permanent`);
  tapMac = readFileSync(`/sys/class/net/${IF}/address`, 'utf8').trim().split(':').map((h) => parseInt(h, 16));
  sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  await new Promise<void>((r) => sock.bind(0, '10.77.0.1', r));
  sockPort = sock.address().port;
});

after(async () => {
  sock.close();
  await tap.close();
});

test('the tap exists as asked, non-blocking, with a virtio-net header when the kernel has one', () => {
  const info = execFileSync('ip', ['-d', 'link', 'show', IF], { encoding: 'utf8' });
  assert.match(info, /tun type tap pi off/);
  assert.equal(tap.offloads, /vnet_hdr on/.test(info), `offloads=${tap.offloads} but ${info}`);
});

test('kernel -> tap: datagrams arrive as frames, in order, intact, once each', async () => {
  const got: Buffer[] = [];
  tap.setReceiver((f) => {
    const p = udpToPeer(f);
    if (p) got.push(p);
    return true;
  });
  const n = 300;
  for (let i = 0; i < n; i++) sock.send(payload(i, 20 + ((i * 37) % 1400)), PEER_PORT, '10.77.0.2');
  await until(() => got.length >= n, 10_000, `${n} frames (got ${got.length})`);
  await turns(5);
  assert.equal(got.length, n, 'no duplicates');
  got.forEach((p, i) => assert.deepEqual(p, payload(i, 20 + ((i * 37) % 1400)), `datagram ${i}`));
});

test('tap -> kernel: frames sent reach the socket in order and intact (full checksum, and offloaded when available)', async () => {
  const got: Buffer[] = [];
  const onMsg = (m: Buffer): void => void got.push(m);
  sock.on('message', onMsg);
  const n = 200;
  for (let i = 0; i < n; i++) {
    const partial = tap.offloads && i % 2 === 1;
    const f = peerFrame(payload(i, 10 + ((i * 53) % 1400)), partial);
    const off = partial ? { csumStart: 34, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' as const } : null;
    assert.equal(tap.send(f, off), true);
  }
  await until(() => got.length >= n, 10_000, `${n} datagrams (got ${got.length})`);
  sock.off('message', onMsg);
  got.forEach((p, i) => assert.deepEqual(p, payload(i, 10 + ((i * 53) % 1400)), `datagram ${i}`));
  assert.equal(tap.stats.txFrames, n);
});

test('a checksum offload on a tap without a virtio header is finished in software (the kernel checks it)', async () => {
  const plain = TapBackend.open({ ifname: 'sdmtap1', vnetHdr: false, log: quiet });
  try {
    assert.equal(plain.offloads, false);
    sh(`ip link set sdmtap1 up && ip addr add 10.78.0.1/24 dev sdmtap1`);
    // Aim at the same socket through the other tap: its own MAC, the socket's address.
    const mac = readFileSync('/sys/class/net/sdmtap1/address', 'utf8').trim().split(':').map((h) => parseInt(h, 16));
    const got: Buffer[] = [];
    const onMsg = (m: Buffer): void => void got.push(m);
    sock.on('message', onMsg);
    for (let i = 0; i < 20; i++) {
      const f = peerFrame(payload(i, 100 + i), true, [10, 78, 0, 2]);
      f.set(mac, 0);
      assert.equal(plain.send(f, { csumStart: 34, csumOffset: 6, gsoSize: 0, hdrLen: 0, gsoType: 'none' }), true);
    }
    await until(() => got.length >= 20, 10_000, `20 datagrams (got ${got.length}); a wrong checksum is dropped by the kernel`);
    sock.off('message', onMsg);
    got.forEach((p, i) => assert.deepEqual(p, payload(i, 100 + i)));
  } finally {
    await plain.close();
  }
});

test('9000-byte MTU: jumbo frames both ways', async () => {
  sh(`ip link set ${IF} mtu 9000`);
  const got: Buffer[] = [];
  let big = 0;
  tap.setReceiver((f) => {
    const p = udpToPeer(f);
    if (p) {
      got.push(p);
      big = Math.max(big, f.length);
    }
    return true;
  });
  sock.send(payload(1, 8972), PEER_PORT, '10.77.0.2');
  await until(() => got.length >= 1, 5000, 'the jumbo datagram');
  assert.equal(big, 9014, 'one 9014-byte frame, not fragments');
  assert.deepEqual(got[0], payload(1, 8972));
  const back: Buffer[] = [];
  const onMsg = (m: Buffer): void => void back.push(m);
  sock.on('message', onMsg);
  assert.equal(tap.send(peerFrame(payload(2, 8972), false), null), true);
  await until(() => back.length >= 1, 5000, 'the jumbo frame sent');
  sock.off('message', onMsg);
  assert.deepEqual(back[0], payload(2, 8972));
  sh(`ip link set ${IF} mtu 1500`);
});

test('backpressure: a full NIC stops reading; the kernel queue (txqueuelen) drops the excess; delivery resumes in order without duplicates', async () => {
  const q = 16;
  sh(`ip link set ${IF} txqueuelen ${q}`);
  const got: number[] = [];
  let full = false;
  let offers = 0;
  tap.setReceiver((f) => {
    const p = udpToPeer(f);
    if (!p) return true;
    offers++;
    if (full) return false;
    got.push(p.readUInt32BE(0));
    if (got.length === 5) full = true;
    return true;
  });
  const dropped0 = stat('tx_dropped');
  const n = 200;
  for (let i = 0; i < n; i++) sock.send(payload(i, 200), PEER_PORT, '10.77.0.2');
  await until(() => full && offers >= 6, 5000, 'the NIC to fill up');
  await new Promise((r) => setTimeout(r, 300)); // the kernel sends the rest meanwhile
  assert.equal(offers, 6, 'one refused frame, then no more reads while the NIC is full');
  const dropped = stat('tx_dropped') - dropped0;
  assert.ok(dropped > 0, 'the tap queue overflowed in the kernel (bounded), not in stubdm');
  full = false;
  tap.resumeReceive();
  await until(() => got.length >= n - dropped, 5000, `the ${n - dropped} frames not dropped (got ${got.length})`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got.length, n - dropped, 'every frame the kernel did not drop, once');
  assert.ok(got.length <= 5 + 1 + q + 1, `no more than the NIC, the held frame and the tap queue hold (${got.length})`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `in order: ${got.join(',')}`);
  assert.deepEqual(got.slice(0, 6), [0, 1, 2, 3, 4, 5], 'the refused frame is the next delivered');
  sh(`ip link set ${IF} txqueuelen 1000`);
});

test("attaches to a persistent tap made beforehand (the stub domain's /init does so) and leaves it there on close", async () => {
  sh('ip tuntap add mode tap name vif9.0-emu');
  const t = TapBackend.open({ ifname: 'vif9.0-emu', log: quiet });
  assert.equal(t.name, 'vif9.0-emu');
  assert.match(execFileSync('ip', ['-d', 'link', 'show', 'vif9.0-emu'], { encoding: 'utf8' }), /persist on/);
  await t.close();
  assert.match(execFileSync('ip', ['link', 'show', 'vif9.0-emu'], { encoding: 'utf8' }), /vif9\.0-emu/);
  // A tap another process holds is refused, not shared.
  const a = TapBackend.open({ ifname: 'vif9.0-emu', log: quiet });
  try {
    assert.throws(() => TapBackend.open({ ifname: 'vif9.0-emu', log: quiet }), (e: NodeJS.ErrnoException) => e.code === 'EBUSY');
  } finally {
    await a.close();
  }
  sh('ip tuntap del mode tap name vif9.0-emu');
});
