/**
 * A small interactive client for QEMU's qtest protocol (docs/devel/qtest.rst):
 * one command line, one `OK ...` / `FAIL ...` answer, plus asynchronous
 * `IRQ raise N` / `IRQ lower N` lines after irq_intercept_in. Used by the
 * QEMU oracle tests to run the same register sequences on QEMU and on us.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

/** The QEMU binary; STUBDM_QEMU overrides (a build of your own, or a missing one to check the message). */
export const QEMU = process.env.STUBDM_QEMU ?? 'qemu-system-x86_64';

export class QemuMissingError extends Error {}

export class Qtest {
  /** Current level of each intercepted IRQ line. */
  readonly irqs = new Map<number, boolean>();
  private pending = '';
  private waiters: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  private stderr = '';
  private dead: Error | null = null;
  private guard: ReturnType<typeof setTimeout>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, guardMs: number) {
    // Only a hung QEMU trips this; the tests themselves never time anything.
    this.guard = setTimeout(() => this.die(new Error(`qemu still running after ${guardMs / 1000} s; killed`)), guardMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => this.onData(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    child.stdin.on('error', () => {});
    child.on('error', (e: NodeJS.ErrnoException) =>
      this.die(e.code === 'ENOENT' ? new QemuMissingError(`${QEMU} is not installed: apt-get install qemu-system-x86 (or run scripts/install-deps.sh)`) : e),
    );
    child.on('exit', (code) => this.die(new Error(`qemu exited (${code}): ${this.stderr.trim()}`)));
  }

  /**
   * Start `qemu-system-x86_64 -machine pc ... -qtest stdio` with extra arguments.
   * `running`: without -S, so the VM runs (its firmware too, on TCG: Debian's
   * QEMU has no qtest accelerator); netdevs deliver nothing while it is stopped.
   */
  static async start(args: string[], guardMs = 120_000, running = false): Promise<Qtest> {
    const mode = running ? [] : ['-S'];
    const child = spawn(QEMU, ['-machine', 'pc', '-m', '128', '-qtest', 'stdio', '-qtest-log', '/dev/null', '-display', 'none', '-nodefaults', ...mode, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const q = new Qtest(child, guardMs);
    await q.cmd('irq_intercept_in ioapic');
    return q;
  }

  /**
   * QEMU can answer qtest before the machine's reset has run (devices then
   * read as zeros and a later reset would wipe what a test wrote): poll a
   * register until it shows its reset value. Bounded.
   */
  async waitReset(port: number, value: number, tries = 100000): Promise<void> {
    for (let i = 0; i < tries; i++) if ((await this.in(1, port)) === value) return;
    throw new Error(`port 0x${port.toString(16)} never read 0x${value.toString(16)} after QEMU started`);
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    clearTimeout(this.guard);
    for (const w of this.waiters.splice(0)) w.reject(e);
    this.child.kill('SIGKILL');
  }

  private onData(d: string): void {
    this.pending += d;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).trim();
      this.pending = this.pending.slice(nl + 1);
      const irq = /^IRQ (raise|lower) (\d+)$/.exec(line);
      if (irq) {
        this.irqs.set(Number(irq[2]), irq[1] === 'raise');
        continue;
      }
      if (line.startsWith('OK') || line.startsWith('FAIL') || line.startsWith('ERR')) this.waiters.shift()?.resolve(line);
    }
  }

  /** Send one command; resolve with the answer after OK (throws on FAIL). */
  cmd(line: string): Promise<string> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiters.push({
        resolve: (l) => (l.startsWith('OK') ? resolve(l.slice(2).trim()) : reject(new Error(`qtest: ${line} -> ${l}`))),
        reject,
      });
      this.child.stdin.write(line + '\n');
    });
  }

  async out(size: 1 | 2 | 4, port: number, v: number): Promise<void> {
    await this.cmd(`out${'bwl'[size === 4 ? 2 : size - 1]} 0x${port.toString(16)} 0x${(v >>> 0).toString(16)}`);
  }

  async in(size: 1 | 2 | 4, port: number): Promise<number> {
    return Number.parseInt(await this.cmd(`in${'bwl'[size === 4 ? 2 : size - 1]} 0x${port.toString(16)}`), 16);
  }

  async memwrite(addr: number, data: Uint8Array): Promise<void> {
    if (data.length === 0) return;
    await this.cmd(`write 0x${addr.toString(16)} 0x${data.length.toString(16)} 0x${Buffer.from(data).toString('hex')}`);
  }

  async memread(addr: number, len: number): Promise<Uint8Array> {
    const hex = await this.cmd(`read 0x${addr.toString(16)} 0x${len.toString(16)}`);
    return new Uint8Array(Buffer.from(hex.replace(/^0x/, ''), 'hex'));
  }

  irq(n: number): boolean {
    return this.irqs.get(n) ?? false;
  }

  close(): void {
    this.die(new Error('closed'));
  }
}
