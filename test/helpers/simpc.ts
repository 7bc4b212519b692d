// A whole xenfv PC (buildPc from a libxl-style argv) on the simulated
// hypervisor, with its ioreq server running: for tests that drive the machine
// through port I/O as a guest would. Everything is torn down after the test.
import { pino } from 'pino';
import { createSimHost, simBoard, type SimHost } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { buildPc, type Pc } from '../../src/machine/pc.ts';
import { parseArgs } from '../../src/cli/index.ts';

export async function simPc(
  t: { after(fn: () => void): void },
  ramMiB: number,
  extraArgs: string[] = [],
): Promise<{ sim: SimHost; pc: Pc }> {
  const { config } = await parseArgs(['-xen-domid', '1', '-machine', 'xenfv', '-m', String(ramMiB), '--sim', ...extraArgs]);
  const sim = createSimHost({ ramBytes: ramMiB << 20 });
  const board = simBoard(sim);
  const pc = await buildPc(board, config, pino({ level: 'silent' }));
  t.after(() => pc.close());
  const server = new IoreqServer(sim, board, pino({ level: 'silent' }));
  server.start();
  sim.channel.setEnabled(true);
  t.after(() => server.stop());
  return { sim, pc };
}
