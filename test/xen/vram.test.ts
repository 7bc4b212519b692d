/**
 * src/xen/vram.ts against fake libraries: the calls QEMU's xen-hvm.c makes
 * for VRAM, in its order (docs/xen-contract.md §3.3): populate once past
 * the RAM block and map once; relocate under BAR0 and pin WB; on a move,
 * back home first; dirty bits from track_dirty_vram; a restored guest:
 * no populate, the pages mapped under the BAR when the bus reports it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { vramHomeGfn, XenVramProvider, type VramPlatform } from '../../src/xen/vram.ts';
import type { CtrlApi } from '../../src/xen/ffi.ts';

function fakes() {
  const calls: string[] = [];
  const memory = new Map<bigint, ArrayBuffer>();
  let nextPtr = 0x1000n;
  const ctrl: CtrlApi = {
    interface_open: () => 0x10n,
    interface_close: () => 0,
    domain_populate_physmap_exact: (_h, domid, nr, order, flags, gfns) => {
      calls.push(`populate dom${domid} ${nr} pages order ${order} flags ${flags} from 0x${gfns[0].toString(16)} to 0x${gfns[gfns.length - 1].toString(16)}`);
      return 0;
    },
  };
  const libs = {
    fmem: {
      map: (_h: bigint, dom: number, prot: number, pages: number, arr: BigUint64Array, err: Int32Array) => {
        calls.push(`map dom${dom} prot ${prot} ${pages} pages at 0x${arr[0].toString(16)}`);
        err.fill(0);
        const p = (nextPtr += 0x1000000n);
        memory.set(p, new ArrayBuffer(pages * 4096));
        return p;
      },
      unmap: (_h: bigint, p: bigint) => (calls.push(`unmap ${p === nextPtr ? 'the mapping' : '?'}`), 0),
    },
    view: (p: bigint) => memory.get(p)!,
    errno: () => 0,
  };
  let dirtyBits: bigint[] = [];
  let trackOk = true;
  const platform: VramPlatform = {
    relocateMemory: (n, src, dst) => (calls.push(`relocate ${n} 0x${src.toString(16)} -> 0x${dst.toString(16)}`), true),
    pinMemoryCacheattr: (s, e, t) => (calls.push(`pin 0x${s.toString(16)}-0x${e.toString(16)} type ${t}`), true),
    trackDirtyVram: (first, nr, bitmap) => {
      calls.push(`track 0x${first.toString(16)} ${nr}`);
      dirtyBits.forEach((b, i) => (bitmap![i] = b));
      return trackOk;
    },
  };
  const provider = new XenVramProvider({
    domid: 7,
    ramBytes: 512 << 20,
    lowMemLimit: 0xf0000000,
    libs: libs as never,
    fmemHandle: () => 0x20n,
    ctrl: () => ctrl,
    platform,
    log: pino({ level: 'silent' }),
  });
  return { calls, provider, setDirty: (b: bigint[]) => (dirtyBits = b), failTracking: () => (trackOk = false) };
}

test('VRAM home past the RAM block (QEMU xen.ram), 256 KiB aligned', () => {
  assert.equal(vramHomeGfn(512 << 20, 0xf0000000), 0x20000);
  assert.equal(vramHomeGfn((2032 << 20) + 4096, 0xf0000000), 0x7f040);
  assert.equal(vramHomeGfn(8 * 2 ** 30, 0xf0000000), (2 ** 32 + 8 * 2 ** 30 - 0xf0000000) / 4096);
});

test('populate + map once, relocate under BAR0 with WB, back home on a move, dirty bits from Xen', () => {
  const { calls, provider, setDirty } = fakes();
  const v = provider.allocateVram(16 << 20, false);
  assert.deepEqual(calls, ['populate dom7 4096 pages order 0 flags 0 from 0x20000 to 0x20fff', 'map dom7 prot 3 4096 pages at 0x20000']);
  assert.equal(v.bytes.length, 16 << 20);
  calls.length = 0;
  const d = new Uint8Array(4096);
  assert.equal(v.collectDirty(d), 0);
  assert.deepEqual(calls, [], 'at home the guest cannot write it: no tracking call');
  v.place(0xf0000000);
  assert.deepEqual(calls, ['relocate 4096 0x20000 -> 0xf0000', 'pin 0xf0000-0xf0fff type 6']);
  calls.length = 0;
  setDirty([0b101n, 0n, 1n << 63n]);
  assert.equal(v.collectDirty(d), 3);
  assert.deepEqual([...d.keys()].filter((i) => d[i]), [0, 2, 191]);
  // A still screen: Xen's bitmap is all zeros and nothing is marked (the renderer then skips its page walk).
  setDirty([]);
  d.fill(0);
  assert.equal(v.collectDirty(d), 0);
  assert.equal(d.indexOf(1), -1);
  calls.length = 0;
  v.place(0xe0000000);
  v.place(-1);
  assert.deepEqual(calls, [
    'relocate 4096 0xf0000 -> 0x20000',
    'relocate 4096 0x20000 -> 0xe0000',
    'pin 0xe0000-0xe0fff type 6',
    'relocate 4096 0xe0000 -> 0x20000',
  ]);
  v.close();
  assert.equal(calls.at(-1), 'unmap the mapping');
});

test('restored guest: no populate; the pages are mapped under the BAR when it is reported', () => {
  const { calls, provider } = fakes();
  const v = provider.allocateVram(1 << 20, true);
  assert.deepEqual(calls, []);
  let remapped: Uint8Array | null = null;
  v.onRemap = (b) => (remapped = b);
  v.place(0xf0000000);
  assert.deepEqual(calls, ['map dom7 prot 3 256 pages at 0xf0000']);
  assert.ok(remapped !== null && (remapped as Uint8Array).length === 1 << 20);
});

test('track_dirty_vram failing says -1 (the VGA then redraws everything), not a still screen', () => {
  const { provider, setDirty, failTracking } = fakes();
  const v = provider.allocateVram(1 << 20, false);
  v.place(0xf0000000);
  setDirty([1n]);
  failTracking();
  assert.equal(v.collectDirty(new Uint8Array(256)), -1);
});
