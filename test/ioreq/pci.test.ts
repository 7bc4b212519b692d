import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AccessSize, PciConfigHandler } from '../../src/core/io.ts';
import { IOREQ_TYPE_PCI_CONFIG } from '../../src/ioreq/abi.ts';
import { setup } from './helpers.ts';

class RecordingPci implements PciConfigHandler {
  readonly log: string[] = [];
  configRead(devfn: number, reg: number, size: AccessSize): number {
    this.log.push(`r ${devfn.toString(16)} ${reg.toString(16)}/${size}`);
    return size === 4 ? 0x70008086 : size === 2 ? 0x8086 : 0x86;
  }
  configWrite(devfn: number, reg: number, size: AccessSize, value: number): void {
    this.log.push(`w ${devfn.toString(16)} ${reg.toString(16)}/${size}=${value.toString(16)}`);
  }
}

test('PCI_CONFIG: SBDF in addr >> 32, register in the low half, dispatched to board.pci', () => {
  const pci = new RecordingPci();
  const { sim, server } = setup({}, (b) => (b.pci = pci));
  assert.equal(sim.pciConfigRead(0x08, 0x00, 4), 0x70008086);
  assert.equal(sim.pciConfigRead(0x09, 0x02, 2), 0x8086);
  assert.equal(sim.pciConfigRead(0x0b, 0x103, 1), 0x86); // extended register passes through
  sim.pciConfigWrite(0x10, 0x04, 2, 0x0107);
  sim.pciConfigWrite(0x10, 0x3c, 1, 0x0b);
  assert.deepEqual(pci.log, ['r 8 0/4', 'r 9 2/2', 'r b 103/1', 'w 10 4/2=107', 'w 10 3c/1=b']);
  assert.equal(server.stats.pciConfig, 5);
});

test('PCI_CONFIG on another bus or segment, or malformed, reads all ones and never reaches the handler', () => {
  const pci = new RecordingPci();
  const { sim } = setup({}, (b) => (b.pci = pci));
  assert.equal(sim.pciConfigRead(0x08, 0, 4, 1), 0xffffffff);
  assert.equal(sim.pciConfigRead(0x08, 0, 2, 0, 1), 0xffff);
  sim.pciConfigWrite(0x08, 4, 2, 0, 3);
  // count != 1 and bad size
  const sbdf = BigInt(0x08) << 32n;
  assert.equal(sim.request({ type: IOREQ_TYPE_PCI_CONFIG, dir: 'read', addr: sbdf, size: 4, count: 2 }) & 0xffffffffn, 0xffffffffn);
  assert.equal(sim.request({ type: IOREQ_TYPE_PCI_CONFIG, dir: 'read', addr: sbdf, size: 8 }) & 0xffffffffn, 0xffffffffn);
  assert.equal(sim.request({ type: IOREQ_TYPE_PCI_CONFIG, dir: 'read', addr: sbdf | 0x1000n, size: 4 }) & 0xffffffffn, 0xffffffffn);
  assert.deepEqual(pci.log, []);
});

test('without a PCI handler the board floats config reads high', () => {
  const { sim } = setup();
  assert.equal(sim.pciConfigRead(0, 0, 4), 0xffffffff);
  assert.equal(sim.pciConfigRead(0, 0, 1), 0xff);
});
