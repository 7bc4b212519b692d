/**
 * The PC platform end to end on the simulated hypervisor: ioreqs encoded as
 * Xen encodes them, served by the IoreqServer, reaching our PciBus and the
 * real IDE controller (src/devices/ide) through the PciIdeHost hook.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryBackend } from '../../src/block/memory.ts';
import { SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT } from '../../src/core/host.ts';
import { IdeController } from '../../src/devices/ide/controller.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import type { PciIdeHost } from '../../src/pci/piix-ide.ts';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { createSimHost, simBoard } from '../../src/sim/index.ts';

const silent = pino({ level: 'silent' });

function machine() {
  const sim = createSimHost({ ramBytes: 32 << 20 });
  const board = simBoard(sim);
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend: new MemoryBackend(4 << 20) }], silent);
  const host: PciIdeHost = {
    bmdmaHandler: ide.busMasterBlock,
    channels: [
      { cmd: ide.commandBlock(0), ctl: ide.controlBlock(0) },
      { cmd: ide.commandBlock(1), ctl: ide.controlBlock(1) },
    ],
    setBusMaster: (on) => ide.setBusMaster(on),
  };
  const unplugs: number[] = [];
  const pc = installPcPlatform(board, { ide: host, ramBytes: 32 << 20, onUnplug: (m) => void unplugs.push(m), log: silent });
  const server = new IoreqServer(sim, board, silent);
  server.start();
  return { sim, board, ide, pc, unplugs };
}

test('Xen sees our claims: five functions, the fixed ports, no PM1a_EVT or PM timer', () => {
  const { sim } = machine();
  assert.deepEqual([...sim.pciFunctions].sort((a, b) => a - b), [0x00, 0x08, 0x09, 0x0b, 0x10]);
  for (const [port, len] of [
    [0xcf8, 4],
    [0xcfc, 4],
    [0x1f0, 8],
    [0x3f6, 1],
    [0x170, 8],
    [0x376, 1],
    [0x10, 2],
    [0xb2, 1],
    [0x92, 1],
  ]) {
    assert.ok(sim.claimsPort(port, len), `port 0x${port.toString(16)}`);
  }
  assert.equal(sim.pciConfigRead(0x08, 0, 4), 0x70008086);
  assert.equal(sim.pciConfigRead(0x09, 0x0a, 2), 0x0101);
  assert.equal(sim.pciConfigRead(0x10, 0, 4), 0x00015853);
  assert.equal(sim.pciConfigRead(0x18, 0, 4), 0xffffffff); // nothing at 00:03.0
});

test('hvmloader pci_setup as PCI_CONFIG ioreqs: link routes, PM block, IDE bus master', () => {
  const { sim, ide } = machine();
  [5, 10, 11, 5].forEach((irq, link) => sim.pciConfigWrite(0x08, 0x60 + link, 1, irq));
  assert.deepEqual([...sim.linkRoutes], [5, 10, 11, 5]);
  sim.pciConfigWrite(0x0b, 0x40, 4, 0xb001);
  sim.pciConfigWrite(0x0b, 0x80, 1, 0x01);
  assert.ok(sim.claimsPort(0xb004, 2));
  assert.ok(!sim.claimsPort(0xb000, 4), 'PM1a_EVT is Xen\'s');
  assert.ok(!sim.claimsPort(0xb008, 4), 'the PM timer is Xen\'s');
  // acpi_enable_sci()
  assert.equal(sim.inb(0xb004) & 1, 0);
  sim.outb(0xb2, 0xf1);
  assert.equal(sim.inb(0xb004) & 1, 1);
  // IDE: legacy decode, BAR4 sizing and programming, I/O + bus master.
  sim.pciConfigWrite(0x09, 0x40, 2, 0x8000);
  sim.pciConfigWrite(0x09, 0x42, 2, 0x8000);
  sim.pciConfigWrite(0x09, 0x20, 4, 0xffffffff);
  assert.equal(sim.pciConfigRead(0x09, 0x20, 4), 0xfffffff1);
  sim.pciConfigWrite(0x09, 0x20, 4, 0xc001);
  assert.ok(!sim.claimsPort(0xc000, 16));
  sim.pciConfigWrite(0x09, 0x04, 2, 0x0005);
  assert.ok(sim.claimsPort(0xc000, 16));
  assert.equal(ide.channels[0].bm.busMaster, true);
  // The BM status register of the primary channel answers through BAR4.
  assert.equal(sim.inb(0xc002) & 0x01, 0, 'not active');
  sim.pciConfigWrite(0x09, 0x04, 2, 0x0001);
  assert.equal(ide.channels[0].bm.busMaster, false);
});

test('IDENTIFY through the legacy ports the platform claimed for the controller', () => {
  const { sim } = machine();
  sim.outb(0x1f6, 0xa0);
  sim.outb(0x1f7, 0xec);
  assert.equal(sim.isaIrqLevel(14), 1, 'INTRQ on ISA IRQ 14');
  assert.equal(sim.inb(0x1f7) & 0x08, 0x08, 'DRQ');
  assert.equal(sim.isaIrqLevel(14), 0, 'reading status acknowledges');
  assert.equal(sim.inw(0x1f0), 0x0040, 'word 0: fixed ATA disk');
});

test('CF8/CFC port I/O reaches the same config space; 0xcf9 and PM1a_CNT power the guest off and on', () => {
  const { sim } = machine();
  sim.outl(0xcf8, 0x80000800);
  assert.equal(sim.inl(0xcfc), 0x70008086);
  assert.equal(sim.inb(0xcfe), 0x00);
  sim.outl(0xcf8, 0x80000808);
  assert.equal(sim.inw(0xcfe), 0x0601);
  sim.outb(0xcf9, 0x06);
  assert.deepEqual(sim.shutdownRequests.map((r) => r.reason), [SHUTDOWN_REBOOT]);
  sim.pciConfigWrite(0x0b, 0x40, 4, 0xb001);
  sim.pciConfigWrite(0x0b, 0x80, 1, 0x01);
  sim.outw(0xb004, 0x2001); // SLP_TYP 0 (\_S5), SLP_EN
  assert.deepEqual(sim.shutdownRequests.map((r) => r.reason), [SHUTDOWN_REBOOT, SHUTDOWN_POWEROFF]);
});

test('Xen platform handshake and unplug through ioreqs', () => {
  const { sim, unplugs } = machine();
  assert.equal(sim.inw(0x10), 0x49d2);
  assert.equal(sim.inb(0x12), 1);
  sim.outw(0x12, 3);
  sim.outl(0x10, 1);
  assert.equal(sim.inw(0x10), 0x49d2);
  sim.outw(0x10, 0x0003);
  assert.deepEqual(unplugs, [3]);
});
