import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CMD_WRITABLE,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PciConfig,
  STATUS_W1C,
} from '../../src/pci/config.ts';
import { StateError } from '../../src/core/state.ts';

function fn(extra: Partial<ConstructorParameters<typeof PciConfig>[0]> = {}): PciConfig {
  return new PciConfig({
    vendor: 0x8086,
    device: 0x1234,
    revision: 5,
    classCode: 0x0200,
    progIf: 0x01,
    subsystemVendor: 0x1af4,
    subsystem: 0x1100,
    pin: 1,
    status: 0x0280,
    bars: [
      { index: 0, kind: 'mem', size: 0x20000 },
      { index: 1, kind: 'io', size: 0x40 },
      { index: 2, kind: 'mem', size: 0x1000000, prefetchable: true },
    ],
    ...extra,
  });
}

test('identity registers read back at every size and alignment', () => {
  const c = fn();
  assert.equal(c.read(0, 4), 0x12348086);
  assert.equal(c.read(0, 2), 0x8086);
  assert.equal(c.read(1, 2), 0x3480); // unaligned word inside the dword
  assert.equal(c.read(3, 1), 0x12);
  assert.equal(c.read(8, 4), 0x02000105); // class 02 00, prog-if 01, revision 05
  assert.equal(c.read(0x2c, 4), 0x11001af4);
  assert.equal(c.read(0x3d, 1), 1);
  assert.equal(c.read(0xfe, 4), 0xffff0000); // bytes past 255 read as ones
  assert.equal(c.read(0xff, 2), 0xff00);
});

test('read-only registers ignore writes; writable ones take only their mask', () => {
  const c = fn();
  c.write(0, 4, 0xdeadbeef);
  c.write(8, 4, 0xffffffff);
  c.write(0x2c, 4, 0);
  c.write(0x3d, 1, 4);
  assert.equal(c.read(0, 4), 0x12348086);
  assert.equal(c.read(8, 4), 0x02000105);
  assert.equal(c.read(0x2c, 4), 0x11001af4);
  assert.equal(c.read(0x3d, 1), 1);
  c.write(PCI_COMMAND, 2, 0xffff);
  assert.equal(c.read(PCI_COMMAND, 2), CMD_WRITABLE);
  assert.equal(CMD_WRITABLE, 0x0507); // as QEMU's wmask (test/qemu-oracle)
  c.write(0x0d, 1, 0xff); // latency timer: read-only 0
  assert.equal(c.read(0x0d, 1), 0);
  c.write(0x3c, 1, 0x0b); // interrupt line is firmware's scratch byte
  assert.equal(c.read(0x3c, 1), 0x0b);
  c.write(0x40, 4, 0x12345678); // undeclared device registers stay 0
  assert.equal(c.read(0x40, 4), 0);
});

test('status error bits are write-1-to-clear, the rest of status is read-only', () => {
  const c = fn();
  c.set16(PCI_STATUS, 0x0280 | 0x8000 | 0x2000 | 0x0100);
  c.write(PCI_STATUS, 2, 0x2000); // clear received master abort only
  assert.equal(c.read(PCI_STATUS, 2), 0x0280 | 0x8000 | 0x0100);
  c.write(PCI_STATUS, 2, 0xffff); // clears every w1c bit, leaves devsel/fast-b2b
  assert.equal(c.read(PCI_STATUS, 2), 0x0280);
  assert.equal(STATUS_W1C & 0x0280, 0);
  // A dword write to command/status with status bits 0 clears nothing.
  c.set16(PCI_STATUS, 0x0280 | 0x4000);
  c.write(PCI_COMMAND, 4, 0x00000003);
  assert.equal(c.read(PCI_STATUS, 2), 0x4280);
  assert.equal(c.read(PCI_COMMAND, 2), 3);
});

test('BAR sizing falls out of the mask: write ones, read size mask | flags', () => {
  const c = fn();
  const bar = (i: number) => PCI_BASE_ADDRESS_0 + 4 * i;
  assert.equal(c.read(bar(0), 4), 0x00000000);
  assert.equal(c.read(bar(1), 4), 0x00000001);
  assert.equal(c.read(bar(2), 4), 0x00000008);
  for (let i = 0; i < 6; i++) c.write(bar(i), 4, 0xffffffff);
  assert.equal(c.read(bar(0), 4), 0xfffe0000); // 128 KiB memory
  assert.equal(c.read(bar(1), 4), 0xffffffc1); // 64 ports, I/O
  assert.equal(c.read(bar(2), 4), 0xff000008); // 16 MiB prefetchable
  assert.equal(c.read(bar(3), 4), 0); // unimplemented BARs are hard-wired 0
  assert.equal(c.read(bar(5), 4), 0);
  c.write(bar(1), 4, 0xc000);
  assert.equal(c.read(bar(1), 4), 0xc001);
  assert.equal(c.barAddress(1), 0xc000);
  c.write(bar(0), 4, 0xf0012345); // low bits below the size are not writable
  assert.equal(c.barAddress(0), 0xf0000000);
  c.write(bar(1) + 1, 1, 0xd0); // byte writes into a BAR work through the same masks
  assert.equal(c.read(bar(1), 4), 0xd001);
});

test('ROM BAR is absent unless declared, and sizes like a BAR when declared', () => {
  const none = fn();
  none.write(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(none.read(PCI_ROM_ADDRESS, 4), 0);
  const rom = fn({ romSize: 0x10000 });
  rom.write(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(rom.read(PCI_ROM_ADDRESS, 4), 0xffff0001);
  rom.write(PCI_ROM_ADDRESS, 4, 0xfeb00001);
  assert.equal(rom.barAddress(6), 0xfeb00000);
});

test('bad BAR declarations are refused when the device is built', () => {
  assert.throws(() => fn({ bars: [{ index: 0, kind: 'io', size: 3 }] }), RangeError);
  assert.throws(() => fn({ bars: [{ index: 6, kind: 'io', size: 4 }] }), RangeError);
  assert.throws(() => fn({ bars: [{ index: 0, kind: 'mem', size: 8 }] }), RangeError);
  assert.throws(() => fn({ romSize: 1024 }), RangeError);
});

test('watchers run after the masked write lands, for overlapping writes only', () => {
  const c = fn();
  c.mask8(0x60, 0x8f);
  const seen: string[] = [];
  c.watch(0x60, 4, (reg, size) => seen.push(`${reg}/${size}=${c.read(0x60, 1).toString(16)}`));
  c.write(0x5c, 4, 0xffffffff);
  c.write(0x5e, 4, 0xffffffff);
  c.write(0x64, 1, 1);
  assert.deepEqual(seen, ['94/4=8f']);
});

test('snapshot/restore round-trips the config bytes; check() refuses foreign or impossible bytes', () => {
  const a = fn();
  a.write(PCI_BASE_ADDRESS_0 + 4, 4, 0xc040);
  const saved = a.snapshot();
  assert.ok(saved instanceof Uint8Array && saved.length === 256);
  a.write(PCI_BASE_ADDRESS_0 + 4, 4, 0xd000);
  assert.equal(saved[PCI_BASE_ADDRESS_0 + 5], 0xc0, 'a snapshot is a copy');
  const b = fn();
  b.check(saved, 'cfg');
  b.restore(saved);
  assert.equal(b.read(PCI_BASE_ADDRESS_0 + 4, 4), 0xc041);
  const refused = (bytes: Uint8Array, re: RegExp) =>
    assert.throws(() => b.check(bytes, 'cfg'), (e) => e instanceof StateError && re.test(e.message));
  refused(new Uint8Array(3), /256 bytes/);
  const other = b.snapshot();
  other[2] ^= 1; // device ID
  refused(other, /not of this function/);
  const rev = b.snapshot();
  rev[8] = 7;
  refused(rev, /not of this function/);
  const ioBit = b.snapshot();
  ioBit[PCI_BASE_ADDRESS_0 + 4] &= ~1; // the I/O BAR's type bit is not writable
  refused(ioBit, /read-only/);
  const intx = b.snapshot();
  intx[6] |= 0x08; // status INTx: the bus's, any value restores
  b.check(intx, 'cfg');
  assert.equal(b.read(PCI_BASE_ADDRESS_0 + 4, 4), 0xc041, 'check changes nothing');
});

test('a 64-bit memory BAR takes two slots, sizes across both and reports the full address', () => {
  const c = new PciConfig({
    vendor: 0x8086,
    device: 0x5845,
    revision: 2,
    classCode: 0x0108,
    bars: [{ index: 0, kind: 'mem64', size: 0x4000 }, { index: 2, kind: 'mem64', size: 2 ** 34, prefetchable: true }],
  });
  assert.equal(c.read(0x10, 4), 0x00000004);
  for (let r = 0x10; r < 0x28; r += 4) c.write(r, 4, 0xffffffff);
  assert.equal(c.read(0x10, 4), 0xffffc004);
  assert.equal(c.read(0x14, 4), 0xffffffff, 'upper half: all address bits');
  assert.equal(c.read(0x18, 4), 0x0000000c, '16 GiB: no writable low address bits');
  assert.equal(c.read(0x1c, 4), 0xfffffffc);
  assert.equal(c.read(0x20, 4), 0, 'slot 4 unimplemented');
  c.write(0x10, 4, 0xfebf4000);
  c.write(0x14, 4, 0x00000008);
  assert.equal(c.barAddress(0), 0x8febf4000);
  assert.equal(c.bars[1], null, 'the upper half is not a BAR of its own');
  assert.throws(
    () => new PciConfig({ vendor: 1, device: 1, revision: 0, classCode: 0, bars: [{ index: 5, kind: 'mem64', size: 16 }] }),
    RangeError,
  );
  assert.throws(
    () =>
      new PciConfig({
        vendor: 1,
        device: 1,
        revision: 0,
        classCode: 0,
        bars: [{ index: 0, kind: 'mem64', size: 16 }, { index: 1, kind: 'io', size: 4 }],
      }),
    RangeError,
  );
});
