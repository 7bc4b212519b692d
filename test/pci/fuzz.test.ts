/**
 * Random config reads and writes of every size at every offset (0-259, past
 * the end too) to every devfn of the PC platform, through both doors (PCI_CONFIG
 * and CF8/CFC). Nothing may throw, read-only identity bytes never change, and
 * every region on the buses stays claimed with the host exactly once.
 * Deterministic: the suite's seeded PRNG (test/helpers/prng.ts), no clocks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { AccessSize } from '../../src/core/io.ts';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { testBoard, range } from '../helpers/board.ts';
import { prngU32 } from '../helpers/prng.ts';


const SIZES: AccessSize[] = [1, 2, 4];
/** Identity bytes that no write may change: IDs, revision/class, header type low bits, subsystem, pin. */
const ID_BYTES = [0, 1, 2, 3, 8, 9, 10, 11, 0x2c, 0x2d, 0x2e, 0x2f, 0x3d];

for (const seed of [1, 0xdecafbad, 12345]) {
  test(`config fuzz (seed ${seed >>> 0}): never throws, IDs intact, claims consistent`, () => {
    const { board, host } = testBoard();
    const unplugs: number[] = [];
    installPcPlatform(board, {
      ide: {
        bmdmaHandler: { read: () => 0, write: () => {} },
        channels: [
          { cmd: { read: () => 0, write: () => {} }, ctl: { read: () => 0, write: () => {} } },
          { cmd: { read: () => 0, write: () => {} }, ctl: { read: () => 0, write: () => {} } },
        ],
        setBusMaster: () => {},
      },
      onUnplug: (m) => void unplugs.push(m),
      log: pino({ level: 'silent' }),
    });
    const rnd = prngU32(seed);
    const devfns = [0, 8, 9, 10, 11, 16, 24, 255];
    const before = new Map<number, number[]>();
    for (const d of devfns) before.set(d, ID_BYTES.map((r) => board.pci.configRead(d, r, 1)));
    const headerLow = new Map(devfns.map((d) => [d, board.pci.configRead(d, 0x0e, 1) & 0x7f]));

    for (let i = 0; i < 20000; i++) {
      const d = devfns[rnd() % devfns.length];
      const size = SIZES[rnd() % 3];
      const reg = rnd() % 260;
      // Bias values towards the interesting ones: all ones (sizing), zero, enable bits, random.
      const pick = rnd() % 4;
      const value = pick === 0 ? 0xffffffff : pick === 1 ? 0 : pick === 2 ? 0x07 : rnd();
      const v = size === 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1);
      const viaPorts = rnd() & 1;
      if (rnd() & 1) {
        if (viaPorts) {
          board.pio.write(0xcf8, 4, (0x80000000 | (d << 8) | (reg & 0xfc)) >>> 0);
          const r = board.pio.read(0xcfc + (reg & 3), size);
          assert.ok(r >= 0 && r <= 0xffffffff);
        } else {
          const r = board.pci.configRead(d, reg, size);
          assert.ok(r >= 0 && r <= 0xffffffff && Number.isInteger(r));
        }
      } else if (viaPorts) {
        board.pio.write(0xcf8, 4, (0x80000000 | (d << 8) | (reg & 0xfc)) >>> 0);
        board.pio.write(0xcfc + (reg & 3), size, v);
      } else {
        board.pci.configWrite(d, reg, size, v);
      }
    }

    for (const d of devfns) {
      assert.deepEqual(ID_BYTES.map((r) => board.pci.configRead(d, r, 1)), before.get(d), `devfn ${d} IDs`);
      assert.equal(board.pci.configRead(d, 0x0e, 1) & 0x7f, headerLow.get(d));
    }
    const onBus = new Set([
      ...board.pio.list().map((r) => range('pio', r.start, r.start + r.length - 1)),
      ...board.mmio.list().map((r) => range('mmio', r.start, r.start + r.length - 1)),
    ]);
    assert.deepEqual([...host.ranges].sort(), [...onBus].sort(), 'claims match the buses');
    assert.deepEqual(host.shutdowns, [], 'config writes alone never shut down');
    assert.deepEqual(unplugs, []);
  });
}

test('chipset port fuzz: APM, PM1a_CNT, GPE0, CONFADD/CONFDATA, Xen platform ports never throw', () => {
  const { board, host } = testBoard();
  const pc = installPcPlatform(board, { log: pino({ level: 'silent' }) });
  const rnd = prngU32(0x5eed);
  board.pci.configWrite(0x0b, 0x40, 4, 0xb001);
  board.pci.configWrite(0x0b, 0x80, 1, 1);
  const ports = [0x10, 0x11, 0x12, 0x13, 0x1f, 0x92, 0xb2, 0xb3, 0xb004, 0xb005, 0xafe0, 0xafe2, 0xcf8, 0xcf9, 0xcfa, 0xcfc, 0xcfd, 0xcff];
  for (let i = 0; i < 20000; i++) {
    const port = ports[rnd() % ports.length];
    const size = SIZES[rnd() % 3];
    if (rnd() & 1) {
      const v = board.pio.read(port, size);
      assert.ok(v >= 0 && v <= 0xffffffff && Number.isInteger(v), `read 0x${port.toString(16)}/${size}`);
    } else {
      board.pio.write(port, size, size === 4 ? rnd() : rnd() & ((1 << (8 * size)) - 1));
    }
  }
  assert.equal(board.pci.configRead(0x08, 0, 4), 0x70008086);
  assert.ok(pc.xenPlatform!.pendingLog().length < 4096, 'log line buffer stays bounded');
  const onBus = new Set([
    ...board.pio.list().map((r) => range('pio', r.start, r.start + r.length - 1)),
    ...board.mmio.list().map((r) => range('mmio', r.start, r.start + r.length - 1)),
  ]);
  assert.deepEqual([...host.ranges].sort(), [...onBus].sort(), 'claims match the buses');
  assert.ok(host.shutdowns.length > 0, 'the fuzz did reach the reset and sleep bits');
});
