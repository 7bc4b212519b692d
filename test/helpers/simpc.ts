// A whole xenfv PC (buildPc from a libxl-style argv) on the simulated
// hypervisor, with its ioreq server running: for tests that drive the machine
// through port I/O as a guest would. Every -serial gets an in-memory ring
// backend (whatever the argv names), so the UARTs exist and their output can
// be read. Everything is torn down after the test.
import { pino } from 'pino';
import { createSimHost, simBoard, type SimHost } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { buildPc, type Pc } from '../../src/machine/pc.ts';
import { parseArgs } from '../../src/cli/index.ts';
import { RingBackend } from '../../src/chardev/backends.ts';

export interface SimPc {
  sim: SimHost;
  pc: Pc;
  serials: RingBackend[];
  server: IoreqServer;
}

export async function simPc(
  t: { after(fn: () => void | Promise<void>): void },
  ramMiB: number,
  extraArgs: string[] = [],
  opts: { enable?: boolean } = {},
): Promise<SimPc> {
  const { config } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', String(ramMiB), '--sim', ...extraArgs]);
  const sim = createSimHost({ ramBytes: ramMiB << 20 });
  const board = simBoard(sim);
  const log = pino({ level: 'silent' });
  const serials = config.serials.map((s) => new RingBackend(s.id, log));
  const pc = await buildPc(board, config, log, serials);
  t.after(() => pc.close());
  const server = new IoreqServer(sim, board, log);
  server.start();
  // A restore must happen before the server runs: such tests pass enable: false and enable it themselves.
  if (opts.enable !== false) sim.channel.setEnabled(true);
  t.after(() => server.stop());
  return { sim, pc, serials, server };
}
