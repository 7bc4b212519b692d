/**
 * The PS/2 mouse on the i8042's aux port against QEMU's (hw/input/ps2.c
 * behind hw/input/pckbd.c), byte by byte: the same commands through 0x64/0x60
 * and the same pointer input (QMP input-send-event there, I8042.moveMouse
 * here), then every (status, data) pair the guest would read, compared.
 *
 * QEMU refuses input-send-event while the VM is stopped ("VM not running"),
 * so it runs here, on a 64 KiB BIOS that is only `cli; hlt` at the reset
 * vector: the CPU never touches the controller, so every byte read is ours.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { BTN_EXTRA, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, BTN_SIDE, I8042 } from '../../src/devices/i8042/index.ts';
import { connectQmpRetry, type QmpClient } from '../helpers/qmp-client.ts';
import { Qtest } from './qtest.ts';

interface Move {
  dx: number;
  dy: number;
  /** Wheel detents, positive = towards the user (QEMU's wheel-down). */
  dz: number;
  buttons: number;
}

/** One side of the comparison: port I/O plus pointer input. */
interface Side {
  out(port: number, v: number): Promise<void>;
  in(port: number): Promise<number>;
  move(m: Move): Promise<void>;
}

const BUTTON_NAMES: [number, string][] = [
  [BTN_LEFT, 'left'],
  [BTN_RIGHT, 'right'],
  [BTN_MIDDLE, 'middle'],
  [BTN_SIDE, 'side'],
  [BTN_EXTRA, 'extra'],
];

function qemuSide(q: Qtest, qmp: QmpClient): Side {
  let held = 0;
  return {
    out: (port, v) => q.out(1, port, v),
    in: (port) => q.in(1, port),
    async move(m) {
      const events: object[] = [];
      if (m.dx) events.push({ type: 'rel', data: { axis: 'x', value: m.dx } });
      if (m.dy) events.push({ type: 'rel', data: { axis: 'y', value: m.dy } });
      for (const [bit, button] of BUTTON_NAMES) if ((held ^ m.buttons) & bit) events.push({ type: 'btn', data: { down: (m.buttons & bit) !== 0, button } });
      held = m.buttons;
      for (let i = 0; i < Math.abs(m.dz); i++) {
        const button = m.dz > 0 ? 'wheel-down' : 'wheel-up';
        events.push({ type: 'btn', data: { down: true, button } }, { type: 'btn', data: { down: false, button } });
      }
      const r = await qmp.cmd('input-send-event', { events });
      assert.ok('return' in r, `input-send-event: ${JSON.stringify(r)}`);
    },
  };
}

function ourSide(dev: I8042): Side {
  return {
    out: async (port, v) => (port === 0x64 ? dev.cmdPort : dev.dataPort).write(0, 1, v),
    in: async (port) => (port === 0x64 ? dev.cmdPort : dev.dataPort).read(0, 1),
    move: async (m) => dev.moveMouse(m.dx, m.dy, m.dz, m.buttons),
  };
}

/** A guest session: every byte it reads, as `status:data` pairs (status says kbd or aux). */
async function session(s: Side): Promise<string[]> {
  const log: string[] = [];
  const drain = async (what: string): Promise<void> => {
    const got: string[] = [];
    for (let i = 0; i < 64; i++) {
      // Bit 3 (last write was a command) is masked: QEMU leaves it set after data writes,
      // the IBM reference (and our controller) clear it; the mouse is what is compared here.
      const st = (await s.in(0x64)) & ~0x08;
      if ((st & 1) === 0) break;
      got.push(`${st.toString(16)}:${(await s.in(0x60)).toString(16)}`);
    }
    log.push(`${what} -> ${got.join(' ')}`);
  };
  const aux = async (...bytes: number[]): Promise<void> => {
    for (const b of bytes) {
      await s.out(0x64, 0xd4);
      await s.out(0x60, b);
    }
    await drain(`aux ${bytes.map((b) => b.toString(16)).join(' ')}`);
  };
  const move = async (m: Partial<Move>): Promise<void> => {
    await s.move({ dx: 0, dy: 0, dz: 0, buttons: 0, ...m });
    await drain(`move ${JSON.stringify(m)}`);
  };

  await aux(0xff); // reset: ACK, BAT OK, ID 0
  await aux(0xf2);
  await move({ dx: 10 }); // reporting off: nothing
  await aux(0xf4);
  await move({ dx: 5, dy: 3 });
  await move({ dx: -300, dy: -200, buttons: BTN_LEFT }); // split into several packets, signs set
  await move({ buttons: BTN_RIGHT | BTN_MIDDLE }); // buttons alone still send a packet
  await move({ dz: 2 }); // a 3-byte mouse has no wheel
  await aux(0xe9); // status
  // Linux psmouse: IntelliMouse knock, then GET_ID.
  await aux(0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf2);
  await move({ dx: 1, dz: -1 });
  await move({ dz: 200 });
  // IntelliMouse Explorer knock.
  await aux(0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf2);
  await move({ dx: -1, dy: 1, dz: 9, buttons: BTN_SIDE | BTN_EXTRA });
  await move({ dz: -3 });
  // Remote mode: movement waits for READ DATA.
  await aux(0xf0);
  await move({ dx: 7, dy: -7, buttons: BTN_LEFT });
  await aux(0xeb);
  await aux(0xeb);
  await aux(0xea, 0xf5);
  await move({ dx: 3 }); // disabled again: nothing
  await aux(0xf6, 0xf2, 0xe9); // defaults keep the wheel ID
  await aux(0xff, 0xf2); // reset forgets it
  return log;
}

test('PS/2 mouse: commands, IntelliMouse knocks, stream and remote packets match QEMU byte for byte', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-ps2-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bios = Buffer.alloc(65536, 0xf4);
  bios.set([0xfa, 0xf4, 0xeb, 0xfd], 0xfff0); // cli; hlt; jmp back to the hlt
  fs.writeFileSync(path.join(dir, 'hlt.bin'), bios);
  const sock = path.join(dir, 'qmp.sock');
  const q = await Qtest.start(['-bios', path.join(dir, 'hlt.bin'), '-qmp', `unix:${sock},server=on,wait=off`], 60_000, true);
  t.after(() => q.close());
  const qmp = await connectQmpRetry(sock);
  assert.ok(qmp, 'QEMU QMP socket');
  t.after(() => qmp.close());
  await qmp.cmd('qmp_capabilities');

  const theirs = await session(qemuSide(q, qmp));
  const ours = await session(ourSide(new I8042({ set: () => {} }, { set: () => {} }, () => {}, pino({ level: 'silent' }))));
  assert.deepEqual(ours, theirs);
  // The comparison means something only if packets were produced at all.
  assert.ok(theirs.some((l) => l.startsWith('move {"dx":-300') && l.split(' ').length > 8), theirs.join('\n'));
});
