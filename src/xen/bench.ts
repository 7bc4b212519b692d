/**
 * Figures for scripts/bench.ts (npm run bench): what one FFI call costs on this machine (the
 * floor under every libxendevicemodel call, e.g. an IRQ level), and what an event-channel
 * notify costs when JS makes it through the fdwatch addon (one N-API call plus one ioctl:
 * outside the watch callback; the answers of a callback are notified by the addon after it,
 * and the read and unmask of a wake-up run in C before JS is called, so none of those cross).
 */
import { koffiAbsProbe, koffiProbe } from './ffi.ts';
import { loadFdWatch } from './native.ts';

function perCallNs(n: number, fn: () => unknown): number {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn(); // warm up (JIT, koffi trampolines)
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

/** ns per koffi call of abs(): the FFI overhead alone. */
export function koffiOverheadNs(n = 500_000): number {
  const abs = koffiAbsProbe();
  return perCallNs(n, () => abs(-3));
}

/** ns per koffi call of getpid() (one trivial syscall). */
export function koffiCallNs(n = 200_000): number {
  const getpid = koffiProbe();
  return perCallNs(n, getpid);
}

/** ns per fdwatch.evtchnNotify() (N-API call + ioctl(2), on stdin here: ENOTTY), a notify made outside the watch callback. */
export function notifyNs(n = 200_000): number {
  const fw = loadFdWatch();
  return perCallNs(n, () => fw.evtchnNotify(0, 1));
}

/** `name value unit` lines, as npm run bench prints them. */
export function benchLines(): string[] {
  return [
    `ffi_koffi_abs ${koffiOverheadNs().toFixed(0)} ns/call`,
    `ffi_koffi_getpid ${koffiCallNs().toFixed(0)} ns/call`, `native_evtchn_notify ${notifyNs().toFixed(0)} ns/call`,
  ];
}
