/**
 * The whole machine saved and restored mid-operation, through the container
 * and the real ioreq path: seeded random guest workloads touch every device
 * the xenfv PC has (PCI config of every function, PIIX3 0xCF9/0x92 and PIRQ
 * routes, PIIX4 PM1a_CNT/APM/GPE0, the Xen platform device's fixed ports
 * and PV log (and, in some workloads, a PV unplug of the IDE disks), IDE PIO
 * and bus-master DMA on a disk and ATAPI on a CD-ROM, both UARTs with input
 * and timeouts on the virtual clock, CMOS NVRAM, the i8042).
 *
 * Machine A runs the workload and is saved (Pc.save: quiesce + container)
 * at a random step, possibly with a disk request in flight or a PIO
 * transfer half done. Machine B is built fresh from the same argv over
 * copies of the images and of guest RAM taken at that moment (Xen restores
 * RAM before the device model loads), restored from the blob before its
 * ioreq server runs, and both run the rest of the workload. Every value the
 * guest reads after the cut, every interrupt level, the serial output, all of
 * guest RAM, the disk images and the final device states must be equal.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simPc, type SimPc } from '../helpers/simpc.ts';
import { prng } from '../ioreq/helpers.ts';
import { simClock } from '../../src/sim/index.ts';
import { StateError } from '../../src/core/state.ts';

const WORKLOADS = Number(process.env.MACHINE_RT_N ?? 60);
const STEPS = 90;
const RAM_MIB = 16;
const DISK_BYTES = 256 << 10;
const CD_BYTES = 64 * 2048;
const BM = 0xc000; // BMIBA as the workload programs it
const PMBA = 0xb000;
const PRD = 0x1000;
const DMA_BUF = 0x20000;
const PIO_BUF = 0x40000;

const dir = mkdtempSync(join(tmpdir(), 'stubdm-machine-rt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Rnd = () => number;
const int = (r: Rnd, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

function argv(disk: string, cd: string): string[] {
  return [
    '-serial', 'null', '-serial', 'null',
    '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`,
    '-drive', `file=${cd},if=ide,index=2,media=cdrom,format=raw`,
  ];
}

/** Everything a machine shows the guest after the cut, in order. */
class Trace {
  readonly reads: number[] = [];
  note(v: number): void {
    this.reads.push(v);
  }
}

function cf8(m: SimPc, dev: number, fn: number, reg: number): void {
  m.sim.outl(0xcf8, (0x80000000 | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
}

/** What hvmloader would have done: BMIBA, I/O + bus master on, PM I/O base and enable, PIRQ routes. */
function firmware(m: SimPc): void {
  cf8(m, 1, 1, 0x20);
  m.sim.outl(0xcfc, BM | 1);
  cf8(m, 1, 1, 0x04);
  m.sim.outw(0xcfc, 0x0005);
  cf8(m, 1, 3, 0x40);
  m.sim.outl(0xcfc, PMBA | 1);
  cf8(m, 1, 3, 0x80);
  m.sim.outb(0xcfc, 1);
  cf8(m, 1, 0, 0x60);
  m.sim.outl(0xcfc, 0x0b0a0b0a);
}

/** Wait until no drive has a backend request in flight (the guest polls; nothing is read). */
async function settle(m: SimPc): Promise<void> {
  await m.sim.waitFor(() => busy(m) === false);
}

/** A backend request or a bus-master transfer still running. */
function busy(m: SimPc): boolean {
  return [0, 1, 2, 3].some((i) => m.pc.ide.drive(i).state.io !== 'none') || m.pc.ide.channels.some((c) => c.bm.running);
}

interface Op {
  kind: string;
  run(m: SimPc, t: Trace): void;
}

/** One random guest action. Each is synchronous; IDE commands leave their backend request running. */
function makeOp(r: Rnd): Op {
  const k = r();
  if (k < 0.12) {
    // UART: any register, both COMs, reads and writes (loopback, FIFO control, DLAB included).
    const base = pick(r, [0x3f8, 0x2f8]);
    const off = int(r, 0, 7);
    const write = r() < 0.5;
    const v = off === 4 ? int(r, 0, 0x1f) : int(r, 0, 255);
    return { kind: 'uart', run: (m, t) => (write ? m.sim.outb(base + off, v) : t.note(m.sim.inb(base + off))) };
  }
  if (k < 0.17) {
    const which = int(r, 0, 1);
    const bytes = Uint8Array.from({ length: int(r, 1, 20) }, () => int(r, 0, 255));
    return { kind: 'uart-in', run: (m) => m.serials[which].inject(bytes) };
  }
  if (k < 0.2) {
    const ms = pick(r, [0, 0, 1, 5]);
    return { kind: 'clock', run: (m) => void simClock(m.sim).advance(ms) };
  }
  if (k < 0.27) {
    // CMOS NVRAM (indices Xen forwards).
    const idx = int(r, 0x0e, 0x7f) | (r() < 0.2 ? 0x80 : 0);
    const v = int(r, 0, 255);
    const write = r() < 0.5;
    return {
      kind: 'cmos',
      run: (m, t) => {
        m.sim.outb(0x70, idx);
        if (write) m.sim.outb(0x71, v);
        else t.note(m.sim.inb(0x71));
      },
    };
  }
  if (k < 0.37) {
    // i8042: controller commands, device bytes, status and data reads. No reset commands
    // (0xfe, output-port writes): a reboot request ends the guest in both runs alike, but
    // the workload would then test nothing more.
    const kind = int(r, 0, 3);
    const cmd = pick(r, [0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xd2, 0xd3, 0xd4]);
    const data = pick(r, [0xf4, 0xf5, 0xf2, 0xee, 0xed, 0x02, 0xf3, 0x20, 0xe8, 0xe6, 0xe7, 0xf6, 0x45]);
    return {
      kind: 'i8042',
      run: (m, t) => {
        if (kind === 0) m.sim.outb(0x64, cmd);
        else if (kind === 1) m.sim.outb(0x60, data);
        else if (kind === 2) t.note(m.sim.inb(0x64));
        else t.note(m.sim.inb(0x60));
      },
    };
  }
  if (k < 0.45) {
    // PCI config: reads anywhere on the chipset, writes to registers that move nothing onto another's ports.
    const target = pick(r, [
      [0, 0, 0x50], [0, 0, 0x59], [0, 0, 0x72], [1, 0, 0x60], [1, 0, 0x61], [1, 0, 0x4c],
      [1, 3, 0x5c], [1, 1, 0x40], [1, 1, 0x41], [2, 0, 0x2c], [1, 1, 0x04], [0, 0, 0x04],
    ] as const);
    const write = r() < 0.4;
    const v = target[2] === 0x04 ? pick(r, [0x0005, 0x0001, 0x0007]) : int(r, 0, 255);
    const readReg = int(r, 0, 0x3f) * 4;
    const dev = int(r, 0, 3);
    const fn = dev === 1 ? pick(r, [0, 1, 3]) : 0;
    return {
      kind: 'pci',
      run: (m, t) => {
        if (write) {
          cf8(m, target[0], target[1], target[2]);
          m.sim.outb(0xcfc + (target[2] & 3), v);
        } else {
          cf8(m, dev, fn, readReg);
          t.note(m.sim.inl(0xcfc));
        }
      },
    };
  }
  if (k < 0.5) {
    // PIIX4 PM: APM, GPE0, PM1a_CNT (SCI_EN only: no sleep).
    const kind = int(r, 0, 4);
    const v = int(r, 0, 255);
    const apm = pick(r, [0xf0, 0xf1, v]);
    const gpe = int(r, 0, 3);
    return {
      kind: 'pm',
      run: (m, t) => {
        if (kind === 0) m.sim.outb(0xb2, apm);
        else if (kind === 1) t.note(m.sim.inw(0xb2));
        else if (kind === 2) m.sim.outb(0xafe0 + gpe, v);
        else if (kind === 3) t.note(m.sim.inl(0xafe0));
        else t.note(m.sim.inw(PMBA + 4));
      },
    };
  }
  if (k < 0.55) {
    // Xen platform fixed ports: magic, version, a PV log line in pieces, product/build numbers.
    const kind = int(r, 0, 3);
    const ch = r() < 0.1 ? 0x0a : int(r, 0x41, 0x5a);
    return {
      kind: 'xenp',
      run: (m, t) => {
        if (kind === 0) t.note(m.sim.inw(0x10));
        else if (kind === 1) t.note(m.sim.inb(0x12));
        else if (kind === 2) m.sim.outb(0x12, ch);
        else m.sim.outw(0x12, 3);
      },
    };
  }
  if (k < 0.554) {
    // PV drivers take the disks (the CD-ROM stays): restore must replay this first.
    return { kind: 'unplug', run: (m) => m.sim.outw(0x10, 0x0001) };
  }
  if (k < 0.62) {
    // Read the primary channel's status/error/count: what a driver polls.
    const port = pick(r, [0x1f7, 0x1f1, 0x1f2, 0x3f6, 0x177, BM + 2, BM + 4]);
    return { kind: 'idestat', run: (m, t) => t.note(port === BM + 4 ? m.sim.inl(port) : m.sim.inb(port)) };
  }
  if (k < 0.72) {
    // PIO: READ SECTORS or WRITE SECTORS, 1-2 sectors; the data moves in later steps.
    const write = r() < 0.4;
    const lba = int(r, 0, DISK_BYTES / 512 - 2);
    const n = int(r, 1, 2);
    return {
      kind: 'pio-cmd',
      run: (m) => {
        m.sim.outb(0x1f6, 0xe0);
        m.sim.outb(0x1f2, n);
        m.sim.outb(0x1f3, lba & 0xff);
        m.sim.outb(0x1f4, (lba >> 8) & 0xff);
        m.sim.outb(0x1f5, 0);
        m.sim.outb(0x1f7, write ? 0x30 : 0x20);
      },
    };
  }
  if (k < 0.82) {
    // PIO data: some words in or out of the primary data port (a transfer may stay half done).
    const words = int(r, 1, 200);
    const out = r() < 0.4;
    const fill = int(r, 0, 0xffff);
    return {
      kind: 'pio-data',
      run: (m, t) => {
        if (out) for (let i = 0; i < words; i++) m.sim.outw(0x1f0, (fill + i) & 0xffff);
        else for (let i = 0; i < words; i++) t.note(m.sim.inw(0x1f0));
      },
    };
  }
  if (k < 0.9) {
    // Bus-master DMA on the disk: PRD table in RAM, READ/WRITE DMA, start.
    const write = r() < 0.4;
    const lba = int(r, 0, DISK_BYTES / 512 - 4);
    const n = int(r, 1, 4);
    return {
      kind: 'dma',
      run: (m) => {
        // A driver does not rewrite the PRD table of a transfer still active (what the
        // engine does then is undefined on real hardware too).
        if (m.sim.inb(BM + 2) & 0x01) return;
        const prd = Buffer.alloc(8);
        prd.writeUInt32LE(DMA_BUF, 0);
        prd.writeUInt32LE((0x80000000 | (n * 512)) >>> 0, 4);
        m.sim.memwrite(PRD, prd);
        m.sim.outb(BM, 0);
        m.sim.outb(BM + 2, 0x06);
        m.sim.outl(BM + 4, PRD);
        m.sim.outb(0x1f6, 0xe0);
        m.sim.outb(0x1f2, n);
        m.sim.outb(0x1f3, lba & 0xff);
        m.sim.outb(0x1f4, (lba >> 8) & 0xff);
        m.sim.outb(0x1f5, 0);
        m.sim.outb(0x1f7, write ? 0xca : 0xc8);
        m.sim.outb(BM, write ? 0x01 : 0x09);
      },
    };
  }
  if (k < 0.95) {
    // ATAPI on the secondary master: TEST UNIT READY / REQUEST SENSE / READ(10) by PIO.
    const cmd = pick(r, [0x00, 0x03, 0x28, 0x28]);
    const lba = int(r, 0, CD_BYTES / 2048 - 1);
    return {
      kind: 'atapi-cmd',
      run: (m) => {
        m.sim.outb(0x176, 0xa0);
        m.sim.outb(0x171, 0);
        m.sim.outb(0x174, 0x00);
        m.sim.outb(0x175, 0x08);
        m.sim.outb(0x177, 0xa0);
        const p = new Uint8Array(12);
        p[0] = cmd;
        if (cmd === 0x03) p[4] = 18;
        if (cmd === 0x28) {
          p[5] = lba;
          p[8] = 1;
        }
        for (let i = 0; i < 12; i += 2) m.sim.outw(0x170, p[i] | (p[i + 1] << 8));
      },
    };
  }
  // Read ATAPI data words (a 2 KiB block may stay half read) and the secondary status.
  const words = int(r, 1, 300);
  return {
    kind: 'atapi-data',
    run: (m, t) => {
      t.note(m.sim.inb(0x177));
      for (let i = 0; i < words; i++) t.note(m.sim.inw(0x170));
    },
  };
}

function irqs(m: SimPc): number[] {
  return [1, 3, 4, 12, 14, 15].map((i) => m.sim.isaIrqLevel(i));
}

async function runTail(m: SimPc, ops: readonly Op[], from: number, t: Trace, irqTrace: number[][]): Promise<void> {
  for (let i = from; i < ops.length; i++) {
    ops[i].run(m, t);
    await settle(m);
    irqTrace.push(irqs(m));
  }
}

test(`the whole machine: ${WORKLOADS} seeded workloads saved mid-operation continue identically on a fresh machine`, async (t) => {
  let inFlightAtCut = 0;
  let unpluggedAtCut = 0;
  let stateBytes = 0;
  for (let w = 0; w < WORKLOADS; w++) {
    const r = prng(0x5eed0000 + w);
    const disk = join(dir, `disk-${w}.img`);
    const cd = join(dir, `cd-${w}.iso`);
    writeFileSync(disk, Uint8Array.from({ length: DISK_BYTES }, (_, i) => (i * 7 + w) & 0xff));
    writeFileSync(cd, Uint8Array.from({ length: CD_BYTES }, (_, i) => (i >> 11) ^ (i & 0xff)));
    const ops = Array.from({ length: STEPS }, () => makeOp(r));
    // Half the cuts come right after a command that starts backend I/O, left unsettled.
    const io = ops.map((o, i) => i + 1).filter((i) => i < STEPS && ['pio-cmd', 'dma', 'atapi-cmd'].includes(ops[i - 1].kind));
    const atIo = r() < 0.5 && io.length > 0;
    const cut = atIo ? pick(r, io) : int(r, 1, STEPS - 1);
    const settleBeforeCut = !atIo && r() < 0.5;

    const a = await simPc(t, RAM_MIB, argv(disk, cd));
    firmware(a);
    a.sim.memwrite(PIO_BUF, new Uint8Array(16).fill(0xa5));
    const ta = new Trace();
    for (let i = 0; i < cut; i++) {
      ops[i].run(a, ta);
      if (i < cut - 1 || settleBeforeCut) await settle(a);
    }
    if (busy(a)) inFlightAtCut++;
    if (a.pc.ide.drive(0).state.kind === 'none') unpluggedAtCut++;
    // Saved with the vCPUs paused (QMP stop): nothing else reaches the machine meanwhile.
    a.sim.channel.setEnabled(false);
    const blob = await a.pc.save();
    stateBytes = Math.max(stateBytes, blob.length);
    const ram = new Uint8Array(a.sim.ram);
    const diskB = join(dir, `disk-${w}-b.img`);
    copyFileSync(disk, diskB);
    a.sim.channel.setEnabled(true);

    const b = await simPc(t, RAM_MIB, argv(diskB, cd), { enable: false });
    b.sim.ram.set(ram);
    b.pc.restore(blob);
    b.sim.channel.setEnabled(true);

    const tb = new Trace();
    const ta2 = new Trace();
    const ia: number[][] = [];
    const ib: number[][] = [];
    await settle(a);
    await settle(b);
    // B re-issued what A had in flight; once both are settled they hold the same state.
    assert.deepEqual(b.pc.registry.records(), a.pc.registry.records(), `workload ${w}: state right after the restore settled`);
    await runTail(a, ops, cut, ta2, ia);
    await runTail(b, ops, cut, tb, ib);
    assert.deepEqual(tb.reads, ta2.reads, `workload ${w} (cut ${cut}/${STEPS}): reads after the cut`);
    assert.deepEqual(ib, ia, `workload ${w}: interrupt levels after each step`);
    assert.ok(Buffer.from(b.sim.ram).equals(Buffer.from(a.sim.ram)), `workload ${w}: guest RAM`);
    assert.ok(readFileSync(diskB).equals(readFileSync(disk)), `workload ${w}: disk image`);
    assert.deepEqual(b.pc.registry.records(), a.pc.registry.records(), `workload ${w}: device states`);
    // Serial output after the cut is the same bytes (A's ring also holds what it sent before).
    for (let i = 0; i < 2; i++) assert.ok(a.serials[i].text().endsWith(b.serials[i].text()), `workload ${w}: COM${i + 1} output`);
  }
  t.diagnostic(`cuts with a disk request in flight: ${inFlightAtCut}; after a PV unplug: ${unpluggedAtCut}; largest container ${stateBytes} bytes`);
  assert.ok(inFlightAtCut >= 5, `only ${inFlightAtCut} cuts had a request in flight`);
  assert.ok(unpluggedAtCut >= 2, `only ${unpluggedAtCut} cuts came after a PV unplug`);
});

test('a machine refuses a container from a machine built differently, and garbage, before anything runs', async (t) => {
  const disk = join(dir, 'x.img');
  const cd = join(dir, 'x.iso');
  writeFileSync(disk, new Uint8Array(DISK_BYTES));
  writeFileSync(cd, new Uint8Array(CD_BYTES));
  const a = await simPc(t, RAM_MIB, argv(disk, cd));
  const blob = await a.pc.save();
  const noSerial = await simPc(t, RAM_MIB, argv(disk, cd).slice(4), { enable: false });
  assert.throws(() => noSerial.pc.restore(blob), /devices this machine lacks: uart\.com1, uart\.com2/);
  const noCd = await simPc(t, RAM_MIB, ['-serial', 'null', '-serial', 'null', '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw`], {
    enable: false,
  });
  assert.throws(() => noCd.pc.restore(blob), StateError);
  const c = await simPc(t, RAM_MIB, argv(disk, cd), { enable: false });
  const bad = new Uint8Array(blob);
  bad[bad.length - 1] ^= 0xff;
  assert.throws(() => c.pc.restore(bad), /checksum/);
  assert.throws(() => c.pc.restore(blob.subarray(0, 100)), /truncated/);
  c.pc.restore(blob); // the good one still loads into the same machine
});
