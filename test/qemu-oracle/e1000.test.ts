/**
 * QEMU oracle for the e1000: the same driver-level sequences run on QEMU's
 * e1000 (Debian's qemu-system-x86 under qtest, its netdev a UDP socket pair
 * with this test: `-netdev dgram`, so frames QEMU sends arrive here and
 * frames sent here arrive at its NIC) and on ours, and the observations
 * must match: register values, EEPROM words through EERD and Microwire,
 * PHY registers through MDIC, writable masks, interrupt causes, TX frames
 * byte for byte (legacy, checksum offload, a 64 KiB TSO send, VLAN
 * insertion), descriptor write-backs and statistics, RX descriptors and
 * buffers (filters, padding, a jumbo frame over several buffers, VLAN
 * stripping). Observations where we differ on purpose are in INTENDED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import * as R from '../../src/devices/e1000/regs.ts';
import { Qtest } from './qtest.ts';
import { ethFrame, MAC, makeNic, MMIO_BASE, IO_BASE } from '../devices/e1000/harness.ts';
import { buildPacket, ETH_HLEN, IP_HLEN, TCP_HLEN } from '../devices/e1000/packets.ts';

/** Observation key -> why ours differs from QEMU there on purpose. */
const INTENDED: Record<string, string> = {
  'mdic.15': 'PHY register 15 (extended status, 1000BASE-T capable) is readable here; QEMU answers MDIC.E',
  'mdic.phy2': 'MDIC to PHY address 2: E set on the command written; QEMU sets E on the previous command\'s fields',
  'mask.RDBAL': 'RDBAL bits 3:0 are ignored (16-byte aligned ring, SDM 13.4.25); QEMU stores them',
  'mask.TDBAL': 'TDBAL bits 3:0 likewise (SDM 13.4.36)',
  'mask.TIDV': 'TIDV is implemented here (SDM 13.4.41); QEMU has no TIDV register (reads 0)',
  'mask.VET': 'VET is 16 bits (SDM 13.4.11); QEMU stores 32',
  'mask.IMS': 'reserved interrupt bits (5, 8, 17-31) do not stick; QEMU stores all 32',
  'ics.all': 'the same reserved bits cannot be set through ICS',
  'tx.stat.GOTCL': 'octets of a frame with an inserted VLAN tag count the tag (DA through CRC); QEMU counts the untagged size',
  'tx.stat.TOTL': 'the same for total octets transmitted',
};

interface Driver {
  r32(off: number): Promise<number>;
  w32(off: number, v: number): Promise<void>;
  memwrite(addr: number, data: Uint8Array): Promise<void>;
  memread(addr: number, len: number): Promise<Uint8Array>;
  /** Deliver a frame to the NIC and let it be processed. */
  inject(frame: Uint8Array): Promise<void>;
  /** Frames the NIC sent since the last call (waits for `expect` of them on QEMU). */
  sent(expect: number): Promise<Uint8Array[]>;
  close(): void;
}

function le32(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
}

async function bindUdp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve());
  });
  return s;
}

async function freePort(): Promise<number> {
  const s = await bindUdp();
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function qemuDriver(): Promise<Driver> {
  const sock = await bindUdp();
  const qemuPort = await freePort();
  const frames: Uint8Array[] = [];
  sock.on('message', (m) => frames.push(new Uint8Array(m)));
  const mac = [...MAC].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const q = await Qtest.start([
    '-netdev', `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${sock.address().port}`,
    '-device', `e1000,netdev=n0,mac=${mac},addr=04.0,romfile=`,
    '-boot', 'reboot-timeout=-1',
  ], 120_000, true);
  const cfg = async (reg: number, size: 1 | 2 | 4, v: number) => {
    await q.out(4, 0xcf8, (0x80000000 | (4 << 11) | (reg & 0xfc)) >>> 0);
    await q.out(size, 0xcfc + (reg & 3), v);
  };
  // The VM runs (netdevs are silent while it is stopped), so SeaBIOS enumerates PCI and
  // assigns BARs first: wait for it to have placed BAR0, then program ours until the NIC
  // answers there. (-boot reboot-timeout=-1: it then idles instead of rebooting after 60 s.)
  const cfgRead = async (reg: number) => {
    await q.out(4, 0xcf8, (0x80000000 | (4 << 11) | reg) >>> 0);
    return q.in(4, 0xcfc);
  };
  for (let i = 0; (await cfgRead(0x10)) === 0; i++) {
    if (i > 2000) throw new Error('SeaBIOS never assigned the e1000 BARs');
    await sleep(5);
  }
  await sleep(300);
  for (let i = 0; ; i++) {
    await cfg(0x10, 4, MMIO_BASE);
    await cfg(0x14, 4, IO_BASE);
    await cfg(0x04, 2, 0x0007);
    if (Number.parseInt(await q.cmd(`readl 0x${(MMIO_BASE + R.STATUS).toString(16)}`), 16) === 0x80080783) break;
    if (i > 1000) throw new Error('QEMU e1000 never came out of reset');
  }
  const r32 = async (off: number) => Number.parseInt(await q.cmd(`readl 0x${(MMIO_BASE + off).toString(16)}`), 16) >>> 0;
  return {
    r32,
    w32: async (off, v) => {
      await q.cmd(`writel 0x${(MMIO_BASE + off).toString(16)} 0x${(v >>> 0).toString(16)}`);
      // QEMU refuses received frames for 1 s after an RCTL write (flush_queue_timer); the VM clock runs in real time.
      if (off === R.RCTL) await sleep(1100);
    },
    memwrite: (a, d) => q.memwrite(a, d),
    memread: (a, l) => q.memread(a, l),
    inject: async (f) => {
      const before = await r32(R.RDH);
      sock.send(f, qemuPort, '127.0.0.1');
      for (let i = 0; i < 400 && (await r32(R.RDH)) === before; i++) await sleep(5);
    },
    sent: async (expect) => {
      for (let i = 0; i < 600 && frames.length < expect; i++) await sleep(5);
      await sleep(20);
      return frames.splice(0);
    },
    close: () => {
      q.close();
      sock.close();
    },
  };
}

function ourDriver(): Driver {
  const n = makeNic({ ramBytes: RAM_BYTES });
  let taken = 0;
  return {
    r32: async (off) => n.r32(off),
    w32: async (off, v) => n.w32(off, v),
    memwrite: async (a, d) => void n.ram.set(d, a),
    memread: async (a, l) => n.ram.slice(a, a + l),
    inject: async (f) => {
      n.be.inject(f);
      n.clock.advance(2000);
    },
    sent: async () => {
      const out = n.be.sent.slice(taken).map((s) => s.frame);
      taken = n.be.sent.length;
      return out;
    },
    close: () => {},
  };
}

/** Rings and buffers at 32 MiB: far from what QEMU's firmware (which runs: see qemuDriver) uses. */
const TX_RING = 0x2000000;
const RX_RING = 0x2010000;
const TX_BUF = 0x2100000;
const RX_BUF = 0x2200000;
const RAM_BYTES = 48 << 20;

type Rec = [string, string][];
const hex = (v: number) => '0x' + (v >>> 0).toString(16);
const bytes = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function scenario(d: Driver, expectFrames: (k: string) => number): Promise<Rec> {
  const rec: Rec = [];
  const put = (k: string, v: string) => rec.push([k, v]);
  const REGS: [string, number][] = [
    ['CTRL', R.CTRL], ['STATUS', R.STATUS], ['EECD', R.EECD], ['EERD', R.EERD], ['MDIC', R.MDIC], ['VET', R.VET],
    ['ICR', R.ICR], ['IMS', R.IMS], ['RCTL', R.RCTL], ['TCTL', R.TCTL], ['PBA', R.PBA], ['LEDCTL', R.LEDCTL],
    ['MANC', R.MANC], ['RAL0', R.RA], ['RAH0', R.RA + 4], ['RAL1', R.RA + 8], ['RAH1', R.RA + 12], ['RDLEN', R.RDLEN],
    ['TDLEN', R.TDLEN], ['ITR', R.ITR], ['RDTR', R.RDTR], ['TXDCTL', R.TXDCTL], ['RXDCTL', R.RXDCTL],
  ];
  for (const [name, off] of REGS) put(`reset.${name}`, hex(await d.r32(off)));

  // EEPROM through EERD (iPXE) and Microwire (Linux e1000_read_eeprom).
  for (let a = 0; a < 66; a++) {
    await d.w32(R.EERD, R.EERD_START | (a << 8));
    put(`eerd.${a}`, hex(await d.r32(R.EERD)));
  }
  const words: number[] = [];
  for (let a = 0; a < 64; a++) {
    let eecd = (await d.r32(R.EECD)) | R.EECD_REQ;
    await d.w32(R.EECD, eecd);
    eecd = (await d.r32(R.EECD)) & ~(R.EECD_DI | R.EECD_SK);
    await d.w32(R.EECD, eecd);
    eecd |= R.EECD_CS;
    await d.w32(R.EECD, eecd);
    const cmd = (0x6 << 6) | a;
    for (let bit = 8; bit >= 0; bit--) {
      eecd = (eecd & ~R.EECD_DI) | ((cmd >> bit) & 1 ? R.EECD_DI : 0);
      await d.w32(R.EECD, eecd);
      await d.w32(R.EECD, eecd | R.EECD_SK);
      await d.w32(R.EECD, eecd);
    }
    let w = 0;
    for (let bit = 0; bit < 16; bit++) {
      await d.w32(R.EECD, eecd | R.EECD_SK);
      w = (w << 1) | ((await d.r32(R.EECD)) & R.EECD_DO ? 1 : 0);
      await d.w32(R.EECD, eecd);
    }
    words.push(w);
    await d.w32(R.EECD, eecd & ~(R.EECD_CS | R.EECD_REQ));
  }
  put('microwire', words.map((w) => w.toString(16)).join(','));

  // PHY registers through MDIC, address 1 and 2.
  for (let reg = 0; reg < 32; reg++) {
    await d.w32(R.MDIC, (reg << 16) | (1 << 21) | R.MDIC_OP_READ);
    put(`mdic.${reg}`, hex(await d.r32(R.MDIC)));
  }
  await d.w32(R.MDIC, (2 << 16) | (2 << 21) | R.MDIC_OP_READ);
  put('mdic.phy2', hex(await d.r32(R.MDIC)));
  await d.w32(R.MDIC, (1 << 16) | (1 << 21) | R.MDIC_OP_WRITE | 0xffff);
  put('mdic.write-ro', hex(await d.r32(R.MDIC)));

  // Writable masks.
  const MASKED: [string, number][] = [
    ['RDBAL', R.RDBAL], ['RDLEN', R.RDLEN], ['RDH', R.RDH], ['RDT', R.RDT], ['RDTR', R.RDTR], ['RADV', R.RADV],
    ['TDBAL', R.TDBAL], ['TDLEN', R.TDLEN], ['TDH', R.TDH], ['TIDV', R.TIDV], ['TADV', R.TADV], ['ITR', R.ITR],
    ['VET', R.VET], ['MTA5', R.MTA + 20], ['VFTA9', R.VFTA + 36], ['RAL3', R.RA + 24], ['IMS', R.IMS],
  ];
  for (const [name, off] of MASKED) {
    await d.w32(off, 0xffffffff);
    put(`mask.${name}`, hex(await d.r32(off)));
    await d.w32(off, 0);
  }
  await d.w32(R.IMC, 0xffffffff);
  put('imc', hex(await d.r32(R.IMS)));

  // Interrupt causes.
  await d.w32(R.ICS, R.ICR_LSC | R.ICR_RXT0);
  put('ics.read', hex(await d.r32(R.ICS)));
  put('icr.read', hex(await d.r32(R.ICR)));
  put('icr.again', hex(await d.r32(R.ICR)));
  await d.w32(R.ICS, 0xffffffff);
  put('ics.all', hex(await d.r32(R.ICR)));

  // ---- TX ----
  await d.w32(R.TDBAL, TX_RING);
  await d.w32(R.TDBAH, 0);
  await d.w32(R.TDLEN, 64 * 16);
  await d.w32(R.TDH, 0);
  await d.w32(R.TDT, 0);
  await d.w32(R.TCTL, R.TCTL_EN | R.TCTL_PSP);
  let t = 0;
  const desc = async (addr: number, lower: number, upper: number) => {
    const b = new Uint8Array(16);
    b.set(le32(addr), 0);
    b.set(le32(lower), 8);
    b.set(le32(upper), 12);
    await d.memwrite(TX_RING + 16 * t, b);
    t++;
  };
  const ctx = async (c: { ipcss: number; ipcso: number; ipcse: number; tucss: number; tucso: number; paylen: number; hdr: number; mss: number; tse: boolean; tcp: boolean }) => {
    const b = new Uint8Array(16);
    b.set(le32(c.ipcss | (c.ipcso << 8) | (c.ipcse << 16)), 0);
    b.set(le32(c.tucss | (c.tucso << 8)), 4);
    b.set(le32(c.paylen | R.TXD_CMD_DEXT | R.TXD_CMD_IP | (c.tcp ? R.TXD_CMD_TCP : 0) | (c.tse ? R.TXD_CMD_TSE : 0)), 8);
    b.set(le32((c.hdr << 8) | (c.mss << 16)), 12);
    await d.memwrite(TX_RING + 16 * t, b);
    t++;
  };
  const DATA = R.TXD_CMD_DEXT | R.TXD_DTYP_D;
  const EOP_RS = R.TXD_CMD_EOP | R.TXD_CMD_RS;
  const observeTx = async (name: string) => {
    await d.w32(R.TDT, t);
    const frames = await d.sent(expectFrames(name));
    put(`${name}.count`, String(frames.length));
    frames.forEach((f, i) => put(`${name}.frame${i}`, bytes(f)));
    put(`${name}.tdh`, hex(await d.r32(R.TDH)));
    put(`${name}.ring`, bytes(await d.memread(TX_RING, 16 * t)));
  };
  // Legacy: one frame over two buffers.
  const f1 = ethFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0806, Uint8Array.from({ length: 200 }, (_, i) => i));
  await d.memwrite(TX_BUF, f1);
  await desc(TX_BUF, 100, 0);
  await desc(TX_BUF + 100, f1.length - 100 | EOP_RS, 0);
  await observeTx('tx.legacy');
  // Checksum offload: TCP and UDP.
  for (const proto of [6, 17] as const) {
    const pkt = buildPacket({ proto, payload: Uint8Array.from({ length: 333 }, (_, i) => i * 3) });
    await d.memwrite(TX_BUF + 0x1000, pkt);
    const l4 = ETH_HLEN + IP_HLEN;
    await ctx({ ipcss: ETH_HLEN, ipcso: ETH_HLEN + 10, ipcse: l4 - 1, tucss: l4, tucso: l4 + (proto === 6 ? 16 : 6), paylen: 0, hdr: 0, mss: 0, tse: false, tcp: proto === 6 });
    await desc(TX_BUF + 0x1000, pkt.length | DATA | EOP_RS, (R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM) << 8);
    await observeTx(`tx.csum${proto}`);
  }
  // TSO: 54-byte header + 65000 bytes of payload (not a multiple of the MSS) in 5 descriptors.
  const hdr = ETH_HLEN + IP_HLEN + TCP_HLEN;
  const payload = Uint8Array.from({ length: 65000 }, (_, i) => (i * 13 + (i >> 8)) & 0xff);
  const tso = buildPacket({ proto: 6, payload, flags: 0x19, id: 0x4000, seq: 0xfffff000, l4csum: 'pseudo-nolen', totLen: 'zero' });
  await d.memwrite(TX_BUF + 0x10000, tso);
  await ctx({ ipcss: ETH_HLEN, ipcso: ETH_HLEN + 10, ipcse: ETH_HLEN + IP_HLEN - 1, tucss: ETH_HLEN + IP_HLEN, tucso: ETH_HLEN + IP_HLEN + 16, paylen: payload.length, hdr, mss: 1448, tse: true, tcp: true });
  await desc(TX_BUF + 0x10000, hdr | DATA | R.TXD_CMD_TSE, (R.TXD_POPTS_IXSM | R.TXD_POPTS_TXSM) << 8);
  for (let off = 0; off < payload.length; off += 16384) {
    const len = Math.min(16384, payload.length - off);
    await desc(TX_BUF + 0x10000 + hdr + off, len | DATA | R.TXD_CMD_TSE | (off + len >= payload.length ? EOP_RS : 0), 0);
  }
  await observeTx('tx.tso');
  // VLAN insertion.
  await d.w32(R.CTRL, (await d.r32(R.CTRL)) | R.CTRL_VME);
  await desc(TX_BUF, f1.length | EOP_RS | R.TXD_CMD_VLE, 0x2345 << 16);
  await observeTx('tx.vlan');
  await d.w32(R.CTRL, (await d.r32(R.CTRL)) & ~R.CTRL_VME);
  const STATS: [string, number][] = [
    ['TPT', R.ST_TPT], ['GPTC', R.ST_GPTC], ['GOTCL', R.ST_GOTCL], ['TOTL', R.ST_TOTL], ['BPTC', R.ST_BPTC],
    ['MPTC', R.ST_MPTC], ['TSCTC', R.ST_TSCTC], ...[0, 1, 2, 3, 4, 5].map((i): [string, number] => [`PTC${i}`, R.ST_PTC64 + i]),
  ];
  for (const [name, i] of STATS) put(`tx.stat.${name}`, hex(await d.r32(R.STATS + 4 * i)));
  put('tx.icr', hex(await d.r32(R.ICR)));

  // ---- RX ----
  const ring = new Uint8Array(16 * 16);
  for (let i = 0; i < 16; i++) ring.set(le32(RX_BUF + i * 2048), 16 * i);
  await d.memwrite(RX_RING, ring);
  await d.memwrite(RX_BUF, new Uint8Array(16 * 2048));
  await d.w32(R.RDBAL, RX_RING);
  await d.w32(R.RDBAH, 0);
  await d.w32(R.RDLEN, 16 * 16);
  await d.w32(R.RDH, 0);
  await d.w32(R.RDT, 15);
  await d.w32(R.RCTL, R.RCTL_EN | R.RCTL_BAM | R.RCTL_LPE);
  const rx = async (name: string, f: Uint8Array) => {
    await d.inject(f);
    put(`${name}.rdh`, hex(await d.r32(R.RDH)));
  };
  const other = [0x52, 0x54, 0x00, 0x99, 0x99, 0x99];
  // A filtered frame, then one that passes: only the second lands (UDP keeps the order).
  await d.inject(ethFrame(other, 0x0800, new Uint8Array(80)));
  await rx('rx.after-filtered', ethFrame(MAC, 0x0800, Uint8Array.from({ length: 80 }, (_, i) => i)));
  await rx('rx.short', ethFrame(MAC, 0x0806, [1, 2, 3]));
  await rx('rx.bcast', ethFrame([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0806, new Uint8Array(28).fill(7)));
  await rx('rx.jumbo', ethFrame(MAC, 0x0800, Uint8Array.from({ length: 5000 }, (_, i) => i * 5)));
  await d.w32(R.CTRL, (await d.r32(R.CTRL)) | R.CTRL_VME);
  const tagged = ethFrame(MAC, 0x8100, [0x20, 0x05, 0x08, 0x00, ...new Uint8Array(60).fill(9)]);
  await rx('rx.vlan', tagged);
  put('rx.ring', bytes(await d.memread(RX_RING, 16 * 16)));
  put('rx.bufs', bytes(await d.memread(RX_BUF, 10 * 2048)));
  for (const [name, i] of [['GPRC', R.ST_GPRC], ['BPRC', R.ST_BPRC], ['TPR', R.ST_TPR], ['GORCL', R.ST_GORCL], ['PRC64', R.ST_PRC64], ['PRC1522', R.ST_PRC64 + 5]] as const) {
    put(`rx.stat.${name}`, hex(await d.r32(R.STATS + 4 * i)));
  }
  put('rx.icr', hex(await d.r32(R.ICR)));
  return rec;
}

test('QEMU oracle: e1000 registers, EEPROM, PHY, TX frames (TSO included) and RX descriptors match QEMU', async () => {
  const ours = ourDriver();
  const a = await scenario(ours, () => 0);
  const counts = new Map(a.filter(([k]) => k.endsWith('.count')).map(([k, v]) => [k.replace(/\.count$/, ''), Number(v)]));
  const q = await qemuDriver();
  let b: Rec;
  try {
    b = await scenario(q, (k) => counts.get(k) ?? 0);
  } finally {
    q.close();
  }
  assert.equal(b.length, a.length, 'same number of observations');
  const diffs: string[] = [];
  let same = 0;
  for (let i = 0; i < a.length; i++) {
    const [k, ov] = a[i];
    const [k2, qv] = b[i];
    assert.equal(k2, k, 'observation order');
    if (ov === qv) same++;
    else if (!INTENDED[k]) diffs.push(`${k}: ours ${ov.slice(0, 120)} qemu ${qv.slice(0, 120)}`);
  }
  assert.deepEqual(diffs, [], `${same} observations equal; differences:\n${diffs.join('\n')}`);
  const ourValue = (k: string) => a.find(([key]) => key === k)?.[1];
  assert.ok(same > 200, `${same} observations equal`);
  assert.equal(counts.get('tx.tso'), 45, 'the TSO send was compared segment by segment');
  assert.equal(counts.get('tx.legacy'), 1);
  assert.equal(ourValue('rx.vlan.rdh'), '0x7', 'six frames (one jumbo over three buffers) were received and compared');
});
