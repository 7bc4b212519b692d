/**
 * QEMU's 16550A CVE replayed against our UART (docs/cve.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RingBackend } from '../../../src/chardev/index.ts';
import { installUart, LSR_THRE } from '../../../src/devices/uart/index.ts';
import { createSimHost, simBoard, simClock } from '../../../src/sim/index.ts';

const COM1 = 0x3f8;
const LCR_DLAB = 0x80;

test('CVE-2016-8669: divisor latch 0 or above the baud base divides nothing by zero; the port keeps transmitting', () => {
  // QEMU's serial_update_parameters divided by the guest's divisor (0, or larger than the baud base).
  const sim = createSimHost({ ramBytes: 1 << 20 });
  const board = simBoard(sim);
  const backend = new RingBackend('serial0', pino({ level: 'silent' }));
  installUart(board, 0, backend);
  const clock = simClock(sim);
  let sent = 0;
  for (const div of [0, 1, 0xffff, 0x8000, 0]) {
    board.pio.write(COM1 + 3, 1, LCR_DLAB | 0x03);
    board.pio.write(COM1 + 0, 1, div & 0xff);
    board.pio.write(COM1 + 1, 1, div >> 8);
    board.pio.write(COM1 + 3, 1, 0x03);
    for (let i = 0; i < 20; i++) {
      board.pio.write(COM1, 1, 0x41 + (i % 26));
      sent++;
      clock.advance(10);
    }
    clock.advance(1000);
    assert.equal(board.pio.read(COM1 + 5, 1) & LSR_THRE, LSR_THRE, `divisor ${div}: THR empties again`);
  }
  assert.equal(backend.total, sent, 'every byte reached the backend');
});
