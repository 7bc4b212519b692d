/**
 * `npm run demo`: the whole device model in one process against the
 * simulated hypervisor. A tiny "guest" probes COM1 the way Linux's 8250
 * driver does (scratch, IER, loopback), programs 115200 8N1 with FIFOs, and
 * prints a greeting by polling LSR, every access an ioreq through the
 * IoreqServer. It then asks for the run state over QMP and stops.
 * Exit 0 when the UART backend received exactly the greeting.
 */
import { pino } from 'pino';
import { parseArgs } from '../cli/index.ts';
import { RingBackend } from '../chardev/index.ts';
import { start } from '../main.ts';

const GREETING = 'Hello from the guest, through ioreqs to a 16550A!\r\n';
const COM1 = 0x3f8;
const [THR, IER, FCR, LCR, MCR, LSR, MSR, SCR] = [0, 1, 2, 3, 4, 5, 6, 7].map((r) => COM1 + r);

async function demo(): Promise<number> {
  const { config } = await parseArgs([
    '--sim', '-xen-domid', '7', '-machine', 'xenfv,suppress-vmdesc=on', '-m', '32', '-name', 'demo',
    '-chardev', 'ringbuf,id=console', '-serial', 'chardev:console',
  ]);
  const dm = await start(config, { log: pino({ level: 'warn' }), signals: false });
  const sim = dm.sim!;
  const out: string[] = [];
  const check = (what: string, ok: boolean): void => {
    out.push(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  };

  // Linux autoconfig: scratch register, IER read-back, loopback modem lines.
  sim.outb(SCR, 0x5a);
  check('scratch register holds 0x5a', sim.inb(SCR) === 0x5a);
  sim.outb(IER, 0x0f);
  check('IER reads back 0x0f', sim.inb(IER) === 0x0f);
  sim.outb(IER, 0);
  sim.outb(MCR, 0x1a); // LOOP | OUT2 | RTS
  check('loopback: MSR lines = DCD|CTS', (sim.inb(MSR) & 0xf0) === 0x90);
  sim.outb(MCR, 0);
  sim.outb(FCR, 0x07);
  check('FIFO enabled: IIR says 16550A', sim.inb(FCR) >> 6 === 3);

  // 115200 8N1: divisor 1.
  sim.outb(LCR, 0x80);
  sim.outb(THR, 1);
  sim.outb(IER, 0);
  sim.outb(LCR, 0x03);
  sim.outb(MCR, 0x0b); // DTR | RTS | OUT2

  for (const c of Buffer.from(GREETING, 'latin1')) {
    let spins = 0;
    while ((sim.inb(LSR) & 0x20) === 0 && spins < 1000) spins++;
    sim.outb(THR, c);
  }

  const session = dm.qmp.open(() => {});
  session.input('{"execute":"qmp_capabilities"}');
  const status = JSON.parse(session.input('{"execute":"query-status","id":1}')[0]).return.status as string;
  check('QMP query-status = running', status === 'running');
  check(`xenstore device-model/7/state = ${sim.store.read('device-model/7/state')}`, sim.store.read('device-model/7/state') === 'running');

  const backend = dm.serials[0] as RingBackend;
  const got = backend.text();
  check('UART backend received the greeting', got === GREETING);
  await dm.shutdown('demo done');

  process.stdout.write(out.join('\n') + '\n');
  process.stdout.write(`UART backend received: ${JSON.stringify(got)}\n`);
  process.stdout.write(`ioreq server: ${dm.ioreq.stats.sync} synchronous ioreqs answered, ${dm.ioreq.stats.pio} port I/O\n`);
  return out.every((l) => l.startsWith('ok')) ? 0 : 1;
}

demo().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
