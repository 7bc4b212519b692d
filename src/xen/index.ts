/**
 * The real-Xen Host. Importing this module loads nothing: the libraries are
 * opened by openXenHost(), which throws XenUnavailableError (one-line
 * operator message) when a library, /dev/xen/privcmd or an open call fails.
 */
export { openXenHost, type XenHost, type XenHostOptions } from './host.ts';
export { XenUnavailableError, koffiProbe } from './ffi.ts';
export { benchLines, koffiCallNs, koffiOverheadNs, notifyNs } from './bench.ts';
