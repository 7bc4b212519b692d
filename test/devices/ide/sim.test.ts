/**
 * The controller in the whole machine: the simulated hypervisor posts
 * ioreqs exactly as Xen encodes them, the IoreqServer dispatches, the PCI
 * function 00:01.1 maps BAR4 and forwards Bus Master Enable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSimHost, simBoard, type SimHost } from '../../../src/sim/index.ts';
import { IoreqServer } from '../../../src/ioreq/server.ts';
import { installPcPlatform } from '../../../src/pci/platform.ts';
import { IdeController } from '../../../src/devices/ide/controller.ts';
import { MemoryBackend } from '../../../src/block/memory.ts';

const IDE_DEVFN = (1 << 3) | 1;
const BMIBA = 0xc040;

function machine(): { sim: SimHost; ide: IdeController; disk: MemoryBackend; cd: MemoryBackend; server: IoreqServer } {
  const sim = createSimHost({ ramBytes: 32 << 20 });
  const board = simBoard(sim);
  const disk = new MemoryBackend(16 << 20);
  const cd = new MemoryBackend(new Uint8Array(2048 * 8).map((_, i) => (i >> 11) + 1), true);
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend: disk }, null, { kind: 'cdrom', backend: cd }]);
  installPcPlatform(board, { ide, ramBytes: 32 << 20 });
  const server = new IoreqServer(sim, board);
  server.start();
  sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMIBA | 1);
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005); // I/O decode + bus master
  return { sim, ide, disk, cd, server };
}

test('sim: legacy ports and BAR4 are claimed through the PCI function; IDENTIFY via REP INSW into guest RAM', () => {
  const { sim, server } = machine();
  assert.ok(sim.claimsPort(0x1f0, 8) && sim.claimsPort(0x3f6) && sim.claimsPort(0x170, 8) && sim.claimsPort(0x376));
  assert.ok(sim.claimsPort(BMIBA, 16));
  sim.outb(0x1f6, 0xa0);
  sim.outb(0x1f7, 0xec);
  assert.equal(sim.isaIrqLevel(14), 1);
  assert.equal(sim.inb(0x1f7) & 0x88, 0x08);
  assert.equal(sim.isaIrqLevel(14), 0);
  sim.insw(0x1f0, 0x1000, 256);
  const id = sim.memread(0x1000, 512);
  assert.equal(id[0] | (id[1] << 8), 0x0040);
  assert.equal(id[510], 0xa5);
  assert.equal(sim.inb(0x1f7) & 0x08, 0);
  server.stop();
});

test('sim: DMA write and read through BAR4; Bus Master Enable off keeps memory untouched', async () => {
  const { sim, disk, server } = machine();
  const prdt = 0x2000;
  const buf = 0x10000;
  sim.memwrite(prdt, [0, 0, 1, 0, 0, 0x10, 0, 0x80]); // 0x10000, 4096 bytes, EOT
  const data = new Uint8Array(4096).map((_, i) => (i * 3) & 0xff);
  sim.memwrite(buf, data);
  const dma = async (cmd: number, dir: number) => {
    sim.outb(BMIBA + 2, 0x06);
    sim.outl(BMIBA + 4, prdt);
    sim.outb(0x1f6, 0xe0);
    sim.outb(0x1f2, 8);
    sim.outb(0x1f3, 40);
    sim.outb(0x1f4, 0);
    sim.outb(0x1f5, 0);
    sim.outb(0x1f7, cmd);
    sim.outb(BMIBA, 1 | dir);
    await sim.waitFor(() => (sim.inb(BMIBA + 2) & 0x04) !== 0);
    sim.outb(BMIBA, 0);
    assert.equal(sim.isaIrqLevel(14), 1);
    return sim.inb(0x1f7);
  };
  assert.equal((await dma(0xca, 0)) & 0x89, 0);
  assert.deepEqual(disk.data.subarray(40 * 512, 48 * 512), data);
  sim.memwrite(buf, new Uint8Array(4096));
  assert.equal((await dma(0xc8, 8)) & 0x89, 0);
  assert.deepEqual(sim.memread(buf, 4096), data);
  // Bus mastering off: the read completes (as QEMU) but nothing reaches memory.
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0001);
  sim.memwrite(buf, new Uint8Array(4096));
  assert.equal((await dma(0xc8, 8)) & 0x89, 0);
  assert.deepEqual(sim.memread(buf, 4096), new Uint8Array(4096));
  server.stop();
});

test('sim: ATAPI READ(10) on the secondary channel via PIO with REP INSW', async () => {
  const { sim, server } = machine();
  sim.outb(0x176, 0xa0);
  sim.outb(0x174, 0x00);
  sim.outb(0x175, 0x10); // byte count limit 4096
  sim.outb(0x177, 0xa0);
  sim.memwrite(0x3000, [0x28, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0]); // READ(10) LBA 2, 3 blocks
  sim.outsw(0x170, 0x3000, 6);
  const got: number[] = [];
  for (let i = 0; i < 2; i++) {
    await sim.waitFor(() => sim.isaIrqLevel(15) === 1);
    assert.equal(sim.inb(0x177) & 0x88, 0x08);
    const n = sim.inb(0x174) | (sim.inb(0x175) << 8);
    assert.equal(n, i === 0 ? 4096 : 2048);
    sim.insw(0x170, 0x4000, n / 2);
    got.push(...sim.memread(0x4000, n));
  }
  await sim.waitFor(() => sim.isaIrqLevel(15) === 1);
  assert.equal(sim.inb(0x177) & 0x89, 0);
  assert.equal(sim.inb(0x172) & 3, 3);
  assert.deepEqual([got[0], got[2048], got[4096], got.length], [3, 4, 5, 6144]);
  server.stop();
});

test('sim: zero-copy DMA: one backend request per command straight into the PRD pages; views pinned until the request returns, even across SRST', async () => {
  const { FaultyBackend } = await import('../../../src/block/fault.ts');
  const { SimMemory } = await import('../../../src/sim/memory.ts');
  const sim = createSimHost({ ramBytes: 32 << 20 });
  const board = simBoard(sim);
  const data = new Uint8Array(16 << 20).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const disk = new FaultyBackend(new MemoryBackend(data));
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend: disk }]);
  installPcPlatform(board, { ide, ramBytes: 32 << 20 });
  const server = new IoreqServer(sim, board);
  server.start();
  sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMIBA | 1);
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005);
  const mem = sim.memory as InstanceType<typeof SimMemory>;
  // 256 KiB in 5 PRD entries at scattered addresses.
  const sizes = [0x10000, 0x8000, 0x10000, 0x8000, 0x10000];
  const prd: number[] = [];
  let addr = 0x200000;
  for (const [i, sz] of sizes.entries()) {
    prd.push(addr & 0xff, (addr >> 8) & 0xff, (addr >> 16) & 0xff, addr >>> 24, sz & 0xff, (sz >> 8) & 0xff, 0, i === sizes.length - 1 ? 0x80 : 0);
    addr += sz + 0x3000;
  }
  sim.memwrite(0x2000, prd);
  const read = (lba: number) => {
    sim.outb(BMIBA + 2, 0x06);
    sim.outl(BMIBA + 4, 0x2000);
    sim.outb(0x1f6, 0x40);
    sim.outb(0x1f2, 2); // 512 sectors: READ DMA EXT
    sim.outb(0x1f3, 0);
    sim.outb(0x1f4, 0);
    sim.outb(0x1f5, 0);
    sim.outb(0x1f2, 0);
    sim.outb(0x1f3, lba);
    sim.outb(0x1f4, 0);
    sim.outb(0x1f5, 0);
    sim.outb(0x1f7, 0x25);
    sim.outb(BMIBA, 9);
  };
  read(8);
  await sim.waitFor(() => (sim.inb(BMIBA + 2) & 0x04) !== 0);
  sim.outb(BMIBA, 0);
  assert.equal(sim.inb(0x1f7) & 0x89, 0);
  assert.deepEqual(disk.log, [`read ${8 * 512} ${256 * 1024}`], 'one backend request for the whole command');
  addr = 0x200000;
  let off = 8 * 512;
  for (const sz of sizes) {
    assert.deepEqual(sim.memread(addr, sz), data.subarray(off, off + sz));
    off += sz;
    addr += sz + 0x3000;
  }
  assert.equal(mem.dmaViews, 0, 'every view released');

  // Held in flight, then SRST: the engine forgets the run, the views stay pinned until the read returns.
  disk.hold = () => true;
  read(100);
  await sim.waitFor(() => disk.heldCount === 1);
  assert.equal(mem.dmaViews, sizes.length);
  sim.outb(0x3f6, 0x04);
  sim.outb(0x3f6, 0x00);
  assert.equal(mem.dmaViews, sizes.length, 'still in the backend\'s hands');
  disk.hold = null;
  disk.release();
  await sim.waitFor(() => mem.dmaViews === 0);
  assert.equal(sim.inb(BMIBA + 2) & 0x04, 0, 'the cancelled run completes into nothing');
  server.stop();
});
