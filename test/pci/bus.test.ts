import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { IoHandler } from '../../src/core/io.ts';
import { PciBus, type PciFunction, type PciSlotContext } from '../../src/pci/bus.ts';
import { PciConfig, PCI_BASE_ADDRESS_0, PCI_COMMAND, PCI_HEADER_TYPE, PCI_STATUS } from '../../src/pci/config.ts';
import { Cf8, devfn, testBoard, range } from '../helpers/board.ts';

const silent = pino({ level: 'silent' });
const BAR0 = PCI_BASE_ADDRESS_0;
const BAR1 = PCI_BASE_ADDRESS_0 + 4;

class TestFn implements PciFunction {
  readonly config: PciConfig;
  ctx: PciSlotContext | null = null;
  commands: [number, number][] = [];
  readonly io: IoHandler = { read: (off) => 0xa0 + off, write: () => {} };
  readonly mem: IoHandler = { read: () => 0x55, write: () => {} };
  constructor(readonly name: string, pin = 1) {
    this.config = new PciConfig({
      vendor: 0x1234,
      device: 0x5678,
      revision: 1,
      classCode: 0x0200,
      pin,
      bars: [
        { index: 0, kind: 'io', size: 0x20 },
        { index: 1, kind: 'mem', size: 0x1000 },
      ],
    });
  }
  barHandler(i: number): IoHandler | null {
    return i === 0 ? this.io : i === 1 ? this.mem : null;
  }
  attach(ctx: PciSlotContext): void {
    this.ctx = ctx;
  }
  commandChanged(cmd: number, old: number): void {
    this.commands.push([cmd, old]);
  }
}

function setup() {
  const { board, host } = testBoard();
  const bus = new PciBus(board, silent);
  board.pci = bus;
  bus.installConfigPorts();
  return { board, host, bus, cf8: new Cf8(board) };
}

test('absent functions read all ones and swallow writes; reg >= 256 reads all ones', () => {
  const { bus, host } = setup();
  const f = new TestFn('nic');
  bus.add(3, 0, f);
  assert.ok(host.pcidevs.has('3.0'), 'adding a function claims it with Xen');
  assert.equal(bus.configRead(devfn(4, 0), 0, 4), 0xffffffff);
  assert.equal(bus.configRead(devfn(3, 1), 0, 2), 0xffff);
  assert.equal(bus.configRead(devfn(3, 1), 0, 1), 0xff);
  bus.configWrite(devfn(4, 0), PCI_COMMAND, 2, 3); // nothing there: no effect, no throw
  assert.equal(bus.configRead(devfn(3, 0), 0, 4), 0x56781234);
  assert.equal(bus.configRead(devfn(3, 0), 0x100, 4), 0xffffffff);
  assert.equal(bus.configRead(devfn(3, 0), 0xffc, 2), 0xffff);
  bus.configWrite(devfn(3, 0), 0x104, 4, 0xffffffff);
  assert.throws(() => bus.add(3, 0, new TestFn('dup')), /taken/);
});

test('multi-function bit on function 0 follows the presence of functions 1-7', () => {
  const { bus } = setup();
  bus.add(1, 0, new TestFn('f0'));
  assert.equal(bus.configRead(devfn(1, 0), PCI_HEADER_TYPE, 1), 0x00);
  bus.add(1, 3, new TestFn('f3'));
  assert.equal(bus.configRead(devfn(1, 0), PCI_HEADER_TYPE, 1), 0x80);
  assert.equal(bus.configRead(devfn(1, 3), PCI_HEADER_TYPE, 1), 0x00);
  bus.remove(1, 3);
  assert.equal(bus.configRead(devfn(1, 0), PCI_HEADER_TYPE, 1), 0x00);
});

test('CF8/CFC: enable bit, byte lanes, other buses, latch read-back', () => {
  const { board, bus } = setup();
  bus.add(3, 0, new TestFn('nic'));
  const a = (0x80000000 | (3 << 11)) >>> 0;
  board.pio.write(0xcf8, 4, a);
  assert.equal(board.pio.read(0xcf8, 4), a);
  assert.equal(board.pio.read(0xcfc, 4), 0x56781234);
  assert.equal(board.pio.read(0xcfc, 2), 0x1234);
  assert.equal(board.pio.read(0xcfe, 2), 0x5678);
  assert.equal(board.pio.read(0xcfd, 1), 0x12);
  assert.equal(board.pio.read(0xcff, 1), 0x56);
  assert.equal(board.pio.read(0xcfd, 2), 0x7812); // word at lane 1
  // Register selects the dword; low CF8 bits are reserved and read back 0.
  board.pio.write(0xcf8, 4, (a | 0x3c | 0x3) >>> 0);
  assert.equal(board.pio.read(0xcf8, 4), (a | 0x3c) >>> 0);
  board.pio.write(0xcfd, 1, 0x01); // interrupt pin byte is read-only
  board.pio.write(0xcfc, 1, 0x0a); // interrupt line at lane 0
  assert.equal(board.pio.read(0xcfc, 4), 0x0000010a);
  // Enable bit clear: data port floats, writes vanish.
  board.pio.write(0xcf8, 4, (3 << 11) | 0x3c);
  assert.equal(board.pio.read(0xcfc, 4), 0xffffffff);
  board.pio.write(0xcfc, 1, 0x0b);
  assert.equal(bus.configRead(devfn(3, 0), 0x3c, 1), 0x0a);
  // Bus 1 does not exist.
  board.pio.write(0xcf8, 4, 0x80010000 | (3 << 11));
  assert.equal(board.pio.read(0xcfc, 4), 0xffffffff);
  // Byte/word accesses to CF8 are not CONFADD (Linux's pci_check_type1 writes 0xCFB).
  board.pio.write(0xcf8, 4, a);
  board.pio.write(0xcfb, 1, 0x01);
  board.pio.write(0xcf8, 2, 0);
  assert.equal(board.pio.read(0xcf8, 4), a);
  assert.equal(board.pio.read(0xcf8, 2), 0xffff);
});

test('0xCF9 byte goes to the reset control hook, not CONFADD', () => {
  const { board, bus } = setup();
  const seen: number[] = [];
  bus.setResetControl({ read: () => 0x02, write: (_o, _s, v) => void seen.push(v) });
  board.pio.write(0xcf8, 4, 0x80000000);
  board.pio.write(0xcf9, 1, 0x06);
  assert.deepEqual(seen, [0x06]);
  assert.equal(board.pio.read(0xcf9, 1), 0x02);
  assert.equal(board.pio.read(0xcf8, 4), 0x80000000);
});

test('BARs are decoded only with the command enable bit and a valid address', () => {
  const { board, host, bus, cf8 } = setup();
  const f = new TestFn('nic');
  bus.add(3, 0, f);
  cf8.write(3, 0, BAR0, 4, 0xc000);
  cf8.write(3, 0, BAR1, 4, 0xfebf0000);
  assert.ok(!host.ranges.has(range('pio', 0xc000, 0xc01f)), 'no decode before the command bit');
  cf8.write(3, 0, PCI_COMMAND, 2, 0x0001);
  assert.ok(host.ranges.has(range('pio', 0xc000, 0xc01f)));
  assert.ok(!host.ranges.has(range('mmio', 0xfebf0000, 0xfebf0fff)));
  assert.equal(board.pio.read(0xc005, 1), 0xa5);
  cf8.write(3, 0, PCI_COMMAND, 2, 0x0003);
  assert.ok(host.ranges.has(range('mmio', 0xfebf0000, 0xfebf0fff)));
  assert.equal(board.mmio.read(0xfebf0010, 4), 0x55);
  cf8.write(3, 0, PCI_COMMAND, 2, 0x0002);
  assert.ok(!host.ranges.has(range('pio', 0xc000, 0xc01f)), 'I/O decode off releases the range');
  assert.equal(board.pio.read(0xc005, 1), 0xff);
  assert.deepEqual(f.commands.map((c) => c[0]), [1, 3, 2]);
});

test('moving a BAR releases the old range and claims the new one', () => {
  const { host, bus, cf8 } = setup();
  bus.add(3, 0, new TestFn('nic'));
  cf8.write(3, 0, BAR0, 4, 0xc000);
  cf8.write(3, 0, PCI_COMMAND, 2, 0x0001);
  host.rangeLog.length = 0;
  cf8.write(3, 0, BAR0, 4, 0xc100);
  assert.deepEqual(host.rangeLog, ['-pio:0xc000-0xc01f', '+pio:0xc100-0xc11f']);
  // Sizing with decode on (some BIOSes do): all ones is not an address, the BAR goes away...
  host.rangeLog.length = 0;
  cf8.write(3, 0, BAR0, 4, 0xffffffff);
  assert.equal(cf8.read(3, 0, BAR0, 4), 0xffffffe1);
  assert.deepEqual(host.rangeLog, ['-pio:0xc100-0xc11f']);
  // ...and comes back when the address is restored.
  cf8.write(3, 0, BAR0, 4, 0xc100);
  assert.deepEqual(host.rangeLog, ['-pio:0xc100-0xc11f', '+pio:0xc100-0xc11f']);
  // Writing the same address again is not a move.
  host.rangeLog.length = 0;
  cf8.write(3, 0, BAR0, 4, 0xc100);
  assert.deepEqual(host.rangeLog, []);
  // Address 0 is "unprogrammed".
  cf8.write(3, 0, BAR0, 4, 0);
  assert.deepEqual(host.rangeLog, ['-pio:0xc100-0xc11f']);
});

test('a BAR overlapping another region stays unmapped without throwing, and maps once the space is free', () => {
  const { board, host, bus, cf8 } = setup();
  const a = new TestFn('a');
  const b = new TestFn('b');
  bus.add(3, 0, a);
  bus.add(4, 0, b);
  cf8.write(3, 0, BAR0, 4, 0xc000);
  cf8.write(3, 0, PCI_COMMAND, 2, 1);
  cf8.write(4, 0, BAR0, 4, 0xc000);
  assert.doesNotThrow(() => cf8.write(4, 0, PCI_COMMAND, 2, 1));
  assert.equal(bus.mappedRegions(4, 0)[0], null);
  assert.equal(board.pio.read(0xc000, 1), 0xa0); // still a's
  // The config-port range is taken too: a BAR there is refused the same way.
  cf8.write(3, 0, BAR0, 4, 0xcf0);
  assert.equal(bus.mappedRegions(3, 0)[0], null);
  // a moved away from 0xc000: b's pending BAR maps now.
  assert.ok(bus.mappedRegions(4, 0)[0] !== null);
  assert.ok(host.ranges.has(range('pio', 0xc000, 0xc01f)));
  assert.equal(board.pio.read(0xcf8, 4), (0x80000000 | (3 << 11) | BAR0) >>> 0);
});

test('INTx: pin routing, status bit 3, INTx disable', () => {
  const { host, bus, cf8 } = setup();
  const f = new TestFn('nic', 2); // INTB
  bus.add(5, 0, f);
  f.ctx!.intx.set(true);
  assert.equal(host.intx.get('5:1'), 1);
  assert.equal(cf8.read(5, 0, PCI_STATUS, 2) & 0x0008, 0x0008);
  cf8.write(5, 0, PCI_COMMAND, 2, 0x0400); // INTx disable masks the line, status still shows it
  assert.equal(host.intx.get('5:1'), 0);
  assert.equal(cf8.read(5, 0, PCI_STATUS, 2) & 0x0008, 0x0008);
  cf8.write(5, 0, PCI_COMMAND, 2, 0);
  assert.equal(host.intx.get('5:1'), 1);
  f.ctx!.intx.set(false);
  assert.equal(host.intx.get('5:1'), 0);
  assert.equal(cf8.read(5, 0, PCI_STATUS, 2) & 0x0008, 0);
  // Status bit 3 is read-only to the guest.
  f.ctx!.intx.set(true);
  cf8.write(5, 0, PCI_STATUS, 2, 0xffff);
  assert.equal(cf8.read(5, 0, PCI_STATUS, 2) & 0x0008, 0x0008);
});

test('remove releases BARs and the function claim', () => {
  const { host, bus, cf8 } = setup();
  bus.add(3, 0, new TestFn('nic'));
  cf8.write(3, 0, BAR0, 4, 0xc000);
  cf8.write(3, 0, BAR1, 4, 0xfebf0000);
  cf8.write(3, 0, PCI_COMMAND, 2, 3);
  assert.equal(host.ranges.size, 4); // two config port ranges + two BARs
  bus.remove(3, 0);
  assert.equal(host.ranges.size, 2);
  assert.ok(!host.pcidevs.has('3.0'));
  assert.equal(bus.configRead(devfn(3, 0), 0, 4), 0xffffffff);
  assert.equal(bus.freeDevice(3), 3);
});

test('barMoved tells the function where each BAR decodes, including BARs without a handler', () => {
  const { host, bus, cf8 } = setup();
  const moves: string[] = [];
  class Vga extends TestFn {
    override barHandler(i: number) {
      return i === 0 ? this.io : null; // BAR1 is "VRAM": the device maps it itself
    }
    barMoved(i: number, base: number) {
      moves.push(`${i}@${base.toString(16)}`);
    }
  }
  const other = new TestFn('other');
  bus.add(4, 0, other);
  cf8.write(4, 0, BAR0, 4, 0xc000);
  cf8.write(4, 0, PCI_COMMAND, 2, 1);
  bus.add(3, 0, new Vga('vga'));
  cf8.write(3, 0, BAR1, 4, 0xf0000000);
  cf8.write(3, 0, BAR0, 4, 0xc000); // collides with 'other'
  cf8.write(3, 0, PCI_COMMAND, 2, 3);
  assert.deepEqual(moves, ['1@f0000000'], 'BAR0 is not reported while it cannot decode');
  assert.ok(!host.ranges.has(range('mmio', 0xf0000000, 0xf0000fff)), 'a handler-less BAR is not claimed by the bus');
  cf8.write(4, 0, PCI_COMMAND, 2, 0); // the other device lets go of 0xc000
  assert.deepEqual(moves, ['1@f0000000', '0@c000']);
  cf8.write(3, 0, BAR1, 4, 0xe0000000);
  cf8.write(3, 0, PCI_COMMAND, 2, 0);
  assert.deepEqual(moves, ['1@f0000000', '0@c000', '1@e0000000', '0@-1', '1@-1'], 'a move is reported once, decode off reports -1');
});

test('a 64-bit BAR maps above 4 GiB, and not while half programmed to the sizing pattern', () => {
  const { host, bus, cf8 } = setup();
  const f: PciFunction = {
    name: 'nvme',
    config: new PciConfig({ vendor: 0x8086, device: 0x5845, revision: 2, classCode: 0x0108, bars: [{ index: 0, kind: 'mem64', size: 0x4000 }] }),
    barHandler: () => ({ read: () => 0, write: () => {} }),
  };
  bus.add(6, 0, f);
  cf8.write(6, 0, PCI_COMMAND, 2, 0x0002);
  cf8.write(6, 0, BAR0, 4, 0xffffffff);
  cf8.write(6, 0, BAR1, 4, 0xffffffff);
  assert.equal(host.ranges.size, 2, 'only the config ports: sizing is not an address');
  cf8.write(6, 0, BAR0, 4, 0xe0000000); // low half first: still above the limit
  assert.equal(host.ranges.size, 2);
  cf8.write(6, 0, BAR1, 4, 0x00000008);
  assert.ok(host.ranges.has(range('mmio', 0x8e0000000, 0x8e0003fff)));
  cf8.write(6, 0, BAR1, 4, 0);
  assert.ok(!host.ranges.has(range('mmio', 0x8e0000000, 0x8e0003fff)));
  assert.ok(host.ranges.has(range('mmio', 0xe0000000, 0xe0003fff)), 'high half 0: below 4 GiB');
});
