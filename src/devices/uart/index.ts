/** PC serial ports: COM1..COM4 at their ISA addresses. */
import type { Board } from '../../core/board.ts';
import type { IrqLine } from '../../core/irq.ts';
import type { CharBackend } from '../../chardev/types.ts';
import { Uart16550, UART_REGS } from './uart.ts';

export * from './uart.ts';

/**
 * COM1-COM4: base port and ISA IRQ, the PC's (and QEMU's isa-serial) defaults.
 * COM3 shares IRQ 4 with COM1 and COM4 IRQ 3 with COM2 (sharedIsaIrq).
 */
export const COM_PORTS = [
  { base: 0x3f8, irq: 4 },
  { base: 0x2f8, irq: 3 },
  { base: 0x3e8, irq: 4 },
  { base: 0x2e8, irq: 3 },
] as const;

/** Per board and ISA IRQ: which of the UARTs sharing it raise it now (one bit each). */
const shared = new WeakMap<Board, Map<number, { raised: number; sources: number }>>();

/**
 * One source's view of an ISA line that two UARTs share: the line is the OR
 * of their levels. Board.isaIrq hands every caller the same line with one
 * level, so without this the UART that lowered its interrupt last would
 * clear one the other still holds (a lost COM1 interrupt while COM3 idles).
 */
function sharedIsaIrq(board: Board, irq: number): IrqLine {
  let byIrq = shared.get(board);
  if (byIrq === undefined) shared.set(board, (byIrq = new Map()));
  let s = byIrq.get(irq);
  if (s === undefined) byIrq.set(irq, (s = { raised: 0, sources: 0 }));
  const st = s;
  const bit = 1 << st.sources++;
  const line = board.isaIrq(irq);
  return {
    set: (on: boolean) => {
      st.raised = on ? st.raised | bit : st.raised & ~bit;
      line.set(st.raised !== 0);
    },
  };
}

/** Put a UART for COM<index+1> on the board, wired to `backend`. */
export function installUart(board: Board, index: number, backend: CharBackend): Uart16550 {
  const port = COM_PORTS[index];
  if (!port) throw new RangeError(`only ${COM_PORTS.length} serial ports (COM1-COM4) exist`);
  const uart = new Uart16550(index, sharedIsaIrq(board, port.irq), backend, board.clock);
  board.pio.add(`com${index + 1}`, port.base, UART_REGS, uart);
  return uart;
}
