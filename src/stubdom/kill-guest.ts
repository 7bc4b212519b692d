/**
 * `stubdm-kill-guest <domid> [crash|poweroff]`: run by the stub domain's init
 * when stubdm has exited, so the guest is torn down instead of hanging on
 * ioreqs nobody serves (see src/xen/shutdown.ts).
 */
import { shutdownGuest, ShutdownReason, type ShutdownReasonName } from '../xen/shutdown.ts';

function main(argv: string[]): number {
  const [domidArg, reasonArg = 'crash'] = argv;
  const domid = Number(domidArg);
  if (domidArg === undefined || !/^[0-9]+$/.test(domidArg) || !(reasonArg in ShutdownReason)) {
    process.stderr.write(`usage: stubdm-kill-guest <domid> [${Object.keys(ShutdownReason).join('|')}]\n`);
    return 2;
  }
  try {
    shutdownGuest(domid, reasonArg as ShutdownReasonName);
  } catch (e) {
    process.stderr.write(`stubdm-kill-guest: ${(e as Error).message}\n`);
    return 1;
  }
  process.stderr.write(`stubdm-kill-guest: guest ${domid} shut down (${reasonArg})\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
