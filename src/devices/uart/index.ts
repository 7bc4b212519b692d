/** PC serial ports: COM1..COM4 at their ISA addresses. */
import type { Board } from '../../core/board.ts';
import type { CharBackend } from '../../chardev/types.ts';
import { Uart16550, UART_REGS } from './uart.ts';

export * from './uart.ts';

/**
 * COM1 and COM2: base port and ISA IRQ. COM3/COM4 would share IRQ 4/3 with
 * them, and one ISA line cannot be driven by two level sources here, so they
 * are not offered.
 */
export const COM_PORTS = [
  { base: 0x3f8, irq: 4 },
  { base: 0x2f8, irq: 3 },
] as const;

/** Put a UART for COM<index+1> on the board, wired to `backend`. */
export function installUart(board: Board, index: number, backend: CharBackend): Uart16550 {
  const port = COM_PORTS[index];
  if (!port) throw new RangeError(`only ${COM_PORTS.length} serial ports (COM1, COM2) exist`);
  const uart = new Uart16550(index, board.isaIrq(port.irq), backend, board.clock);
  board.pio.add(`com${index + 1}`, port.base, UART_REGS, uart);
  return uart;
}
