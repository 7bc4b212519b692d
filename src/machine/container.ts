/**
 * The saved-state container: every device's snapshot in one blob that says
 * where it ends, so a reader never needs EOF (a stub domain's restore stream
 * arrives on a console that never closes; libxl treats the blob as opaque).
 *
 *   offset  size  field
 *   0       8     magic "STUBDMSV"
 *   8       4     format version (FORMAT_VERSION), little-endian like every field
 *   12      4     total length in bytes, this header and the checksum included
 *   16      4     number of device records
 *   20      ...   records: id length (1), id (ASCII), state version (4),
 *                 payload length (4), payload (UTF-8 JSON)
 *   end-4   4     CRC-32 (zlib's) of every byte before it
 *
 * Payloads are JSON of the device's plain data; a Uint8Array is written as
 * {"$bytes": "<base64>"}, so snapshot keys may not start with '$'. The
 * encoder refuses anything that would not come back the same (functions,
 * class instances, NaN, undefined): a device bug shows at save, not restore.
 */
import { crc32 } from 'node:zlib';
import { DEVICE_ID_RE, type StateObject, type StateValue } from '../core/device.ts';
import { StateError } from '../core/state.ts';

export const MAGIC = Buffer.from('STUBDMSV', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 20;
const CRC_BYTES = 4;
/** Largest blob we write or accept: device state is registers and buffers, never guest RAM. */
export const MAX_CONTAINER_BYTES = 64 << 20;
/** More records than any machine has devices: bounds the parse of a hostile blob. */
export const MAX_RECORDS = 1024;
const BYTES_KEY = '$bytes';

export interface DeviceRecord {
  readonly id: string;
  readonly version: number;
  readonly state: StateObject;
}

function encodeValue(v: unknown, path: string): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`${path}: ${v} does not survive saving`);
    return v;
  }
  if (v instanceof Uint8Array) return { [BYTES_KEY]: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map((x, i) => encodeValue(x, `${path}[${i}]`));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$')) throw new TypeError(`${path}.${k}: state keys may not start with '$'`);
      if (x === undefined) throw new TypeError(`${path}.${k} is undefined (use null)`);
      out[k] = encodeValue(x, `${path}.${k}`);
    }
    return out;
  }
  throw new TypeError(`${path}: ${typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v} is not plain state`);
}

function reviver(_key: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (BYTES_KEY in o) {
      const b = o[BYTES_KEY];
      if (typeof b !== 'string' || Object.keys(o).length !== 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b)) {
        throw new StateError('saved state: malformed byte array');
      }
      return new Uint8Array(Buffer.from(b, 'base64'));
    }
  }
  return v;
}

/** Encode device records into one container. Throws TypeError for state that is not plain data (a device bug). */
export function encodeContainer(records: readonly DeviceRecord[]): Uint8Array {
  const parts: Buffer[] = [];
  let body = 0;
  for (const r of records) {
    if (!DEVICE_ID_RE.test(r.id)) throw new TypeError(`device id ${JSON.stringify(r.id)} is not a valid state id`);
    if (!Number.isInteger(r.version) || r.version < 1 || r.version > 0xffffffff) throw new TypeError(`${r.id}: bad state version ${r.version}`);
    const payload = Buffer.from(JSON.stringify(encodeValue(r.state, r.id)), 'utf8');
    const head = Buffer.alloc(1 + r.id.length + 8);
    head.writeUInt8(r.id.length, 0);
    head.write(r.id, 1, 'latin1');
    head.writeUInt32LE(r.version, 1 + r.id.length);
    head.writeUInt32LE(payload.length, 5 + r.id.length);
    parts.push(head, payload);
    body += head.length + payload.length;
  }
  const total = HEADER_BYTES + body + CRC_BYTES;
  if (total > MAX_CONTAINER_BYTES) throw new RangeError(`saved state of ${total} bytes exceeds ${MAX_CONTAINER_BYTES}`);
  const out = Buffer.alloc(total);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(total, 12);
  out.writeUInt32LE(records.length, 16);
  let at = HEADER_BYTES;
  for (const p of parts) {
    p.copy(out, at);
    at += p.length;
  }
  out.writeUInt32LE(crc32(out.subarray(0, at)), at);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/**
 * From the first HEADER_BYTES of a stream: the whole container's length, so
 * a reader knows how much more to take. Throws StateError for a stream that
 * is not ours or a format this build cannot read.
 */
export function containerLength(header: Uint8Array): number {
  if (header.length < HEADER_BYTES) throw new StateError(`saved state truncated: ${header.length} of ${HEADER_BYTES} header bytes`);
  const b = Buffer.from(header.buffer, header.byteOffset, HEADER_BYTES);
  if (!b.subarray(0, 8).equals(MAGIC)) throw new StateError('not a stubdm saved state (bad magic)');
  const fmt = b.readUInt32LE(8);
  if (fmt !== FORMAT_VERSION) {
    throw new StateError(
      fmt > FORMAT_VERSION
        ? `saved state format ${fmt} is newer than this stubdm reads (${FORMAT_VERSION}); restore with a newer stubdm`
        : `saved state format ${fmt} is not supported`,
    );
  }
  const total = b.readUInt32LE(12);
  if (total < HEADER_BYTES + CRC_BYTES || total > MAX_CONTAINER_BYTES) throw new StateError(`saved state: implausible length ${total}`);
  return total;
}

/**
 * Bytes per device record in a container made by encodeContainer (id ->
 * payload length), for the save log: which device's state costs what. Walks
 * the record headers only; a container that is not well formed gives {}.
 */
export function recordSizes(blob: Uint8Array): Record<string, number> {
  const sizes: Record<string, number> = Object.create(null) as Record<string, number>;
  if (blob.length < HEADER_BYTES + CRC_BYTES) return sizes;
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  const end = Math.min(b.length, b.readUInt32LE(12)) - CRC_BYTES;
  const n = Math.min(b.readUInt32LE(16), MAX_RECORDS);
  let at = HEADER_BYTES;
  for (let i = 0; i < n && at + 1 <= end; i++) {
    const idLen = b.readUInt8(at);
    if (at + 9 + idLen > end) break;
    const len = b.readUInt32LE(at + 5 + idLen);
    sizes[b.toString('latin1', at + 1, at + 1 + idLen)] = len;
    at += 9 + idLen + len;
  }
  return sizes;
}

/** Decode and check a whole container (exactly containerLength() bytes, or more: the rest is ignored). */
export function decodeContainer(blob: Uint8Array): DeviceRecord[] {
  const total = containerLength(blob);
  if (blob.length < total) throw new StateError(`saved state truncated: ${blob.length} of ${total} bytes`);
  const b = Buffer.from(blob.buffer, blob.byteOffset, total);
  const want = b.readUInt32LE(total - CRC_BYTES);
  if (crc32(b.subarray(0, total - CRC_BYTES)) !== want) throw new StateError('saved state is corrupt (checksum mismatch)');
  const n = b.readUInt32LE(16);
  if (n > MAX_RECORDS) throw new StateError(`saved state: ${n} device records`);
  const end = total - CRC_BYTES;
  const out: DeviceRecord[] = [];
  const seen = new Set<string>();
  let at = HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    if (at + 1 > end) throw new StateError('saved state: record runs past the end');
    const idLen = b.readUInt8(at);
    if (at + 1 + idLen + 8 > end) throw new StateError('saved state: record runs past the end');
    const id = b.toString('latin1', at + 1, at + 1 + idLen);
    if (!DEVICE_ID_RE.test(id)) throw new StateError(`saved state: bad device id ${JSON.stringify(id)}`);
    if (seen.has(id)) throw new StateError(`saved state: device ${id} appears twice`);
    seen.add(id);
    const version = b.readUInt32LE(at + 1 + idLen);
    const len = b.readUInt32LE(at + 5 + idLen);
    const p0 = at + 9 + idLen;
    if (p0 + len > end) throw new StateError(`saved state: ${id} runs past the end`);
    let state: unknown;
    try {
      state = JSON.parse(b.toString('utf8', p0, p0 + len), reviver);
    } catch (e) {
      if (e instanceof StateError) throw new StateError(`${id}: ${e.message}`);
      throw new StateError(`saved state: ${id} is not valid JSON`);
    }
    if (state === null || typeof state !== 'object' || Array.isArray(state) || state instanceof Uint8Array) {
      throw new StateError(`saved state: ${id} is not an object`);
    }
    out.push({ id, version, state: state as StateObject });
    at = p0 + len;
  }
  if (at !== end) throw new StateError(`saved state: ${end - at} stray bytes after the last record`);
  return out;
}

/** For tests and tools: is this value plain state (what encodeContainer accepts)? */
export function isPlainState(v: StateValue): boolean {
  try {
    encodeValue(v, 'value');
    return true;
  } catch {
    return false;
  }
}
