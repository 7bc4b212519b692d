/**
 * Asks Xen to shut a guest down on the device model's behalf
 * (XEN_DMOP_remote_shutdown, xendevicemodel.h: xendevicemodel_shutdown).
 *
 * The stub domain uses this when stubdm dies: a guest whose device model is
 * gone has vCPUs blocked on ioreqs nobody will answer. Shutting it down with
 * reason "crash" lets the xl process that watches the guest apply on_crash
 * (default: destroy), and destroying the guest destroys its stub domain too.
 * A stub domain may do this because libxl made it the guest's device-model
 * domain (xc_domain_set_target).
 */
import koffi, { type LibraryHandle } from 'koffi';

/** xen/sched.h SHUTDOWN_* reasons. */
export const ShutdownReason = {
  poweroff: 0,
  reboot: 1,
  suspend: 2,
  crash: 3,
  watchdog: 4,
} as const;
export type ShutdownReasonName = keyof typeof ShutdownReason;

export function shutdownGuest(domid: number, reason: ShutdownReasonName): void {
  if (!Number.isInteger(domid) || domid <= 0 || domid >= 0x7ff0) {
    throw new Error(`bad guest domid ${domid}`);
  }
  let lib: LibraryHandle;
  try {
    lib = koffi.load('libxendevicemodel.so.1');
  } catch {
    throw new Error('cannot load libxendevicemodel.so.1 (Debian package libxendevicemodel1)');
  }
  const open = lib.func('void *xendevicemodel_open(void *logger, unsigned int flags)');
  const shutdown = lib.func('int xendevicemodel_shutdown(void *dmod, uint16_t domid, unsigned int reason)');
  const close = lib.func('int xendevicemodel_close(void *dmod)');
  const dmod: unknown = open(null, 0);
  if (dmod === null) throw new Error('xendevicemodel_open failed (no /dev/xen/privcmd?)');
  try {
    if (shutdown(dmod, domid, ShutdownReason[reason]) !== 0) {
      throw new Error(`xendevicemodel_shutdown(${domid}, ${reason}) failed`);
    }
  } finally {
    close(dmod);
  }
}
