/**
 * Judge level 2 for IDE: the same register-level sequences on QEMU's own
 * piix3-ide (qemu-system-x86_64 -machine pc under qtest) and on ours (the
 * simulated hypervisor, IoreqServer, 00:01.1 and the controller), compared
 * field by field. Where the specs leave freedom and we chose differently,
 * the key is listed in INTENDED with the reason; every other field must be
 * equal. Fails with a clear message when QEMU is not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Qtest } from './qtest.ts';
import { createSimHost, simBoard } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { IdeController } from '../../src/devices/ide/controller.ts';
import { MemoryBackend } from '../../src/block/memory.ts';

const DISK_BYTES = 64 << 20;
const CD_BLOCKS = 32;
const BM = 0xc000;
const SERIAL = 'testdisk';
const FW = 'version';
const HD_MODEL = 'STUBDM HARDDISK';
const CD_MODEL = 'STUBDM DVD-ROM';

/** key -> why our value differs from QEMU's on purpose (spec citation or a feature we do not have). */
const INTENDED: Record<string, string> = {
  'poweron.cd.status': 'ATA8-ACS 9.1 / table 184: a PACKET device reports status 00h (no DRDY) after power-on; QEMU shows 50h until the first SRST',
  'identify.w50': 'ATA8-ACS 7.16.7.16: word 50 bit 14 shall be one; QEMU leaves the word 0',
  'identify.w69': 'QEMU sets "deterministic read after TRIM"; no TRIM here',
  'identify.w82': 'QEMU advertises SMART (bit 0); SMART is not emulated here',
  'identify.w85': 'SMART enabled bit, as word 82',
  'identify.w169': 'QEMU advertises DATA SET MANAGEMENT/TRIM; not emulated here',
  'identify.w255': 'ATA8-ACS 7.16.7.93 integrity word (A5h + checksum); QEMU leaves 0',
  'pidentify.w82': 'ATA8-ACS 7.17.7.39: PACKET feature set supported (bit 4), bit 14 shall be one; QEMU leaves 0',
  'pidentify.w83': 'ATA8-ACS 7.17.7.40: bit 14 shall be one; QEMU leaves 0',
  'pidentify.w84': 'ATA8-ACS 7.17.7.41: bit 14 shall be one; QEMU leaves 0',
  'pidentify.w85': 'PACKET feature set enabled (bit 4), bit 14 shall be one; QEMU leaves 0',
  'pidentify.w87': 'ATA8-ACS 7.17.7.44: bit 14 shall be one; QEMU leaves 0',
  'pidentify.w93': 'hardware reset result for a PATA device 0 (as the disk reports); QEMU leaves 0',
  'pidentify.w255': 'integrity word, as identify.w255',
  'range.err': 'ATA8-ACS 7.36.6: an address beyond capacity sets ID NOT FOUND (with ABRT); QEMU sets only ABRT',
  'setxfer.udma7.status': 'ATA8-ACS 7.48.8: a transfer mode the device does not support is aborted; QEMU accepts UDMA 7',
  'srst.hd.during': 'ATA8-APT 5.2.5: BSY stays set while SRST is asserted; QEMU finishes the reset at once',
  'srst.cd.during': 'as srst.hd.during',
  'sense.clean.data': 'SPC-3 4.5.3: VALID (byte 0 bit 7) only when the INFORMATION field is valid; it never is here',
  'sense.range.data': 'VALID bit, as sense.clean.data',
  'sense.badop.data': 'VALID bit, as sense.clean.data',
  'sense.saved.data': 'VALID bit, as sense.clean.data',
  'sense.locked.data': 'VALID bit, and SPC-3 annex D: 53h/02h is MEDIUM REMOVAL PREVENTED (QEMU sends 53h/00h, "media load or eject failed")',
  'toc1.data': 'MMC-3 6.26.2.5: format 1 returns the first track of the last session with its control and address; QEMU returns zeros',
  'toc2.lba.data': 'MMC-3 6.26.2.6: raw TOC (format 2) addresses are MSF whatever the MSF bit; QEMU writes an LBA over the MSF fields',
  'toc2.mmc.blk0': 'MMC-3 6.26: the format is in byte 2 bits 3:0; QEMU only reads the SFF-8020 field in byte 9 (we read both)',
  'toc2.mmc.data': 'as toc2.mmc.blk0',
  'modesense.3f.status': 'SPC-3 6.9: page code 3Fh returns all pages; QEMU rejects it',
  'modesense.3f.err': 'as modesense.3f.status',
  'modesense.3f.data': 'as modesense.3f.status',
  'modesense.3f.blk0': 'as modesense.3f.status',
  'modesense.3f.blk0.status': 'as modesense.3f.status',
  'modesense.3f.blk0.ireason': 'as modesense.3f.status',
  'getconf.blk0': 'MMC-3 5.3.2: the Core feature (0001h) is mandatory; QEMU lists only the profile list',
  'getconf.data': 'Core feature, as getconf.blk0',
  'getconf.head.data': 'data length includes the Core feature, as getconf.blk0',
  'inquiry.full.data': 'vendor and product identification name this device model',
  'gesn.data': 'MMC-3 6.6.3: Event Data Length counts the bytes after the field (6); QEMU reports 4',
};

interface Driver {
  out(size: 1 | 2 | 4, port: number, v: number): Promise<void>;
  in(size: 1 | 2 | 4, port: number): Promise<number>;
  memwrite(addr: number, data: Uint8Array): Promise<void>;
  memread(addr: number, len: number): Promise<Uint8Array>;
  irq(n: number): boolean;
  /** Let asynchronous device work progress (QEMU: every round trip already does). */
  turn(): Promise<void>;
  close(): void;
}

function diskImage(): Uint8Array {
  const b = new Uint8Array(DISK_BYTES);
  for (let i = 0; i < 1 << 20; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
}
function cdImage(): Uint8Array {
  const b = new Uint8Array(CD_BLOCKS * 2048);
  for (let i = 0; i < b.length; i++) b[i] = ((i >> 11) * 13 + (i % 251)) & 0xff;
  return b;
}

async function qemuDriver(dir: string): Promise<Driver> {
  const disk = join(dir, 'disk.img');
  const cd = join(dir, 'cd.iso');
  writeFileSync(disk, diskImage());
  writeFileSync(cd, cdImage());
  const q = await Qtest.start([
    '-drive', `file=${disk},if=none,id=hd0,format=raw,cache=writeback`,
    '-device', `ide-hd,drive=hd0,bus=ide.0,unit=0,serial=${SERIAL},ver=${FW},model=${HD_MODEL}`,
    '-drive', `file=${cd},if=none,id=cd0,format=raw,media=cdrom,readonly=on`,
    '-device', `ide-cd,drive=cd0,bus=ide.1,unit=0,serial=${SERIAL},ver=${FW},model=${CD_MODEL}`,
  ]);
  await q.waitReset(0x1f7, 0x50); // the disk's reset status
  await q.waitReset(0x174, 0x14); // the CD's signature
  return {
    out: (s, p, v) => q.out(s, p, v),
    in: (s, p) => q.in(s, p),
    memwrite: (a, d) => q.memwrite(a, d),
    memread: (a, l) => q.memread(a, l),
    irq: (n) => q.irq(n),
    turn: async () => {},
    close: () => q.close(),
  };
}

function ourDriver(): Driver {
  const sim = createSimHost({ ramBytes: 128 << 20 });
  const board = simBoard(sim);
  const log = pino({ level: 'silent' });
  const ide = IdeController.forBoard(
    board,
    [
      { kind: 'disk', backend: new MemoryBackend(diskImage()), serial: SERIAL, firmware: FW, model: HD_MODEL },
      null,
      { kind: 'cdrom', backend: new MemoryBackend(cdImage(), true), serial: SERIAL, firmware: FW, model: CD_MODEL },
    ],
    log,
  );
  installPcPlatform(board, { ide, ramBytes: 128 << 20, log });
  const server = new IoreqServer(sim, board, log);
  server.start();
  const outs = { 1: sim.outb, 2: sim.outw, 4: sim.outl } as const;
  const ins = { 1: sim.inb, 2: sim.inw, 4: sim.inl } as const;
  return {
    out: async (s, p, v) => outs[s].call(sim, p, v),
    in: async (s, p) => ins[s].call(sim, p),
    memwrite: async (a, d) => sim.memwrite(a, d),
    memread: async (a, l) => sim.memread(a, l),
    irq: (n) => sim.isaIrqLevel(n) === 1,
    turn: () => new Promise((r) => setImmediate(r)),
    close: () => server.stop(),
  };
}

type Record_ = Map<string, number | string>;

/** The scenario: a guest driver's sequences, recording what it observes. */
async function scenario(d: Driver): Promise<Record_> {
  const rec: Record_ = new Map();
  const put = (k: string, v: number | string) => rec.set(k, v);
  const outb = (p: number, v: number) => d.out(1, p, v);
  const inb = (p: number) => d.in(1, p);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const waitNotBusy = async (ctl: number, what: string) => {
    for (let i = 0; i < 100000; i++) {
      if (!((await inb(ctl)) & 0x80)) return;
      await d.turn();
    }
    throw new Error(`still busy: ${what}`);
  };
  const taskFile = async (pre: string, base: number) => {
    for (const [n, r] of [['err', 1], ['nsect', 2], ['lbal', 3], ['lbam', 4], ['lbah', 5], ['dev', 6]] as const) put(`${pre}.${n}`, await inb(base + r));
    put(`${pre}.status`, await inb(base + 7));
  };

  // PCI: BAR4 and I/O + bus master, through CF8/CFC as firmware does.
  await d.out(4, 0xcf8, 0x80000920);
  await d.out(4, 0xcfc, BM | 1);
  await d.out(4, 0xcf8, 0x80000904);
  await d.out(2, 0xcfc, 0x0005);

  // 1. Power-on state and IDENTIFY DEVICE word by word.
  await taskFile('poweron.hd', 0x1f0);
  await taskFile('poweron.cd', 0x170);
  await outb(0x1f6, 0xa0);
  await outb(0x1f7, 0xec);
  put('identify.irq', Number(d.irq(14)));
  put('identify.status', await inb(0x1f7));
  for (let i = 0; i < 256; i++) put(`identify.w${i}`, await d.in(2, 0x1f0));
  put('identify.status.after', await inb(0x1f7));

  // 2. IDENTIFY PACKET DEVICE, and IDENTIFY DEVICE refused by the ATAPI device.
  await outb(0x176, 0xa0);
  await outb(0x177, 0xa1);
  put('pidentify.status', await inb(0x177));
  for (let i = 0; i < 256; i++) put(`pidentify.w${i}`, await d.in(2, 0x170));
  await outb(0x177, 0xec);
  await taskFile('cd.identify', 0x170);

  // 3. PIO write then read back, LBA28.
  const pat = new Uint8Array(1024).map((_, i) => (i * 5 + 1) & 0xff);
  await outb(0x1f6, 0xe0);
  put('pio.dev.selected', await inb(0x1f6));
  await outb(0x1f2, 2);
  await outb(0x1f3, 33);
  await outb(0x1f4, 0);
  await outb(0x1f5, 0);
  await outb(0x1f7, 0x30);
  for (let s = 0; s < 2; s++) {
    await waitNotBusy(0x3f6, 'pio write drq');
    put(`pio.write.drq${s}`, await d.in(1, 0x3f6));
    for (let i = 0; i < 256; i++) await d.out(2, 0x1f0, pat[s * 512 + 2 * i] | (pat[s * 512 + 2 * i + 1] << 8));
  }
  await waitNotBusy(0x3f6, 'pio write');
  await taskFile('pio.write.done', 0x1f0);
  await outb(0x1f2, 2);
  await outb(0x1f3, 33);
  await outb(0x1f7, 0x20);
  const back: number[] = [];
  for (let s = 0; s < 2; s++) {
    await waitNotBusy(0x3f6, 'pio read');
    put(`pio.read.status${s}`, await inb(0x1f7));
    for (let i = 0; i < 256; i++) {
      const w = await d.in(2, 0x1f0);
      back.push(w & 0xff, w >> 8);
    }
  }
  put('pio.read.data', hex(new Uint8Array(back)));
  await taskFile('pio.read.done', 0x1f0);

  // 4. Errors: out of range, bad SET MULTIPLE, unknown opcode, bad SET FEATURES.
  await outb(0x1f2, 2);
  await outb(0x1f3, 0xff);
  await outb(0x1f4, 0xff);
  await outb(0x1f5, 0xff);
  await outb(0x1f6, 0xe0 | 0x0f);
  await outb(0x1f7, 0x20);
  await waitNotBusy(0x3f6, 'range');
  put('range.status', await inb(0x1f7));
  put('range.err', await inb(0x1f1));
  await outb(0x1f6, 0xe0);
  await outb(0x1f2, 3);
  await outb(0x1f7, 0xc6);
  put('setmult3.status', await inb(0x1f7));
  put('setmult3.err', await inb(0x1f1));
  await outb(0x1f2, 8);
  await outb(0x1f7, 0xc6);
  put('setmult8.status', await inb(0x1f7));
  await outb(0x1f7, 0xb0);
  put('unknown.status', await inb(0x1f7));
  put('unknown.err', await inb(0x1f1));
  await outb(0x1f1, 0x03);
  await outb(0x1f2, 0x47);
  await outb(0x1f7, 0xef);
  put('setxfer.udma7.status', await inb(0x1f7));
  await outb(0x1f1, 0x03);
  await outb(0x1f2, 0x45);
  await outb(0x1f7, 0xef);
  put('setxfer.udma5.status', await inb(0x1f7));
  await outb(0x1f7, 0xec);
  for (let i = 0; i < 256; i++) {
    const w = await d.in(2, 0x1f0);
    if (i === 63 || i === 88) put(`identify.udma5.w${i}`, w);
  }

  // 5. Bus-master DMA: the three BMI-1 PRD cases, plain and aborted.
  const prdt = 0x100000;
  for (const [sectors, size] of [[1, 256], [1, 512], [1, 1024], [4, 2048], [4, 0], [2, 0x10000 - 512]] as const) {
    for (const abort of [false, true]) {
      const k = `dma.s${sectors}.p${size}${abort ? '.abort' : ''}`;
      const e = new Uint8Array(8);
      new DataView(e.buffer).setUint32(0, 0x200000, true);
      new DataView(e.buffer).setUint32(4, (size | 0x80000000) >>> 0, true);
      await d.memwrite(prdt, e);
      await outb(0x1f6, 0xe0);
      await outb(BM, 0);
      await outb(BM + 2, 0x04);
      await d.out(4, BM + 4, prdt);
      await outb(0x1f2, sectors);
      await outb(0x1f3, 0);
      await outb(0x1f4, 0);
      await outb(0x1f5, 0);
      await outb(0x1f7, 0xc8);
      await outb(BM, 0x09);
      if (abort) await outb(BM, 0);
      let st = 0;
      for (let i = 0; i < 100000; i++) {
        const busy = (await inb(0x3f6)) & 0x88; // device first: the engine's bits settle no later
        st = await inb(BM + 2);
        if ((st & 5) !== 1 && !busy) break;
        await d.turn();
      }
      put(`${k}.bm`, st);
      put(`${k}.irq`, Number(d.irq(14)));
      put(`${k}.status`, await inb(0x1f7));
      if (st & 1) await outb(BM, 0);
    }
  }
  put('dma.data', hex(await d.memread(0x200000, 2048)));

  // 6. EXECUTE DEVICE DIAGNOSTIC and soft reset signatures on both channels.
  await outb(0x1f6, 0xa0);
  await outb(0x1f7, 0x90);
  await waitNotBusy(0x3f6, 'diag');
  await taskFile('diag.hd', 0x1f0);
  for (const [ch, base, ctl] of [['hd', 0x1f0, 0x3f6], ['cd', 0x170, 0x376]] as const) {
    await outb(ctl, 0x04);
    put(`srst.${ch}.during`, await inb(ctl));
    await outb(ctl, 0x00);
    await waitNotBusy(ctl, 'srst');
    await taskFile(`srst.${ch}`, base);
  }

  // 7. nIEN and the interrupt line.
  await outb(0x3f6, 0x02);
  await outb(0x1f7, 0xec);
  put('nien.irq.masked', Number(d.irq(14)));
  put('nien.altstatus', await inb(0x3f6));
  for (let i = 0; i < 256; i++) await d.in(2, 0x1f0);
  await outb(0x3f6, 0x00);
  await outb(0x1f7, 0xe5);
  put('nien.check_power.irq', Number(d.irq(14)));
  put('nien.check_power.nsect', await inb(0x1f2));
  await inb(0x3f6);
  put('nien.altstatus.keeps', Number(d.irq(14)));
  await inb(0x1f7);
  put('nien.status.clears', Number(d.irq(14)));

  // 8. ATAPI packets through PIO.
  const packet = async (name: string, cdb: number[], limit = 0x1000) => {
    await outb(0x176, 0xa0);
    await outb(0x171, 0);
    await outb(0x174, limit & 0xff);
    await outb(0x175, limit >> 8);
    await outb(0x177, 0xa0);
    put(`${name}.hp1.status`, await inb(0x376));
    put(`${name}.hp1.ireason`, await inb(0x172));
    const p = new Uint8Array(12);
    cdb.forEach((v, i) => (p[i] = v));
    for (let i = 0; i < 6; i++) await d.out(2, 0x170, p[2 * i] | (p[2 * i + 1] << 8));
    const data: number[] = [];
    for (let blk = 0; blk < 64; blk++) {
      await waitNotBusy(0x376, name);
      const st = await inb(0x177);
      if (!(st & 0x08)) {
        put(`${name}.status`, st);
        put(`${name}.err`, await inb(0x171));
        put(`${name}.ireason`, await inb(0x172));
        put(`${name}.data`, hex(new Uint8Array(data)));
        return;
      }
      const n = (await inb(0x174)) | ((await inb(0x175)) << 8);
      put(`${name}.blk${blk}`, n);
      put(`${name}.blk${blk}.status`, st);
      put(`${name}.blk${blk}.ireason`, await inb(0x172));
      for (let i = 0; i < Math.ceil(n / 2); i++) {
        const w = await d.in(2, 0x170);
        data.push(w & 0xff);
        if (2 * i + 1 < n) data.push(w >> 8);
      }
    }
    throw new Error(`${name}: too many blocks`);
  };
  await packet('tur', [0x00]);
  await packet('sense.clean', [0x03, 0, 0, 0, 18, 0]);
  await packet('inquiry.head', [0x12, 0, 0, 0, 8, 0]);
  await packet('capacity', [0x25]);
  await packet('read10', [0x28, 0, 0, 0, 0, 1, 0, 0, 5, 0], 5120);
  await packet('read10.odd', [0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0], 3001);
  await packet('readcd', [0xbe, 0, 0, 0, 0, 4, 0, 0, 2, 0x10, 0, 0]);
  await packet('readcd.none', [0xbe, 0, 0, 0, 0, 4, 0, 0, 2, 0, 0, 0]);
  await packet('read10.range', [0x28, 0, 0, 0, 0, CD_BLOCKS - 1, 0, 0, 2, 0]);
  await packet('sense.range', [0x03, 0, 0, 0, 18, 0]);
  await packet('badop', [0xff]);
  await packet('sense.badop', [0x03, 0, 0, 0, 18, 0]);
  await packet('toc0.lba', [0x43, 0, 0, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('toc0.msf', [0x43, 2, 0, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('toc1', [0x43, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x40]);
  await packet('toc2.msf', [0x43, 2, 0, 0, 0, 0, 0, 0, 0xff, 0x80]);
  await packet('toc2.lba', [0x43, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x80]);
  await packet('toc2.mmc', [0x43, 2, 2, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('toc.badtrack', [0x43, 0, 0, 0, 0, 0, 5, 0, 0xff, 0]);
  await packet('modesense.2a.len', [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 2, 0]);
  await packet('modesense.2a', [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('modesense.3f', [0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('getconf', [0x46, 0, 0, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('inquiry.full', [0x12, 0, 0, 0, 0xff, 0]);
  await packet('discinfo', [0x51, 0, 0, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('mechstatus', [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]);
  await packet('modesense.01', [0x5a, 0, 0x01, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('modesense.saved', [0x5a, 0, 0xea, 0, 0, 0, 0, 0, 0xff, 0]);
  await packet('sense.saved', [0x03, 0, 0, 0, 18, 0]);
  await packet('gesn', [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  await packet('gesn.async', [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]);
  await packet('getconf.head', [0x46, 0, 0, 0, 0, 0, 0, 0, 8, 0]);
  await packet('lock', [0x1e, 0, 0, 0, 1, 0]);
  await packet('eject.locked', [0x1b, 0, 0, 0, 2, 0]);
  await packet('sense.locked', [0x03, 0, 0, 0, 18, 0]);
  return rec;
}

/** Run a scenario on QEMU then on us; every field must be equal unless INTENDED says why not. */
async function compare(run: (d: Driver) => Promise<Record_>, minFields: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-oracle-ide-'));
  const q = await qemuDriver(dir);
  let theirs: Record_;
  try {
    theirs = await run(q);
  } finally {
    q.close();
  }
  const us = ourDriver();
  let ours: Record_;
  try {
    ours = await run(us);
  } finally {
    us.close();
  }
  const diffs: string[] = [];
  const fmt = (v: number | string | undefined) => (typeof v === 'number' ? `0x${v.toString(16)}` : String(v));
  for (const [k, v] of theirs) {
    const o = ours.get(k);
    if (o === v) {
      if (INTENDED[k]) diffs.push(`${k}: listed as intended but now equal (${fmt(v)}); drop it from INTENDED`);
      continue;
    }
    if (INTENDED[k]) continue;
    diffs.push(`${k}: qemu ${fmt(v)} stubdm ${fmt(o)}`);
  }
  for (const k of ours.keys()) if (!theirs.has(k) && !INTENDED[k]) diffs.push(`${k}: only observed on stubdm`);
  assert.ok(theirs.size >= minFields, `compared ${theirs.size} fields`);
  assert.deepEqual(diffs, []);
}

/** Helpers shared by the scenarios. */
function helpers(d: Driver, rec: Record_) {
  const put = (k: string, v: number | string) => rec.set(k, v);
  const outb = (p: number, v: number) => d.out(1, p, v);
  const inb = (p: number) => d.in(1, p);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const waitNotBusy = async (ctl: number, what: string) => {
    for (let i = 0; i < 100000; i++) {
      if (!((await inb(ctl)) & 0x80)) return;
      await d.turn();
    }
    throw new Error(`still busy: ${what}`);
  };
  const pciSetup = async (command: number) => {
    await d.out(4, 0xcf8, 0x80000920);
    await d.out(4, 0xcfc, BM | 1);
    await d.out(4, 0xcf8, 0x80000904);
    await d.out(2, 0xcfc, command);
  };
  const prd = async (at: number, entries: [number, number][]) => {
    const b = new Uint8Array(entries.length * 8);
    const v = new DataView(b.buffer);
    entries.forEach(([a, n], i) => {
      v.setUint32(i * 8, a >>> 0, true);
      v.setUint32(i * 8 + 4, n >>> 0, true);
    });
    await d.memwrite(at, b);
  };
  /** Start the engine and wait until the device and the engine are done (QEMU: drained at once). */
  const dmaWait = async (base: number, ctl: number, start: number, abort = false) => {
    await outb(base, start);
    if (abort) await outb(base, 0);
    let st = 0;
    for (let i = 0; i < 100000; i++) {
      const busy = (await inb(ctl)) & 0x88;
      st = await inb(base + 2);
      if ((st & 5) !== 1 && !busy) return st;
      await d.turn();
    }
    throw new Error('DMA never finished');
  };
  return { put, outb, inb, hex, waitNotBusy, pciSetup, prd, dmaWait };
}

/** Second scenario: more DMA shapes, LBA48, READ MULTIPLE, flush, ATAPI DMA, no bus mastering. */
async function scenario2(d: Driver): Promise<Record_> {
  const rec: Record_ = new Map();
  const { put, outb, inb, hex, waitNotBusy, pciSetup, prd, dmaWait } = helpers(d, rec);
  await pciSetup(0x0005);
  const PRDT = 0x100000;
  const BUF = 0x200000;

  // BMI-1 cases over a spread of PRD sizes (ide-test various_prdts), plain and aborted.
  for (const sectors of [1, 2, 8, 128]) {
    for (let size = 0; size < 65536; size += 4096 + 256) {
      for (const abort of [false, true]) {
        const k = `prd.s${sectors}.p${size}${abort ? '.abort' : ''}`;
        await prd(PRDT, [[BUF, (size | 0x80000000) >>> 0]]);
        await outb(0x1f6, 0xe0);
        await outb(BM, 0);
        await outb(BM + 2, 0x06);
        await d.out(4, BM + 4, PRDT);
        await outb(0x1f2, sectors);
        await outb(0x1f3, 0);
        await outb(0x1f4, 0);
        await outb(0x1f5, 0);
        await outb(0x1f7, 0xc8);
        const st = await dmaWait(BM, 0x3f6, 0x09, abort);
        put(`${k}.bm`, st);
        put(`${k}.status`, await inb(0x1f7));
        put(`${k}.nsect`, await inb(0x1f2));
        put(`${k}.lbal`, await inb(0x1f3));
        if (st & 1) await outb(BM, 0);
      }
    }
  }

  // Several PRDs, the last one longer than needed; a DMA write then read back.
  await prd(PRDT, [[BUF, 512], [BUF + 0x1000, 1024], [BUF + 0x2000, (0x1000 | 0x80000000) >>> 0]]);
  await d.memwrite(BUF, new Uint8Array(512).fill(0x11));
  await d.memwrite(BUF + 0x1000, new Uint8Array(1024).fill(0x22));
  await d.memwrite(BUF + 0x2000, new Uint8Array(1024).fill(0x33));
  await outb(BM + 2, 0x06);
  await d.out(4, BM + 4, PRDT);
  await outb(0x1f2, 5);
  await outb(0x1f3, 50);
  await outb(0x1f7, 0xca);
  put('sg.write.bm', await dmaWait(BM, 0x3f6, 0x01));
  put('sg.write.status', await inb(0x1f7));
  await outb(BM, 0);
  await d.memwrite(BUF, new Uint8Array(0x3000));
  await outb(BM + 2, 0x06);
  await outb(0x1f2, 5);
  await outb(0x1f3, 50);
  await outb(0x1f7, 0xc8);
  put('sg.read.bm', await dmaWait(BM, 0x3f6, 0x09));
  await outb(BM, 0);
  put('sg.read.data', hex(await d.memread(BUF, 0x3000)));

  // LBA48: READ DMA EXT with HOB registers, then read them back with HOB set.
  await prd(PRDT, [[BUF, (1024 | 0x80000000) >>> 0]]);
  await outb(BM + 2, 0x06);
  await outb(0x1f6, 0x40);
  for (const [r, hi, lo] of [[2, 0, 2], [3, 0, 0x34], [4, 0, 0x12], [5, 0, 0]] as const) {
    await outb(0x1f0 + r, hi);
    await outb(0x1f0 + r, lo);
  }
  await outb(0x1f7, 0x25);
  put('lba48.bm', await dmaWait(BM, 0x3f6, 0x09));
  await outb(BM, 0);
  put('lba48.data', hex(await d.memread(BUF, 1024)));
  for (const hob of [0, 0x80]) {
    await outb(0x3f6, hob);
    for (let r = 1; r <= 6; r++) put(`lba48.hob${hob}.r${r}`, await inb(0x1f0 + r));
  }
  await outb(0x3f6, 0);
  put('lba48.status', await inb(0x1f7));

  // READ MULTIPLE after SET MULTIPLE 4: DRQ block sizes and interrupts.
  await outb(0x1f6, 0xe0);
  await outb(0x1f2, 4);
  await outb(0x1f7, 0xc6);
  put('mult.set', await inb(0x1f7));
  await outb(0x1f2, 10);
  await outb(0x1f3, 7);
  await outb(0x1f4, 0);
  await outb(0x1f5, 0);
  await outb(0x1f7, 0xc4);
  const got: number[] = [];
  for (let blk = 0; blk < 3; blk++) {
    await waitNotBusy(0x3f6, 'read multiple');
    put(`mult.blk${blk}.irq`, Number(d.irq(14)));
    put(`mult.blk${blk}.status`, await inb(0x1f7));
    put(`mult.blk${blk}.nsect`, await inb(0x1f2));
    const words = blk < 2 ? 1024 : 512;
    for (let i = 0; i < words; i++) {
      const w = await d.in(2, 0x1f0);
      got.push(w & 0xff, w >> 8);
    }
  }
  put('mult.data', hex(new Uint8Array(got)));
  put('mult.end.status', await inb(0x1f7));
  put('mult.end.irq', Number(d.irq(14)));

  // READ VERIFY, FLUSH CACHE EXT, power commands.
  for (const [name, cmd] of [['verify', 0x40], ['flushext', 0xea], ['idleimm', 0xe1], ['standby', 0xe2], ['checkpower', 0xe5], ['recal', 0x10]] as const) {
    await outb(0x1f2, 1);
    await outb(0x1f7, cmd);
    await waitNotBusy(0x3f6, name);
    put(`${name}.irq`, Number(d.irq(14)));
    put(`${name}.status`, await inb(0x1f7));
    put(`${name}.nsect`, await inb(0x1f2));
  }

  // ATAPI DMA: READ(10) and a reply (READ CAPACITY) through the secondary engine.
  for (const [name, cdb, len] of [
    ['cddma.read', [0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0], 4096],
    ['cddma.capacity', [0x25], 8],
  ] as const) {
    await prd(PRDT + 0x100, [[BUF + 0x10000, (len | 0x80000000) >>> 0]]);
    await outb(BM + 8, 0);
    await outb(BM + 10, 0x06);
    await d.out(4, BM + 12, PRDT + 0x100);
    await outb(0x176, 0xa0);
    await outb(0x171, 1);
    await outb(0x177, 0xa0);
    const p = new Uint8Array(12);
    cdb.forEach((v, i) => (p[i] = v));
    for (let i = 0; i < 6; i++) await d.out(2, 0x170, p[2 * i] | (p[2 * i + 1] << 8));
    put(`${name}.before`, await inb(0x376));
    put(`${name}.bm`, await dmaWait(BM + 8, 0x376, 0x09));
    await outb(BM + 8, 0);
    put(`${name}.irq`, Number(d.irq(15)));
    put(`${name}.status`, await inb(0x177));
    put(`${name}.ireason`, await inb(0x172));
    put(`${name}.data`, hex(await d.memread(BUF + 0x10000, len)));
  }

  // No bus mastering, 4096 zero PRDs, 256 sectors (ide-test no_busmaster).
  await pciSetup(0x0001);
  await d.memwrite(PRDT, new Uint8Array(4096 * 8));
  await outb(0x1f6, 0xe0);
  await outb(BM, 0);
  await outb(BM + 2, 0x06);
  await d.out(4, BM + 4, PRDT);
  await outb(0x1f2, 0);
  await outb(0x1f3, 0);
  await outb(0x1f7, 0xc8);
  put('nobm.bm', await dmaWait(BM, 0x3f6, 0x09));
  put('nobm.status', await inb(0x1f7));
  await outb(BM, 0);
  return rec;
}

test('QEMU oracle: IDE register sequences give the same observations as piix3-ide', async () => {
  await compare(scenario, 600);
});

test('QEMU oracle: DMA shapes, LBA48, READ MULTIPLE, flush, ATAPI DMA, no bus mastering', async () => {
  await compare(scenario2, 300);
});
