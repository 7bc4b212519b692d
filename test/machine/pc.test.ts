/**
 * The whole stack in process: simulated hypervisor -> ioreq server -> board
 * -> PCI platform -> PIIX IDE -> file backend. The guest side is written the
 * way a BIOS or ata_piix drives the hardware.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createSimHost, simBoard, type SimHost } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { buildPc } from '../../src/machine/pc.ts';
import { parseArgs } from '../../src/cli/index.ts';
import { MemoryPair } from '../../src/net/index.ts';

const SECTOR = 512;
const IDE_DEVFN = (1 << 3) | 1;
const BMDMA = 0xc000;
const ATA_DATA = 0x1f0, ATA_NSECT = 0x1f2, ATA_LBAL = 0x1f3, ATA_LBAM = 0x1f4, ATA_LBAH = 0x1f5, ATA_DEV = 0x1f6, ATA_CMD = 0x1f7;
const ST_BSY = 0x80, ST_DRQ = 0x08, ST_ERR = 0x01;

function pattern(lba: number): Uint8Array {
  const b = new Uint8Array(SECTOR);
  for (let i = 0; i < SECTOR; i++) b[i] = (lba * 7 + i) & 0xff;
  return b;
}

async function machine(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-pc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.img');
  const img = new Uint8Array(64 * SECTOR);
  for (let lba = 0; lba < 64; lba++) img.set(pattern(lba), lba * SECTOR);
  writeFileSync(disk, img);
  const { config: cfg } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', '16', '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`, '--sim']);
  const sim = createSimHost({ ramBytes: 16 << 20 });
  const board = simBoard(sim);
  const pc = await buildPc(board, cfg, pino({ level: 'silent' }));
  const server = new IoreqServer(sim, board, pino({ level: 'silent' }));
  server.start();
  sim.channel.setEnabled(true);
  t.after(() => server.stop());
  return { sim, pc, disk };
}

async function waitNotBusy(sim: SimHost): Promise<number> {
  let st = 0;
  await sim.waitFor(() => ((st = sim.inb(0x3f6)) & ST_BSY) === 0);
  return st;
}

test('hvmloader finds the chipset and IDE over PCI config ioreqs', async (t) => {
  const { sim } = await machine(t);
  assert.equal(sim.pciConfigRead(0, 0, 4), 0x12378086, '00:00.0 i440FX');
  assert.equal(sim.pciConfigRead(1 << 3, 0, 4), 0x70008086, '00:01.0 PIIX3 ISA');
  assert.equal(sim.pciConfigRead(IDE_DEVFN, 0, 4), 0x70108086, '00:01.1 PIIX3 IDE');
  assert.equal(sim.pciConfigRead((1 << 3) | 3, 0, 4), 0x71138086, '00:01.3 PIIX4 ACPI');
  assert.equal(sim.pciConfigRead(2 << 3, 0, 4), 0x00015853, '00:02.0 Xen platform');
  assert.equal(sim.pciConfigRead(3 << 3, 0, 4), 0xffffffff, 'nothing at 00:03.0');
  assert.ok(sim.claimsPort(0x1f0, 8) && sim.claimsPort(0x3f6), 'legacy IDE ports are claimed with Xen');
});

test('IDENTIFY by PIO and a DMA read and write reach the image file', async (t) => {
  const { sim, disk } = await machine(t);
  // IDENTIFY DEVICE, PIO: status, then 256 words by REP INSW into guest RAM.
  sim.outb(ATA_DEV, 0xa0);
  sim.outb(ATA_CMD, 0xec);
  let st = await waitNotBusy(sim);
  assert.equal(st & (ST_DRQ | ST_ERR), ST_DRQ);
  sim.insw(ATA_DATA, 0x8000, 256);
  const id = sim.memread(0x8000, 512);
  const word = (n: number) => id[2 * n] | (id[2 * n + 1] << 8);
  assert.equal(word(60) | (word(61) << 16), 64, 'LBA28 capacity in sectors');
  assert.ok(word(49) & (1 << 9), 'LBA supported');

  // Bus-master setup as a BIOS does it: BAR4, I/O + bus master enable.
  sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMDMA | 1);
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005);
  assert.ok(sim.claimsPort(BMDMA, 16), 'BAR4 claimed once decoding is on');

  // READ DMA of LBA 5..6 into 0x20000 through a one-entry PRD table at 0x10000.
  sim.memwrite(0x10000, [0x00, 0x00, 0x02, 0x00, 0x00, 0x04, 0x00, 0x80]); // base 0x20000, 1024 bytes, EOT
  sim.outl(BMDMA + 4, 0x10000);
  sim.outb(ATA_NSECT, 2);
  sim.outb(ATA_LBAL, 5);
  sim.outb(ATA_LBAM, 0);
  sim.outb(ATA_LBAH, 0);
  sim.outb(ATA_DEV, 0xe0);
  sim.outb(ATA_CMD, 0xc8);
  sim.outb(BMDMA, 0x09); // start, direction: to memory
  await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
  assert.equal(sim.inb(BMDMA + 2) & 0x07, 0x04, 'BM status: interrupt, no error, not active');
  st = sim.inb(ATA_CMD); // reading status acknowledges the interrupt
  assert.equal(st & (ST_BSY | ST_DRQ | ST_ERR), 0);
  assert.equal(sim.isaIrqLevel(14), 0);
  sim.outb(BMDMA, 0x00);
  sim.outb(BMDMA + 2, 0x04);
  assert.deepEqual(sim.memread(0x20000, SECTOR), pattern(5));
  assert.deepEqual(sim.memread(0x20000 + SECTOR, SECTOR), pattern(6));

  // WRITE DMA of one sector at LBA 9, then FLUSH CACHE: the file holds it.
  const data = new Uint8Array(SECTOR).fill(0x5a);
  sim.memwrite(0x30000, data);
  sim.memwrite(0x10000, [0x00, 0x00, 0x03, 0x00, 0x00, 0x02, 0x00, 0x80]);
  sim.outb(ATA_NSECT, 1);
  sim.outb(ATA_LBAL, 9);
  sim.outb(ATA_DEV, 0xe0);
  sim.outb(ATA_CMD, 0xca);
  sim.outb(BMDMA, 0x01); // start, direction: from memory
  await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
  sim.inb(ATA_CMD);
  sim.outb(BMDMA, 0x00);
  sim.outb(ATA_CMD, 0xe7); // FLUSH CACHE
  st = await waitNotBusy(sim);
  assert.equal(st & ST_ERR, 0);
  const onDisk = readFileSync(disk);
  assert.deepEqual(new Uint8Array(onDisk.subarray(9 * SECTOR, 10 * SECTOR)), data);
  assert.deepEqual(new Uint8Array(onDisk.subarray(8 * SECTOR, 9 * SECTOR)), pattern(8), 'neighbours untouched');
});

test('the Xen platform unplug hands the IDE disk to PV drivers: the slot goes empty', async (t) => {
  const { sim } = await machine(t);
  assert.equal(sim.inw(0x10), 0x49d2, 'platform magic');
  sim.outb(ATA_DEV, 0xa0);
  assert.ok(sim.inb(ATA_CMD) & 0x40, 'disk present and ready before unplug');
  sim.outw(0x10, 0x0001); // UNPLUG_IDE_DISKS, as Linux's xen_unplug_emulated_devices writes it
  sim.outb(ATA_DEV, 0xa0);
  sim.outb(ATA_CMD, 0xec); // IDENTIFY to an empty slot
  const st = sim.inb(ATA_CMD);
  assert.equal(st & (0x40 | ST_DRQ), 0, 'no device: not ready, no data');
  sim.outw(0x10, 0x0001); // repeated unplug writes are harmless
});

test('-device e1000 with its -netdev: the NIC sits at 00:03.0 on its backend, is saved with the machine, and leaves on a PV unplug', async (t) => {
  const { config: cfg } = await parseArgs([
    '-xen-domid', '1', '-machine', 'xenfv', '-m', '16', '--sim',
    '-device', 'e1000,id=nic0,netdev=net0,mac=00:16:3e:00:00:02',
    '-netdev', 'type=tap,id=net0,ifname=vif1.0-emu,br=xenbr0,script=no,downscript=no',
  ]);
  const sim: SimHost = createSimHost({ ramBytes: 16 << 20 });
  const board = simBoard(sim);
  const pair = new MemoryPair();
  const pc = await buildPc(board, cfg, pino({ level: 'silent' }), [], [{ nic: cfg.devices[0], backend: pair.a }]);
  t.after(() => pc.close());
  const server = new IoreqServer(sim, board, pino({ level: 'silent' }));
  server.start();
  sim.channel.setEnabled(true);
  t.after(() => server.stop());
  const cfgRead = (dev: number, reg: number): number => {
    sim.outl(0xcf8, (0x80000000 | (dev << 11) | reg) >>> 0);
    return sim.inl(0xcfc);
  };
  assert.equal(cfgRead(3, 0), 0x100e8086, '8086:100e at 00:03.0');
  assert.equal(cfgRead(3, 8) >>> 8, 0x020000, 'Ethernet controller');
  assert.equal(pc.nics.length, 1);
  assert.ok(pc.registry.get('e1000.0'), 'the NIC is one of the machine devices');
  // The EEPROM carries the MAC libxl passed: read word 0-2 through EERD (8254x SDM 13.4.4).
  sim.outl(0xcf8, (0x80000000 | (3 << 11) | 0x10) >>> 0);
  sim.outl(0xcfc, 0xf0000000);
  sim.outl(0xcf8, (0x80000000 | (3 << 11) | 0x04) >>> 0);
  sim.outw(0xcfc, 0x0006);
  const mac: number[] = [];
  for (let w = 0; w < 3; w++) {
    sim.writel(0xf0000014, (w << 8) | 1);
    const v = sim.readl(0xf0000014);
    assert.ok(v & 0x10, 'EERD done');
    mac.push(v >>> 16 & 0xff, v >>> 24);
  }
  assert.deepEqual(mac, [0x00, 0x16, 0x3e, 0x00, 0x00, 0x02]);
  // PV drivers take the NIC: the function leaves the bus.
  sim.outw(0x10, 0x0002);
  assert.equal(cfgRead(3, 0), 0xffffffff, 'no function at 00:03.0 after the NIC unplug');
  const blob = await pc.save();
  assert.ok(blob.length > 0);
});

test('the NIC option ROM over ioreqs: hvmloader sizes and places the ROM BAR, SeaBIOS enables it, reads the image, disables it', async (t) => {
  const { config: cfg } = await parseArgs([
    '-xen-domid', '1', '-machine', 'xenfv', '-m', '16', '--sim',
    '-device', 'e1000,id=nic0,netdev=net0,mac=00:16:3e:00:00:02',
    '-netdev', 'type=tap,id=net0,ifname=vif1.0-emu,br=xenbr0,script=no,downscript=no',
  ]);
  const sim: SimHost = createSimHost({ ramBytes: 16 << 20 });
  const board = simBoard(sim);
  const pair = new MemoryPair();
  // 3 KiB image: a 4 KiB ROM BAR whose last KiB reads 0xff.
  const rom = new Uint8Array(3072).map((_, i) => (i * 13) & 0xff);
  rom.set([0x55, 0xaa, 6], 0);
  const pc = await buildPc(board, cfg, pino({ level: 'silent' }), [], [{ nic: cfg.devices[0], backend: pair.a, rom }]);
  t.after(() => pc.close());
  const server = new IoreqServer(sim, board, pino({ level: 'silent' }));
  server.start();
  sim.channel.setEnabled(true);
  t.after(() => server.stop());
  const sel = (reg: number) => sim.outl(0xcf8, (0x80000000 | (3 << 11) | reg) >>> 0);
  const cfgRead = (reg: number): number => (sel(reg), sim.inl(0xcfc));
  const cfgWrite = (reg: number, v: number): void => (sel(reg), sim.outl(0xcfc, v >>> 0));
  // hvmloader pci_setup: (data | mask) & ~enable, read the size, restore; then base, memory decode on.
  cfgWrite(0x30, 0xfffff800);
  assert.equal(cfgRead(0x30), 0xfffff000, '4 KiB ROM BAR');
  cfgWrite(0x30, 0);
  cfgWrite(0x30, 0xf1000000);
  cfgWrite(0x04, 0x0007);
  const ROM = 0xf1000000;
  assert.equal(sim.readl(ROM), 0xffffffff, 'nothing decoded before SeaBIOS sets the enable bit');
  // SeaBIOS map_pcirom: enable, check the signature, copy, put the original value back.
  cfgWrite(0x30, ROM | 1);
  assert.equal(sim.readw(ROM), 0xaa55);
  const copy = new Uint8Array(4096);
  for (let o = 0; o < copy.length; o += 4) {
    const v = sim.readl(ROM + o);
    copy[o] = v & 0xff; copy[o + 1] = (v >>> 8) & 0xff; copy[o + 2] = (v >>> 16) & 0xff; copy[o + 3] = v >>> 24;
  }
  assert.deepEqual(copy.subarray(0, 3072), rom);
  assert.ok(copy.subarray(3072).every((b) => b === 0xff), 'past the image: 0xff');
  sim.writel(ROM, 0);
  assert.equal(sim.readw(ROM), 0xaa55, 'read-only');
  cfgWrite(0x30, ROM);
  assert.equal(sim.readl(ROM), 0xffffffff, 'gone again once disabled');
  // The machine saves the ROM BAR with the NIC: a restored machine decodes it where it was.
  cfgWrite(0x30, ROM | 1);
  const blob = await pc.save();
  const sim2: SimHost = createSimHost({ ramBytes: 16 << 20 });
  const board2 = simBoard(sim2);
  const pair2 = new MemoryPair();
  const pc2 = await buildPc(board2, cfg, pino({ level: 'silent' }), [], [{ nic: cfg.devices[0], backend: pair2.a, rom }]);
  t.after(() => pc2.close());
  pc2.restore(blob);
  const server2 = new IoreqServer(sim2, board2, pino({ level: 'silent' }));
  server2.start();
  sim2.channel.setEnabled(true);
  t.after(() => server2.stop());
  assert.equal(sim2.readw(ROM), 0xaa55, 'the restored machine serves the ROM at the saved base');
});
