/**
 * ATAPI packet commands for the CD-ROM (MMC-3 / SPC-3 subset), as a table
 * indexed by opcode with flags that drive the generic checks: NEEDS_MEDIUM
 * (NOT READY 02/3A/00 without a medium) and ALLOW_UA (runs while a unit
 * attention is pending), like v86's ATAPI table and QEMU's
 * atapi_cmd_table. Every CDB field the guest controls is checked.
 */
import type { Drive } from './drive.ts';
import { CD_SECTOR } from './drive.ts';

/** Data-in source: a CD LBA, or -1 for the reply built in the drive buffer. */
export type AtapiSource = number;

// Sense keys (SPC-3 4.5.6) and additional sense codes.
export const SK_NO_SENSE = 0x0;
export const SK_NOT_READY = 0x2;
export const SK_MEDIUM_ERROR = 0x3;
export const SK_ILLEGAL_REQUEST = 0x5;
export const SK_UNIT_ATTENTION = 0x6;
export const ASC_INVALID_OPCODE = 0x20;
export const ASC_LBA_OUT_OF_RANGE = 0x21;
export const ASC_INVALID_FIELD_IN_CDB = 0x24;
export const ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28;
export const ASC_SAVING_NOT_SUPPORTED = 0x39;
export const ASC_MEDIUM_NOT_PRESENT = 0x3a;
export const ASC_MEDIUM_REMOVAL_PREVENTED = 0x53;

// Opcodes (MMC-3 table 1 / SPC-3).
export const GPCMD_TEST_UNIT_READY = 0x00;
export const GPCMD_REQUEST_SENSE = 0x03;
export const GPCMD_INQUIRY = 0x12;
export const GPCMD_START_STOP_UNIT = 0x1b;
export const GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
export const GPCMD_READ_CAPACITY = 0x25;
export const GPCMD_READ_10 = 0x28;
export const GPCMD_SEEK_10 = 0x2b;
export const GPCMD_READ_TOC = 0x43;
export const GPCMD_GET_CONFIGURATION = 0x46;
export const GPCMD_GET_EVENT_STATUS_NOTIFICATION = 0x4a;
export const GPCMD_READ_DISC_INFORMATION = 0x51;
export const GPCMD_MODE_SENSE_10 = 0x5a;
export const GPCMD_READ_12 = 0xa8;
export const GPCMD_SET_CD_SPEED = 0xbb;
export const GPCMD_MECHANISM_STATUS = 0xbd;
export const GPCMD_READ_CD = 0xbe;

const NEEDS_MEDIUM = 1;
const ALLOW_UA = 2;

type ScsiHandler = (d: Drive, cdb: number[]) => void;
const SCSI: ({ run: ScsiHandler; flags: number } | undefined)[] = new Array(256);

const be16 = (c: number[], i: number) => (c[i] << 8) | c[i + 1];
const be32 = (c: number[], i: number) => ((c[i] << 24) | (c[i + 1] << 16) | (c[i + 2] << 8) | c[i + 3]) >>> 0;
function put16(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >>> 8) & 0xff;
  b[i + 1] = v & 0xff;
}
function put32(b: Uint8Array, i: number, v: number): void {
  b[i] = (v >>> 24) & 0xff;
  b[i + 1] = (v >>> 16) & 0xff;
  b[i + 2] = (v >>> 8) & 0xff;
  b[i + 3] = v & 0xff;
}
/** MSF address of an LBA (MMC-3 table 355: LBA 0 is 00:02:00). */
function putMsf(b: Uint8Array, i: number, lba: number): void {
  const f = lba + 150;
  b[i] = Math.floor(f / (75 * 60)) & 0xff;
  b[i + 1] = Math.floor(f / 75) % 60;
  b[i + 2] = f % 75;
}

/** Send a reply built in d.state.buf[0..len), cut to the CDB's allocation length. */
function reply(d: Drive, len: number, alloc: number): void {
  d.atapiDataIn(Math.min(len, alloc), -1);
}

function invalidField(d: Drive): void {
  d.atapiError(SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
}

/** Run the packet in d.state.cdb (called when its 12 bytes arrived). */
export function atapiCommand(d: Drive): void {
  const s = d.state;
  const cdb = s.cdb;
  const e = SCSI[cdb[0]];
  const allowUa = e !== undefined && (e.flags & ALLOW_UA) !== 0;
  // A pending unit attention blocks everything but a few commands until REQUEST SENSE reports it.
  if (s.senseKey === SK_UNIT_ATTENTION && !allowUa) return d.atapiError(SK_UNIT_ATTENTION, s.asc, s.ascq);
  // After a media change the guest sees the tray empty once, then the new medium (QEMU ide_atapi_cmd).
  if (s.mediaChanged === 1 && !allowUa) {
    s.mediaChanged = 2;
    return d.atapiError(SK_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
  }
  if (s.mediaChanged === 2 && !allowUa && d.mediumPresent()) {
    s.mediaChanged = 0;
    return d.atapiError(SK_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
  }
  if (cdb[0] !== GPCMD_REQUEST_SENSE && s.senseKey !== SK_UNIT_ATTENTION) s.senseKey = s.asc = s.ascq = 0;
  if (e === undefined) return d.atapiError(SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
  if (e.flags & NEEDS_MEDIUM && !d.mediumPresent()) return d.atapiError(SK_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
  e.run(d, cdb);
}

function def(op: number, flags: number, run: ScsiHandler): void {
  SCSI[op] = { run, flags };
}

def(GPCMD_TEST_UNIT_READY, NEEDS_MEDIUM, (d) => d.atapiOk());

def(GPCMD_REQUEST_SENSE, ALLOW_UA, (d, c) => {
  const s = d.state;
  const b = s.buf;
  b.fill(0, 0, 18);
  b[0] = 0x70; // current errors, fixed format (SPC-3 4.5.3)
  b[2] = s.senseKey;
  b[7] = 10; // additional sense length
  b[12] = s.asc;
  b[13] = s.ascq;
  s.senseKey = s.asc = s.ascq = 0; // retrieved: cleared (SPC-3 4.5.1)
  reply(d, 18, c[4]);
});

def(GPCMD_INQUIRY, ALLOW_UA, (d, c) => {
  if (c[1] & 1 || c[2] !== 0) return invalidField(d); // no vital product data pages
  const b = d.state.buf;
  b.fill(0, 0, 36);
  b[0] = 0x05; // CD/DVD device
  b[1] = 0x80; // removable
  b[2] = 0x00;
  b[3] = 0x21; // ATAPI version 2, response data format 1 (SFF-8020)
  b[4] = 31; // additional length
  const put = (at: number, str: string, n: number) => {
    for (let i = 0; i < n; i++) b[at + i] = i < str.length ? str.charCodeAt(i) & 0x7f : 0x20;
  };
  put(8, 'STUBDM', 8);
  put(16, d.state.model, 16);
  put(32, d.state.firmware, 4);
  reply(d, 36, be16(c, 3));
});

def(GPCMD_READ_CAPACITY, NEEDS_MEDIUM, (d) => {
  const b = d.state.buf;
  put32(b, 0, d.totalSectors() - 1); // last LBA
  put32(b, 4, CD_SECTOR);
  reply(d, 8, 8);
});

function read(d: Drive, lba: number, blocks: number): void {
  if (lba + blocks > d.totalSectors()) return d.atapiError(SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
  if (blocks === 0) return d.atapiOk();
  d.atapiDataIn(blocks * CD_SECTOR, lba);
}
def(GPCMD_READ_10, NEEDS_MEDIUM, (d, c) => read(d, be32(c, 2), be16(c, 7)));
def(GPCMD_READ_12, NEEDS_MEDIUM, (d, c) => read(d, be32(c, 2), be32(c, 6)));

// READ CD (MMC-3 6.19): user data of Mode 1 / any sectors only; raw (2352-byte) reads are not offered.
def(GPCMD_READ_CD, NEEDS_MEDIUM, (d, c) => {
  const type = (c[1] >> 2) & 7; // expected sector type: 0 any, 2 Mode 1
  if (type !== 0 && type !== 2) return invalidField(d);
  const blocks = (c[6] << 16) | (c[7] << 8) | c[8];
  switch (c[9] & 0xf8) {
    case 0x00: // nothing requested
      return d.atapiOk();
    case 0x10: // user data
      return read(d, be32(c, 2), blocks);
    default:
      return invalidField(d);
  }
});

def(GPCMD_SEEK_10, NEEDS_MEDIUM, (d, c) => {
  if (be32(c, 2) >= d.totalSectors()) return d.atapiError(SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
  d.atapiOk();
});

def(GPCMD_SET_CD_SPEED, 0, (d) => d.atapiOk());

def(GPCMD_MODE_SENSE_10, 0, (d, c) => {
  const pc = c[2] >> 6; // page control: 0 current, 1 changeable, 2 default, 3 saved
  const page = c[2] & 0x3f;
  if (pc === 3) return d.atapiError(SK_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED);
  if (page !== 0x01 && page !== 0x2a && page !== 0x3f) return invalidField(d);
  const b = d.state.buf;
  b.fill(0, 0, 64);
  let n = 8; // mode parameter header(10)
  if (page === 0x01 || page === 0x3f) {
    // Read/write error recovery page (MMC-3 6.3.4): 8 bytes.
    b[n] = 0x01;
    b[n + 1] = 6;
    if (pc !== 1) b[n + 3] = 5; // read retry count
    n += 8;
  }
  if (page === 0x2a || page === 0x3f) {
    // CD/DVD capabilities and mechanical status page (MMC-2 5.5.10 layout, 22 bytes, as QEMU).
    b[n] = 0x2a;
    b[n + 1] = 0x14;
    if (pc !== 1) {
      b[n + 2] = 0x3b; // reads CD-R, CD-RW, method 2, DVD-ROM
      b[n + 4] = 0x71; // audio play, multisession, mode 2 form 1/2
      b[n + 5] = 0x60; // CD-DA commands, accurate stream
      b[n + 6] = 0x29 | (d.state.trayLocked ? 2 : 0); // lock, (locked), eject, tray loading
      put16(b, n + 8, 704); // max read speed, KB/s (4x)
      put16(b, n + 10, 2); // volume levels
      put16(b, n + 12, 512); // buffer size KB
      put16(b, n + 14, 704); // current read speed
    }
    n += 22;
  }
  b[2] = 0x70; // medium type (obsolete in MMC-3; QEMU reports 70h)
  put16(b, 0, n - 2);
  reply(d, n, be16(c, 7));
});

def(GPCMD_GET_CONFIGURATION, ALLOW_UA, (d, c) => {
  if ((c[1] & 3) === 3) return invalidField(d);
  const b = d.state.buf;
  b.fill(0, 0, 32);
  const blocks = d.mediumPresent() ? d.totalSectors() : 0;
  const dvd = blocks > 360000; // more than 80 minutes of CD
  const profile = !d.mediumPresent() ? 0 : dvd ? 0x0010 : 0x0008;
  put16(b, 6, profile);
  // Feature 0: profile list (DVD-ROM, CD-ROM), current bit on the mounted one.
  put16(b, 8, 0x0000);
  b[10] = 0x03;
  b[11] = 8;
  put16(b, 12, 0x0010);
  b[14] = profile === 0x0010 ? 1 : 0;
  put16(b, 16, 0x0008);
  b[18] = profile === 0x0008 ? 1 : 0;
  // Feature 1: core, physical interface ATAPI.
  put16(b, 20, 0x0001);
  b[22] = 0x0b;
  b[23] = 8;
  put32(b, 24, 2);
  b[28] = 1;
  put32(b, 0, 32 - 4);
  reply(d, 32, be16(c, 7));
});

def(GPCMD_READ_TOC, NEEDS_MEDIUM, (d, c) => {
  const msf = (c[1] & 2) !== 0;
  const format = (c[2] & 0x0f) || c[9] >> 6; // MMC byte 2, or SFF-8020 byte 9 bits 7:6 (Linux)
  const start = c[6];
  const total = d.totalSectors();
  const b = d.state.buf;
  b.fill(0, 0, 64);
  const addr = (at: number, lba: number) => {
    if (msf) putMsf(b, at + 1, lba);
    else put32(b, at, lba);
  };
  let n: number;
  switch (format) {
    case 0: {
      if (start > 1 && start !== 0xaa) return invalidField(d);
      b[2] = 1; // first track
      b[3] = 1; // last track
      n = 4;
      if (start <= 1) {
        b[n + 1] = 0x14; // ADR 1, data track
        b[n + 2] = 1;
        addr(n + 4, 0);
        n += 8;
      }
      b[n + 1] = 0x16; // ADR 1, control 6 (QEMU's lead-out control)
      b[n + 2] = 0xaa; // lead-out
      addr(n + 4, total);
      n += 8;
      break;
    }
    case 1: // multi-session info: one session starting at track 1
      b[2] = 1;
      b[3] = 1;
      b[5] = 0x14;
      b[6] = 1;
      addr(8, 0);
      n = 12;
      break;
    case 2: {
      // Raw TOC: points A0 (first track), A1 (last track), A2 (lead-out), track 1; MSF always.
      b[2] = 1;
      b[3] = 1;
      n = 4;
      const entry = (point: number, pm: number, ps: number, pf: number) => {
        b[n] = 1; // session
        b[n + 1] = 0x14;
        b[n + 3] = point;
        b[n + 8] = pm;
        b[n + 9] = ps;
        b[n + 10] = pf;
        n += 11;
      };
      entry(0xa0, 1, 0, 0);
      entry(0xa1, 1, 0, 0);
      const lo = total + 150;
      entry(0xa2, Math.floor(lo / 4500) & 0xff, Math.floor(lo / 75) % 60, lo % 75);
      entry(1, 0, 2, 0);
      break;
    }
    default:
      return invalidField(d);
  }
  put16(b, 0, n - 2);
  reply(d, n, be16(c, 7));
});

def(GPCMD_GET_EVENT_STATUS_NOTIFICATION, ALLOW_UA, (d, c) => {
  if (!(c[1] & 1)) return invalidField(d); // only polled operation (MMC-3 6.5)
  const s = d.state;
  const b = s.buf;
  b.fill(0, 0, 8);
  b[3] = 0x10; // supported classes: media
  let n = 4;
  if (c[4] & 0x10) {
    b[2] = 0x04; // media class
    b[4] = s.mediaEvent;
    b[5] = (s.trayOpen ? 1 : 0) | (d.mediumPresent() ? 2 : 0);
    s.mediaEvent = 0;
    n = 8;
  } else {
    b[2] = 0x80; // no event available
  }
  put16(b, 0, n - 2);
  reply(d, n, be16(c, 7));
});

def(GPCMD_START_STOP_UNIT, 0, (d, c) => {
  const s = d.state;
  const start = (c[4] & 1) !== 0;
  const loej = (c[4] & 2) !== 0;
  if (loej) {
    if (!start && !s.trayOpen && s.trayLocked) {
      return d.atapiError(d.mediumPresent() ? SK_NOT_READY : SK_ILLEGAL_REQUEST, ASC_MEDIUM_REMOVAL_PREVENTED, 2);
    }
    if (s.trayOpen === start) {
      s.trayOpen = !start;
      s.mediaEvent = start ? (d.backend ? 2 : 0) : 3;
    }
  }
  d.atapiOk();
});

def(GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL, 0, (d, c) => {
  d.state.trayLocked = (c[4] & 1) !== 0;
  d.atapiOk();
});

def(GPCMD_MECHANISM_STATUS, 0, (d, c) => {
  const b = d.state.buf;
  b.fill(0, 0, 8);
  b[1] = d.state.trayOpen ? 0x10 : 0; // door open
  b[5] = 1; // slots (QEMU reports one)
  reply(d, 8, be16(c, 8));
});

def(GPCMD_READ_DISC_INFORMATION, NEEDS_MEDIUM, (d, c) => {
  if (c[1] & 7) return invalidField(d); // only standard disc information
  const b = d.state.buf;
  b.fill(0, 0, 34);
  put16(b, 0, 32);
  b[2] = 0x0e; // last session complete, disc complete (finalized)
  b[3] = 1; // first track
  b[4] = 1; // sessions
  b[5] = 1; // first track in last session
  b[6] = 1; // last track in last session
  b[7] = 0x20; // unrestricted use
  reply(d, 34, be16(c, 7));
});
