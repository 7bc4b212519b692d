/**
 * Save/restore in the middle of things: seeded random guest workloads (ATA
 * PIO reads and writes, READ/WRITE DMA through the bus master with PRD
 * tables in guest RAM, IDENTIFY, SET MULTIPLE, FLUSH, write cache on/off,
 * ATAPI TEST UNIT READY / REQUEST SENSE / READ(10) by PIO and DMA / lock /
 * event status, and operator medium changes) on raw image files behind a
 * backend that holds every request until the guest next waits.
 *
 * Machine A runs the workload and, before one chosen step, is saved: the
 * controller snapshot (through v8 serialization), guest RAM and a copy of the
 * disk images. Machine B is built fresh over the copies, restored, and runs
 * the rest of the same workload. Every value the guest reads after the save
 * point, all of guest RAM, the disk images and the final controller state
 * must be the same on A and B. Save points are picked among the interesting
 * ones (a DMA command running, a backend request in flight, a PIO window half
 * read or written) and at random.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdeRig } from './harness.ts';
import { prng } from '../../ioreq/helpers.ts';
import { FaultyBackend } from '../../../src/block/fault.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';
import { openBlockBackend, type BlockBackend } from '../../../src/block/index.ts';
import type { IdeSaved } from '../../../src/devices/ide/controller.ts';

const WORKLOADS = Number(process.env.RT_N ?? 60);
const RAM = 1 << 20;
const DISK_BYTES = [1 << 20, 512 << 10];
const CD_BLOCKS = [40, 24];
const BM = 0xc000;
const PRDT = [0x1000, 0x1800];
const DATA = 0x20000;
const BSY = 0x80;
const DRQ = 0x08;
const ERR = 0x01;

const dir = mkdtempSync(join(tmpdir(), 'stubdm-ide-rt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function bytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}
const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
const int = (rnd: () => number, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

/** What the guest does; every call is one numbered step. */
interface Guest {
  out(port: number, size: 1 | 2 | 4, v: number): void;
  in(port: number, size: 1 | 2 | 4): number;
  ins(port: number, size: 2 | 4, count: number): Uint8Array;
  outs(port: number, size: 2 | 4, data: Uint8Array): void;
  memwrite(gpa: number, data: Uint8Array): void;
  memread(gpa: number, len: number): Uint8Array;
  /** Poll a side-effect-free register (Alternate Status, BM status) until `done(v)`; returns [v, IRQ14, IRQ15]. */
  wait(port: number, done: (v: number) => boolean): Promise<number[]>;
  /** Operator medium change on slot 2 (0 = eject, 1 or 2 = that CD image); returns whether it happened. */
  change(medium: number, force: boolean): boolean;
}

/** One machine: the rig and the backends behind it. */
interface Machine {
  rig: IdeRig;
  held: FaultyBackend[];
  cds: BlockBackend[];
  medium: number;
  close(): Promise<void>;
}

/**
 * A guest on a machine. With `replay`, the first replay.length steps return
 * what machine A returned for them without touching this machine (it was
 * restored to the state A had after them), then it runs for real.
 */
class Driver implements Guest {
  n = 0;
  readonly log: unknown[] = [];
  /** Kind of the step before this one ('ins', 'out', ...). */
  last = '';
  /** Called before each step with its number (A: where the save happens). */
  before: ((n: number) => void) | null = null;

  constructor(
    private readonly m: Machine,
    private readonly replay: readonly unknown[] = [],
  ) {}

  private step<T>(kind: string, f: () => T): T {
    this.before?.(this.n);
    const v = this.n < this.replay.length ? (this.replay[this.n] as T) : f();
    this.log.push(v);
    this.n++;
    this.last = kind;
    return v;
  }
  out(port: number, size: 1 | 2 | 4, v: number): void {
    this.step('out', () => this.m.rig.board.pio.write(port, size, v));
  }
  in(port: number, size: 1 | 2 | 4): number {
    return this.step('in', () => this.m.rig.board.pio.read(port, size));
  }
  ins(port: number, size: 2 | 4, count: number): Uint8Array {
    return this.step('ins', () => this.m.rig.ins(port, size, count).data);
  }
  outs(port: number, size: 2 | 4, data: Uint8Array): void {
    this.step('outs', () => void this.m.rig.outs(port, size, data));
  }
  memwrite(gpa: number, data: Uint8Array): void {
    this.step('memwrite', () => this.m.rig.memwrite(gpa, data));
  }
  memread(gpa: number, len: number): Uint8Array {
    return this.step('memread', () => this.m.rig.memread(gpa, len));
  }
  change(medium: number, force: boolean): boolean {
    return this.step('change', () => {
      const ok = this.m.rig.ide.changeMedium(2, medium === 0 ? null : this.m.cds[medium - 1], force);
      if (ok) this.m.medium = medium;
      return ok;
    });
  }
  async wait(port: number, done: (v: number) => boolean): Promise<number[]> {
    this.before?.(this.n);
    let v: number[];
    if (this.n < this.replay.length) {
      v = this.replay[this.n] as number[];
    } else {
      const rig = this.m.rig;
      for (let i = 0; ; i++) {
        if (i > 20000) throw new Error(`step ${this.n}: port 0x${port.toString(16)} never became ready`);
        for (const b of this.m.held) b.release();
        const x = rig.board.pio.read(port, 1);
        if (done(x)) {
          v = [x, rig.irqLevels[14], rig.irqLevels[15]];
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
    }
    this.log.push(v);
    this.n++;
    this.last = 'wait';
    return v;
  }
}

// ---- the workload -----------------------------------------------------------------------

type Action = (g: Guest) => Promise<void>;

/** Read a data window in one or two pieces (a save may fall between them: mid-PIO). */
function insSplit(g: Guest, port: number, size: 2 | 4, count: number, rnd: () => number): void {
  const first = count > 1 && rnd() < 0.7 ? int(rnd, 1, count - 1) : count;
  g.ins(port, size, first);
  if (first < count) g.ins(port, size, count - first);
}
function outsSplit(g: Guest, port: number, size: 2 | 4, data: Uint8Array, rnd: () => number): void {
  const count = data.length / size;
  const first = count > 1 && rnd() < 0.7 ? int(rnd, 1, count - 1) : count;
  g.outs(port, size, data.subarray(0, first * size));
  if (first < count) g.outs(port, size, data.subarray(first * size));
}

const notBusy = (v: number) => !(v & BSY);
const dmaOver = (v: number) => (v & 4) !== 0 || !(v & 1);

/** Generate a workload: the actions are fixed here, their pieces decided by the seeded generator. */
function workload(seed: number): Action[] {
  const rnd = prng(seed);
  const mult = [16, 16];
  const acts: Action[] = [];
  const count = int(rnd, 8, 14);
  for (let a = 0; a < count; a++) {
    const u = rnd() < 0.7 ? 0 : 1;
    const sectors = DISK_BYTES[u] / 512;
    const select = (g: Guest, lba: number) => g.out(0x1f6, 1, 0xe0 | (u << 4) | ((lba >>> 24) & 0x0f));
    const taskFile = (g: Guest, lba: number, n: number, cmd: number) => {
      select(g, lba);
      g.out(0x1f2, 1, n & 0xff);
      g.out(0x1f3, 1, lba & 0xff);
      g.out(0x1f4, 1, (lba >>> 8) & 0xff);
      g.out(0x1f5, 1, (lba >>> 16) & 0xff);
      g.out(0x1f7, 1, cmd);
    };
    /** PRD table for `n` bytes at DATA (1-3 entries; sometimes longer than the transfer, rarely shorter). */
    const prd = (g: Guest, ch: number, n: number) => {
      const parts = Math.min(int(rnd, 1, 3), n / 512);
      const sizes: number[] = [];
      let left = n;
      for (let i = 0; i < parts - 1; i++) {
        const s = int(rnd, 1, left / 512 - (parts - 1 - i)) * 512;
        sizes.push(s);
        left -= s;
      }
      sizes.push(left);
      const shape = rnd();
      if (shape < 0.2) sizes[sizes.length - 1] += 512; // longer: Active stays set
      else if (shape < 0.25 && sizes[sizes.length - 1] > 512) sizes[sizes.length - 1] -= 512; // shorter: nothing moves
      const t = new Uint8Array(8 * sizes.length);
      const dv = new DataView(t.buffer);
      let at = DATA + ch * 0x40000;
      sizes.forEach((s, i) => {
        dv.setUint32(i * 8, at, true);
        dv.setUint32(i * 8 + 4, (s | (i === sizes.length - 1 ? 0x80000000 : 0)) >>> 0, true);
        at += s + 0x1000;
      });
      g.memwrite(PRDT[ch], t);
      g.out(BM + ch * 8, 1, 0);
      g.out(BM + ch * 8 + 2, 1, 0x06);
      g.out(BM + ch * 8 + 4, 4, PRDT[ch]);
      return sizes;
    };
    const r = rnd();
    if (r < 0.16) {
      // PIO read, single or multiple
      const multiple = rnd() < 0.4;
      const n = int(rnd, 1, 12);
      const lba = int(rnd, 0, sectors - n);
      const width = pick(rnd, [2, 4] as const);
      const per = multiple ? mult[u] : 1;
      acts.push(async (g) => {
        taskFile(g, lba, n, multiple ? 0xc4 : 0x20);
        for (let left = n; left > 0; left -= per) {
          await g.wait(0x3f6, notBusy);
          const st = g.in(0x1f7, 1);
          if (!(st & DRQ) || st & ERR) return;
          insSplit(g, 0x1f0, width, (Math.min(per, left) * 512) / width, rnd);
        }
        g.in(0x3f6, 1);
      });
    } else if (r < 0.32) {
      // PIO write
      const multiple = rnd() < 0.4;
      const n = int(rnd, 1, 10);
      const lba = int(rnd, 0, sectors - n);
      const width = pick(rnd, [2, 4] as const);
      const per = multiple ? mult[u] : 1;
      const data = bytes(rnd, n * 512);
      acts.push(async (g) => {
        taskFile(g, lba, n, multiple ? 0xc5 : 0x30);
        for (let done = 0; done < n; done += per) {
          await g.wait(0x3f6, notBusy);
          const st = g.in(0x3f6, 1);
          if (!(st & DRQ) || st & ERR) break;
          outsSplit(g, 0x1f0, width, data.subarray(done * 512, Math.min(n, done + per) * 512), rnd);
        }
        await g.wait(0x3f6, notBusy);
        g.in(0x1f7, 1);
      });
    } else if (r < 0.48) {
      // READ DMA / WRITE DMA
      const write = rnd() < 0.5;
      const n = int(rnd, 1, 24);
      const lba = int(rnd, 0, sectors - n);
      const data = bytes(rnd, n * 512 + 512);
      acts.push(async (g) => {
        const sizes = prd(g, 0, n * 512);
        if (write) {
          let at = DATA;
          let off = 0;
          for (const s of sizes) {
            g.memwrite(at, data.subarray(off, off + s));
            off += s;
            at += s + 0x1000;
          }
        }
        taskFile(g, lba, n, write ? 0xca : 0xc8);
        g.out(BM, 1, write ? 0x01 : 0x09);
        await g.wait(BM + 2, dmaOver);
        g.out(BM, 1, 0);
        g.in(BM + 2, 1);
        g.out(BM + 2, 1, 0x06);
        await g.wait(0x3f6, notBusy);
        g.in(0x1f7, 1);
        if (!write) g.memread(DATA, sizes[0]);
      });
    } else if (r < 0.54) {
      acts.push(async (g) => {
        select(g, 0);
        g.out(0x1f7, 1, 0xec);
        await g.wait(0x3f6, notBusy);
        g.in(0x1f7, 1);
        insSplit(g, 0x1f0, 2, 256, rnd);
      });
    } else if (r < 0.6) {
      const m = pick(rnd, [2, 4, 8, 16, 3]);
      if (m !== 3) mult[u] = m; // 3 is refused (not a power of two): the count stays
      acts.push(async (g) => {
        select(g, 0);
        g.out(0x1f2, 1, m);
        g.out(0x1f7, 1, 0xc6);
        await g.wait(0x3f6, notBusy);
        g.in(0x1f7, 1);
      });
    } else if (r < 0.65) {
      const feature = pick(rnd, [0x02, 0x82, 0x02]);
      const flush = rnd() < 0.5;
      acts.push(async (g) => {
        select(g, 0);
        g.out(0x1f1, 1, feature);
        g.out(0x1f7, 1, 0xef); // SET FEATURES: write cache on/off
        await g.wait(0x3f6, notBusy);
        g.in(0x1f7, 1);
        if (flush) {
          g.out(0x1f7, 1, 0xe7);
          await g.wait(0x3f6, notBusy);
          g.in(0x1f7, 1);
        }
      });
    } else {
      acts.push(atapiAction(rnd, prd));
    }
  }
  return acts;
}

/** One ATAPI command (or an operator medium change) on the secondary master. */
function atapiAction(rnd: () => number, prd: (g: Guest, ch: number, n: number) => number[]): Action {
  const r = rnd();
  if (r < 0.15) {
    const medium = int(rnd, 0, 2);
    const force = rnd() < 0.5;
    return async (g) => void g.change(medium, force);
  }
  const cdb = new Uint8Array(12);
  let dma = false;
  let dataBytes = 0;
  if (r < 0.25) {
    cdb[0] = 0x00; // TEST UNIT READY
  } else if (r < 0.4) {
    cdb[0] = 0x03; // REQUEST SENSE
    cdb[4] = 18;
  } else if (r < 0.47) {
    cdb[0] = 0x1e; // PREVENT ALLOW MEDIUM REMOVAL
    cdb[4] = rnd() < 0.5 ? 1 : 0;
  } else if (r < 0.55) {
    cdb[0] = 0x4a; // GET EVENT STATUS NOTIFICATION, media class, polled
    cdb[1] = 1;
    cdb[4] = 0x10;
    cdb[8] = 8;
  } else {
    cdb[0] = 0x28; // READ(10)
    const n = int(rnd, 1, 6);
    const lba = int(rnd, 0, 40 - n + 2); // sometimes beyond the smaller medium
    cdb[2] = (lba >>> 24) & 0xff;
    cdb[3] = (lba >>> 16) & 0xff;
    cdb[4] = (lba >>> 8) & 0xff;
    cdb[5] = lba & 0xff;
    cdb[8] = n;
    dma = rnd() < 0.5;
    dataBytes = n * 2048;
  }
  const limit = pick(rnd, [0x800, 0xfffe, 0x1000, 0x801, 0x200]);
  return async (g) => {
    let sizes: number[] = [];
    if (dma) sizes = prd(g, 1, dataBytes);
    g.out(0x176, 1, 0xa0);
    g.out(0x171, 1, dma ? 1 : 0);
    g.out(0x174, 1, limit & 0xff);
    g.out(0x175, 1, limit >>> 8);
    g.out(0x177, 1, 0xa0);
    const [st] = await g.wait(0x376, notBusy);
    if (!(st & DRQ)) {
      g.in(0x177, 1);
      return;
    }
    outsSplit(g, 0x170, 2, cdb, rnd);
    if (dma) {
      const [st2] = await g.wait(0x376, (v) => !(v & BSY) || (v & DRQ) !== 0);
      if (st2 & DRQ) {
        g.out(BM + 8, 1, 0x09);
        await g.wait(BM + 10, dmaOver);
        g.out(BM + 8, 1, 0);
        g.in(BM + 10, 1);
        g.out(BM + 10, 1, 0x06);
      }
      await g.wait(0x376, notBusy);
      g.in(0x177, 1);
      if (sizes.length) g.memread(DATA + 0x40000, sizes[0]);
      return;
    }
    // PIO data-in: DRQ blocks of the byte count the device shows (bounded).
    for (let i = 0; i < 64; i++) {
      await g.wait(0x376, notBusy);
      const s = g.in(0x177, 1);
      if (!(s & DRQ)) return;
      const n = g.in(0x174, 1) | (g.in(0x175, 1) << 8);
      insSplit(g, 0x170, 2, Math.ceil(n / 2), rnd);
    }
  };
}

async function run(g: Guest, acts: Action[]): Promise<void> {
  for (const a of acts) await a(g);
  // Leave both channels idle.
  await g.wait(0x3f6, notBusy);
  await g.wait(0x376, notBusy);
}

// ---- machines ---------------------------------------------------------------------------

interface Images {
  disks: Uint8Array[];
  cds: Uint8Array[];
  cdPaths: string[];
}

function images(seed: number): Images {
  const rnd = prng(seed ^ 0x5eed);
  const cds = CD_BLOCKS.map((n) => bytes(rnd, n * 2048));
  const cdPaths = cds.map((c, i) => {
    const p = join(dir, `cd${i}-${seed}.iso`);
    writeFileSync(p, c);
    return p;
  });
  return { disks: DISK_BYTES.map((n) => bytes(rnd, n)), cds, cdPaths };
}

function machine(disks: BlockBackend[], cds: BlockBackend[], medium: number): Machine {
  const held = [...disks, ...cds].map((b) => {
    const f = new FaultyBackend(b);
    f.hold = () => true; // every request waits until the guest next polls: in flight between steps
    return f;
  });
  const heldCds = held.slice(disks.length);
  const rig = new IdeRig(
    [{ kind: 'disk', backend: held[0] }, { kind: 'disk', backend: held[1] }, { kind: 'cdrom', backend: medium === 0 ? null : heldCds[medium - 1] }, null],
    RAM,
  );
  return {
    rig,
    held,
    cds: heldCds,
    medium,
    async close() {
      for (const b of held) await b.close();
    },
  };
}

/** Machine over image files (`disks`: paths), CDs opened read-only. */
async function fileMachine(disks: string[], im: Images, medium: number): Promise<Machine> {
  const d = await Promise.all(disks.map((path) => openBlockBackend({ path, cache: 'writeback' })));
  const c = await Promise.all(im.cdPaths.map((path) => openBlockBackend({ path, readOnly: true })));
  return machine(d, c, medium);
}

/** What is going on in the controller before each step (from its live state: cheap). */
interface Phase {
  dmaPending: boolean;
  dmaRunning: boolean;
  ioInFlight: boolean;
  midPio: boolean;
}
function phase(m: Machine, lastWasData: boolean): Phase {
  const drives = [0, 1, 2].map((i) => m.rig.ide.drive(i).state);
  return {
    dmaPending: m.rig.ide.channels.some((c) => c.bm.unit >= 0 && !c.bm.running),
    dmaRunning: m.rig.ide.channels.some((c) => c.bm.running),
    ioInFlight: drives.some((s) => s.io !== 'none'),
    midPio: lastWasData && drives.some((s) => s.pioDir !== 'none' && s.bufPos > 0 && s.bufPos < s.bufEnd),
  };
}

const totals = { dmaRunning: 0, ioInFlight: 0, midPio: 0, dmaPending: 0 };

for (let seed = 1; seed <= WORKLOADS; seed++) {
  test(`round trip mid-operation, workload ${seed}`, async () => {
    const im = images(seed);
    // Dry run on memory images: how many steps, and what is in progress before each.
    const dry = machine(
      im.disks.map((d) => new MemoryBackend(d.slice())),
      im.cds.map((c) => new MemoryBackend(c.slice(), true)),
      1,
    );
    const phases: Phase[] = [];
    const dg = new Driver(dry);
    dg.before = () => void phases.push(phase(dry, dg.last === 'ins' || dg.last === 'outs'));
    await run(dg, workload(seed));
    const steps = dg.n;
    const want = (['any', 'dmaRunning', 'ioInFlight', 'midPio', 'dmaPending'] as const)[seed % 5];
    const candidates = [...Array(steps).keys()].filter((i) => want === 'any' || phases[i][want]);
    const rnd = prng(seed * 7919);
    const k = candidates.length ? pick(rnd, candidates) : int(rnd, 0, steps - 1);

    // Machine A, saved before step k.
    const aPaths = DISK_BYTES.map((_, i) => join(dir, `a${i}-${seed}.img`));
    const bPaths = DISK_BYTES.map((_, i) => join(dir, `b${i}-${seed}.img`));
    aPaths.forEach((p, i) => writeFileSync(p, im.disks[i]));
    const a = await fileMachine(aPaths, im, 1);
    const ga = new Driver(a);
    let saved: { snap: IdeSaved; ram: Uint8Array; medium: number } | null = null;
    ga.before = (n) => {
      if (n !== k || saved) return;
      const snap = v8.deserialize(v8.serialize(a.rig.ide.snapshot())) as IdeSaved;
      bPaths.forEach((p, i) => copyFileSync(aPaths[i], p));
      saved = { snap, ram: a.rig.mem.ram.slice(), medium: a.medium };
      if (snap.channels.some((c) => c.bm.running)) totals.dmaRunning++;
      if (snap.channels.some((c) => c.bm.unit >= 0 && !c.bm.running)) totals.dmaPending++;
      if (snap.drives.some((d) => d.io !== 'none')) totals.ioInFlight++;
      if (phases[k].midPio) totals.midPio++;
    };
    await run(ga, workload(seed));
    assert.equal(ga.n, steps, 'the same number of steps as the dry run');
    assert.ok(saved, 'the save point was reached');
    const s = saved as { snap: IdeSaved; ram: Uint8Array; medium: number };

    // Machine B: fresh, over the copies, restored, then the rest of the workload.
    const b = await fileMachine(bPaths, im, s.medium);
    b.rig.mem.ram.set(s.ram);
    b.rig.ide.restore(s.snap);
    b.rig.ide.resume();
    assert.deepEqual(b.rig.ide.snapshot(), s.snap, 'restored state reads back as saved');
    const gb = new Driver(b, ga.log.slice(0, k));
    await run(gb, workload(seed));

    assert.equal(gb.n, steps);
    for (let i = k; i < steps; i++) assert.deepEqual(gb.log[i], ga.log[i], `step ${i} (saved before step ${k} of ${steps})`);
    assert.ok(Buffer.from(b.rig.mem.ram).equals(Buffer.from(a.rig.mem.ram)), 'guest RAM');
    assert.deepEqual(b.rig.ide.snapshot(), a.rig.ide.snapshot(), 'final controller state');
    await a.close();
    await b.close();
    for (let i = 0; i < aPaths.length; i++) {
      assert.ok(readFileSync(bPaths[i]).equals(readFileSync(aPaths[i])), `disk ${i} image`);
    }
    for (const p of [...aPaths, ...bPaths]) rmSync(p);
  });
}

test('the round trips above saved with a DMA running or waiting, a request in flight and a PIO window half done', () => {
  assert.ok(totals.dmaRunning >= 5, `DMA running at ${totals.dmaRunning} save points`);
  assert.ok(totals.ioInFlight >= 5, `a PIO/flush/CD request in flight at ${totals.ioInFlight} save points`);
  assert.ok(totals.midPio >= 5, `mid-PIO at ${totals.midPio} save points`);
  assert.ok(totals.dmaPending >= 5, `a DMA command waiting for Start at ${totals.dmaPending} save points`);
});
