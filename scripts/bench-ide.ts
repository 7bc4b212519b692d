/**
 * IDE throughput through the whole path (simulated hypervisor -> IoreqServer
 * -> controller -> block backend): what a guest driver would see, minus the
 * VM exits of real Xen. Prints `name value unit` lines:
 *   node --import tsx scripts/bench-ide.ts
 *
 *   ide_identify_us        one IDENTIFY DEVICE + REP INSW of 256 words
 *   ide_pio_read_mbs       READ MULTIPLE (16-sector blocks), REP INSW per block, memory backend
 *   ide_pio_read1_mbs      READ SECTORS (one-sector blocks, how firmware loads a kernel), memory backend
 *   ide_dma_read_mbs       READ DMA of 128 KiB per command, memory backend
 *   ide_pio_read1_file_mbs READ SECTORS one-sector blocks, raw file in the page cache
 *   ide_dma_read_file_mbs  READ DMA of 128 KiB per command, raw file in the page cache
 *   ide_dma_write_file_mbs WRITE DMA of 128 KiB per command, raw file (writeback), no flush
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createSimHost, simBoard, type SimHost } from '../src/sim/index.ts';
import { IoreqServer } from '../src/ioreq/server.ts';
import { installPcPlatform } from '../src/pci/platform.ts';
import { IdeController } from '../src/devices/ide/controller.ts';
import { MemoryBackend } from '../src/block/memory.ts';
import { openBlockBackend, type BlockBackend } from '../src/block/index.ts';

const BM = 0xc000;
const DISK = 64 << 20;

function machine(backend: BlockBackend): { sim: SimHost; server: IoreqServer } {
  const sim = createSimHost({ ramBytes: 64 << 20, clock: 'real' });
  const board = simBoard(sim);
  const log = pino({ level: 'silent' });
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend }], log);
  installPcPlatform(board, { ide, ramBytes: 64 << 20, log });
  const server = new IoreqServer(sim, board, log);
  server.start();
  sim.pciConfigWrite(9, 0x20, 4, BM | 1);
  sim.pciConfigWrite(9, 0x04, 2, 5);
  return { sim, server };
}

function out(name: string, value: number, unit: string): void {
  console.log(`${name} ${value < 10 ? value.toFixed(2) : Math.round(value)} ${unit}`);
}

async function identify(sim: SimHost, n: number): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    sim.outb(0x1f7, 0xec);
    sim.inb(0x1f7);
    sim.insw(0x1f0, 0x1000, 256);
  }
  return ((performance.now() - t) * 1000) / n;
}

async function pioRead(sim: SimHost, bytes: number, mult = 16): Promise<number> {
  sim.outb(0x1f6, 0xe0);
  sim.outb(0x1f2, mult);
  sim.outb(0x1f7, 0xc6);
  const t = performance.now();
  for (let done = 0; done < bytes; done += 256 * 512) {
    sim.outb(0x1f2, 0);
    sim.outb(0x1f3, 0);
    sim.outb(0x1f4, 0);
    sim.outb(0x1f5, 0);
    sim.outb(0x1f7, mult === 1 ? 0x20 : 0xc4);
    for (let blk = 0; blk < 256 / mult; blk++) {
      await sim.waitFor(() => (sim.inb(0x3f6) & 0x88) === 0x08);
      sim.inb(0x1f7);
      sim.insw(0x1f0, 0x10000, mult * 256);
    }
  }
  return bytes / 1e6 / ((performance.now() - t) / 1000);
}

async function dma(sim: SimHost, bytes: number, write: boolean): Promise<number> {
  const chunk = 128 * 1024;
  const prd = new Uint8Array(16);
  const v = new DataView(prd.buffer);
  v.setUint32(0, 0x100000, true);
  v.setUint32(4, 0x10000, true);
  v.setUint32(8, 0x110000, true);
  v.setUint32(12, 0x80010000, true);
  sim.memwrite(0x2000, prd);
  sim.outl(BM + 4, 0x2000);
  const t = performance.now();
  let lba = 0;
  for (let done = 0; done < bytes; done += chunk) {
    sim.outb(BM + 2, 6);
    sim.outb(0x1f6, 0xe0 | ((lba >> 24) & 0xf));
    sim.outb(0x1f2, chunk / 512);
    sim.outb(0x1f3, lba & 0xff);
    sim.outb(0x1f4, (lba >> 8) & 0xff);
    sim.outb(0x1f5, (lba >> 16) & 0xff);
    sim.outb(0x1f7, write ? 0xca : 0xc8);
    sim.outb(BM, write ? 1 : 9);
    await sim.waitFor(() => (sim.inb(BM + 2) & 4) !== 0);
    sim.outb(BM, 0);
    sim.inb(0x1f7);
    lba = (lba + chunk / 512) % (DISK / 512);
  }
  return bytes / 1e6 / ((performance.now() - t) / 1000);
}

async function main(): Promise<void> {
  const mem = machine(new MemoryBackend(DISK));
  await identify(mem.sim, 200); // warm-up
  out('ide_identify_us', await identify(mem.sim, 2000), 'us');
  await pioRead(mem.sim, 1 << 20);
  out('ide_pio_read_mbs', await pioRead(mem.sim, 32 << 20), 'MB/s');
  out('ide_pio_read1_mbs', await pioRead(mem.sim, 16 << 20, 1), 'MB/s');
  await dma(mem.sim, 4 << 20, false);
  out('ide_dma_read_mbs', await dma(mem.sim, 256 << 20, false), 'MB/s');
  mem.server.stop();

  const dir = mkdtempSync(join(tmpdir(), 'stubdm-bench-ide-'));
  try {
    const path = join(dir, 'disk.img');
    writeFileSync(path, new Uint8Array(DISK));
    const backend = await openBlockBackend({ path, cache: 'writeback' });
    const file = machine(backend);
    await pioRead(file.sim, 1 << 20, 1);
    out('ide_pio_read1_file_mbs', await pioRead(file.sim, 8 << 20, 1), 'MB/s');
    await dma(file.sim, 8 << 20, false);
    out('ide_dma_read_file_mbs', await dma(file.sim, 256 << 20, false), 'MB/s');
    out('ide_dma_write_file_mbs', await dma(file.sim, 256 << 20, true), 'MB/s');
    file.server.stop();
    await backend.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
