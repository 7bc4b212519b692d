/**
 * `-serial pty`: Node has no openpty (it needs grantpt/unlockpt ioctls), so a
 * 90-line C helper (native/stubdm-pty.c, built by scripts/build-native.sh)
 * opens the pair, prints the slave path and relays bytes over its stdio.
 * query-chardev then reports `pty:/dev/pts/N`, which libxl writes to
 * xenstore for `xl console`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from '../core/log.ts';
import { NATIVE_BUILD_HINT, nativeHelperPath } from '../native-paths.ts';
import { BaseBackend, ChardevError, streamSink } from './backends.ts';
import type { CharBackend } from './types.ts';

/** Where the helper is: $STUBDM_PTY_HELPER, build/stubdm-pty in a checkout, or the installed package's (src/native-paths.ts). */
export function ptyHelperPath(): string {
  return nativeHelperPath('stubdm-pty', 'STUBDM_PTY_HELPER');
}

class PtyBackend extends BaseBackend {
  constructor(
    id: string,
    path: string,
    log: Logger,
    private readonly child: ReturnType<typeof spawn>,
  ) {
    super(id, `pty:${path}`, log);
    child.stdin!.on('error', () => {});
    this.output(streamSink(child.stdin!));
    child.stdout!.on('data', (d: Buffer) => this.deliver(d));
  }

  protected override async release(): Promise<void> {
    this.child.stdin!.end();
    this.child.kill('SIGTERM');
  }
}

export async function openPty(id: string, log: Logger): Promise<CharBackend> {
  const helper = ptyHelperPath();
  if (!fs.existsSync(helper)) {
    throw new ChardevError(
      `-serial pty needs the helper ${helper} (${NATIVE_BUILD_HINT}; or set STUBDM_PTY_HELPER); or use -serial file:PATH`,
    );
  }
  const child = spawn(helper, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const path = await new Promise<string>((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      const nl = got.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.pause();
      child.stdout!.off('data', onData);
      const rest = Buffer.from(got.slice(nl + 1), 'latin1');
      if (rest.length > 0) child.stdout!.unshift(rest);
      resolve(got.slice(0, nl));
    };
    child.stdout!.on('data', onData);
    child.once('error', (err) => reject(new ChardevError(`-serial pty: cannot run ${helper}: ${err.message}`)));
    child.once('exit', (code) => reject(new ChardevError(`-serial pty: ${helper} exited (${code}) before opening a pty`)));
  });
  const b = new PtyBackend(id, path, log, child);
  child.stdout!.resume();
  // QEMU prints this line; people look for it in the device model's log.
  log.info({ chardev: id }, `char device redirected to ${path} (label ${id})`);
  return b;
}
