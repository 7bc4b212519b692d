/**
 * QEMU's chipset (i440FX / PIIX3 / PIIX4 PM / PCI host) CVEs and the hostile
 * patterns behind them, replayed on the whole xenfv machine through the
 * ioreq path (docs/cve.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simPc } from '../helpers/simpc.ts';
import type { SimHost } from '../../src/sim/index.ts';

/** Vendor/device of every function hvmloader expects, and the UART and CMOS answering. */
function platformAnswers(sim: SimHost): void {
  assert.equal(sim.pciConfigRead(0, 0, 4), 0x12378086, '00:00.0 i440FX');
  assert.equal(sim.pciConfigRead(1 << 3, 0, 4), 0x70008086, '00:01.0 PIIX3');
  assert.equal(sim.pciConfigRead((1 << 3) | 1, 0, 4), 0x70108086, '00:01.1 IDE');
  assert.equal(sim.pciConfigRead((1 << 3) | 3, 0, 4), 0x71138086, '00:01.3 PIIX4 PM');
  assert.equal(sim.pciConfigRead(2 << 3, 0, 4), 0x00015853, '00:02.0 Xen platform');
  sim.outb(0x3f8 + 7, 0x5a);
  assert.equal(sim.inb(0x3f8 + 7), 0x5a, 'COM1 scratch');
  sim.outb(0x70, 0x0e);
  sim.outb(0x71, 0xa5);
  sim.outb(0x70, 0x0e);
  assert.equal(sim.inb(0x71), 0xa5, 'CMOS byte 0x0e');
}

test('CVE-2011-1751: writes to the PIIX4 PCI hotplug/eject ports (0xae00-0xae0f) and the GPE block unplug nothing', async (t) => {
  // QEMU's piix4 acpi let the guest "eject" any slot through 0xae08, the ISA bridge included (use after free).
  const { sim } = await simPc(t, 16, ['-serial', 'pty']);
  for (let port = 0xae00; port < 0xae10; port += 4) {
    sim.outl(port, 0xffffffff);
    sim.inl(port);
  }
  for (let port = 0xafe0; port < 0xafe4; port++) sim.outb(port, 0xff);
  platformAnswers(sim);
});

test('config-space abuse (the pattern of QEMU\'s PCI config overflows): every offset and size, CF8 oddities, writes of all ones', async (t) => {
  const { sim } = await simPc(t, 16, ['-serial', 'pty']);
  const fns = [0, 1 << 3, (1 << 3) | 1, (1 << 3) | 3, 2 << 3, 31 << 3, 0xff];
  for (const devfn of fns) {
    for (let reg = 0; reg < 256; reg++) {
      for (const size of [1, 2, 4] as const) sim.pciConfigRead(devfn, reg, size);
    }
  }
  // Unaligned and partial accesses to CONFIG_ADDRESS/CONFIG_DATA, and bit 31 off.
  for (const addr of [0x80000000, 0x800000fd, 0x8000ff00, 0x7fffffff, 0xffffffff]) {
    sim.outl(0xcf8, addr);
    for (let p = 0xcf8; p < 0xd00; p++) sim.inb(p);
    sim.inw(0xcfe);
    sim.inl(0xcfc);
  }
  // All ones into every writable byte of the host bridge's PAM/SMRAM and the bridge's IRQ routing,
  // and the IDE function's BARs: the platform must still be there (BARs move, nothing breaks).
  for (const reg of [0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x72]) sim.pciConfigWrite(0, reg, 1, 0xff);
  for (const reg of [0x60, 0x61, 0x62, 0x63, 0x69, 0x6a, 0x80]) sim.pciConfigWrite(1 << 3, reg, 1, 0xff);
  sim.outl(0xcf8, 0);
  for (const reg of [0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x72]) sim.pciConfigWrite(0, reg, 1, 0);
  platformAnswers(sim);
});
