/**
 * The IDE drives as QMP sees them: `query-block`, `eject` and
 * `blockdev-change-medium` (what `xl cd-eject` / `xl cd-insert` send;
 * docs/xen-contract.md §11a). A drive is named by its block backend name
 * (QMP `device`: the -drive id, libxl's ide-<devid>) or its -device id (QMP
 * `id`: the same string for libxl's CD-ROMs).
 *
 * A media change follows QEMU's steps, each of which the guest can see: the
 * tray opens (refused while the guest locks it, unless forced), the old
 * medium leaves, the new one goes in, the tray closes. The old backend is
 * closed once the drive has nothing in flight on it.
 */
import { openBlockBackend, BlockOpenError, type BlockBackend, type CacheMode, type BlockFormat } from '../block/index.ts';
import type { IdeController } from '../devices/ide/index.ts';
import type { Logger } from '../core/log.ts';

/** What the machine knows of one configured IDE drive (from the argv). */
export interface IdeDriveName {
  index: number;
  /** Block backend name (QMP `device`). */
  id: string;
  /** -device id (QMP `id`), or null. */
  qdev: string | null;
  media: 'disk' | 'cdrom';
  format: BlockFormat;
  cache: CacheMode;
}

/** A refused media operation: `notFound` maps to QMP's DeviceNotFound, the rest to GenericError. */
export class MediaError extends Error {
  constructor(
    message: string,
    readonly notFound = false,
  ) {
    super(message);
    this.name = 'MediaError';
  }
}

/** One drive in query-block's shape (qapi/block.json BlockInfo; the fields QEMU 7.2 fills for an IDE drive). */
export interface BlockInfo {
  device: string;
  qdev?: string;
  type: 'unknown';
  removable: boolean;
  locked: boolean;
  tray_open?: boolean;
  'io-status': 'ok';
  inserted?: {
    file: string;
    ro: boolean;
    drv: string;
    encrypted: false;
    detect_zeroes: 'off';
    bps: 0;
    bps_rd: 0;
    bps_wr: 0;
    iops: 0;
    iops_rd: 0;
    iops_wr: 0;
    backing_file_depth: 0;
    write_threshold: 0;
    cache: { writeback: boolean; direct: boolean; 'no-flush': boolean };
    image: { filename: string; format: string; 'virtual-size': number; 'dirty-flag': false };
  };
}

/** One drive in query-blockstats' shape (qapi/block-core.json BlockStats; the counters stubdm keeps). */
export interface BlockStats {
  device: string;
  qdev?: string;
  stats: {
    rd_bytes: number;
    wr_bytes: number;
    rd_operations: number;
    wr_operations: number;
    flush_operations: number;
    wr_highest_offset: number;
    /** stubdm's: requests that failed, any kind (QEMU splits them by kind). */
    failed_operations: number;
  };
}

/** Opens a new medium: the path to open (a /dev/fdset descriptor already turned into one) -> backend. */
export type MediumOpener = (path: string, format: BlockFormat, cache: CacheMode) => Promise<BlockBackend>;

export const defaultMediumOpener: MediumOpener = (path, format, cache) => openBlockBackend({ path, format, cache, readOnly: true });

export class IdeMedia {
  /** File name each slot's medium was opened from (what query-block and `info block` show). */
  private readonly files: (string | null)[];
  /** A media change in progress per slot: a second one is refused rather than interleaved. */
  private readonly busy = [false, false, false, false];

  constructor(
    private readonly ide: IdeController,
    private readonly names: readonly IdeDriveName[],
    files: readonly (string | null)[],
    /** The machine's open backends: kept current (save flushes them, close closes them). */
    private readonly backends: BlockBackend[],
    private readonly log: Logger,
    private readonly open: MediumOpener = defaultMediumOpener,
  ) {
    this.files = [0, 1, 2, 3].map((i) => files[i] ?? null);
  }

  /** QMP's lookup: exactly one of `device` (backend name) and `id` (-device id). */
  find(device: string | undefined, id: string | undefined): IdeDriveName {
    if ((device === undefined) === (id === undefined)) throw new MediaError("Need exactly one of 'device' and 'id'");
    const n = device !== undefined ? this.names.find((d) => d.id === device) : this.names.find((d) => d.qdev === id);
    // An unplugged disk (PV drivers took it) is gone from the machine as in QEMU.
    if (n === undefined || !this.ide.drive(n.index).present) {
      throw new MediaError(`Device '${(device ?? id)!.slice(0, 64)}' not found`, true);
    }
    return n;
  }

  query(): BlockInfo[] {
    const out: BlockInfo[] = [];
    for (const n of this.names) {
      const d = this.ide.drive(n.index);
      if (!d.present) continue;
      const cd = n.media === 'cdrom';
      const info: BlockInfo = { device: n.id, type: 'unknown', removable: cd, locked: d.state.trayLocked, 'io-status': 'ok' };
      if (n.qdev !== null) info.qdev = n.qdev;
      if (cd) info.tray_open = d.state.trayOpen;
      const b = d.backend;
      const file = this.files[n.index];
      if (b !== null && file !== null) {
        const direct = n.cache === 'none' || n.cache === 'directsync';
        info.inserted = {
          file,
          ro: b.readOnly,
          drv: n.format,
          encrypted: false,
          detect_zeroes: 'off',
          bps: 0,
          bps_rd: 0,
          bps_wr: 0,
          iops: 0,
          iops_rd: 0,
          iops_wr: 0,
          backing_file_depth: 0,
          write_threshold: 0,
          cache: { writeback: n.cache !== 'writethrough' && n.cache !== 'directsync', direct, 'no-flush': n.cache === 'unsafe' },
          image: { filename: file, format: n.format, 'virtual-size': b.size, 'dirty-flag': false },
        };
      }
      out.push(info);
    }
    return out;
  }

  /**
   * query-blockstats: per drive, QEMU's BlockStats shape with the counters
   * there are (Drive.io). libxenstat (xentop's VBD columns) reads `device`,
   * then rd_bytes, wr_bytes, rd_operations and wr_operations from `stats`
   * [xen 4.17: tools/libs/stat/xenstat_qmp.c qmp_parse_stats], and
   * matches `device` to a disk through query-block's `inserted.file`.
   */
  blockstats(): BlockStats[] {
    const out: BlockStats[] = [];
    for (const n of this.names) {
      const d = this.ide.drive(n.index);
      if (!d.present) continue;
      const io = d.io;
      const e: BlockStats = {
        device: n.id,
        stats: {
          rd_bytes: io.rdBytes,
          wr_bytes: io.wrBytes,
          rd_operations: io.rdOps,
          wr_operations: io.wrOps,
          flush_operations: io.flushOps,
          wr_highest_offset: io.wrHighest,
          failed_operations: io.failed,
        },
      };
      if (n.qdev !== null) e.qdev = n.qdev;
      out.push(e);
    }
    return out;
  }

  /** `info blockstats` (QEMU's hmp_info_blockstats layout: one line per drive, key=value). */
  hmpBlockstats(): string {
    return this.blockstats()
      .map((b) => `${b.device}: ${Object.entries(b.stats).map(([k, v]) => `${k}=${v}`).join(' ')}\n`)
      .join('');
  }

  /** `info block` (QEMU's hmp_info_block layout). */
  hmpInfo(): string {
    const lines: string[] = [];
    for (const i of this.query()) {
      const ins = i.inserted;
      lines.push(ins ? `${i.device}: ${ins.file} (${ins.drv}${ins.ro ? ', read-only' : ''})` : `${i.device}: [not inserted]`);
      lines.push(`    Attached to:      ${i.qdev ?? i.device}`);
      if (i.removable) lines.push(`    Removable device: ${i.locked ? 'locked' : 'not locked'}, tray ${i.tray_open ? 'open' : 'closed'}`);
      if (ins) lines.push(`    Cache mode:       ${ins.cache.writeback ? 'writeback' : 'writethrough'}${ins.cache.direct ? ', direct' : ''}${ins.cache['no-flush'] ? ', ignore flushes' : ''}`);
      lines.push('');
    }
    return lines.join('\n');
  }

  private cdrom(n: IdeDriveName): void {
    if (n.media !== 'cdrom') throw new MediaError(`Device '${n.qdev ?? n.id}' is not removable`);
  }

  private guard(n: IdeDriveName): () => void {
    if (this.busy[n.index]) throw new MediaError(`Device '${n.qdev ?? n.id}' is busy with another media change`);
    this.busy[n.index] = true;
    return () => {
      this.busy[n.index] = false;
    };
  }

  /** QMP `eject` (QEMU qmp_eject): open the tray, take the medium out. The tray stays open. */
  async eject(n: IdeDriveName, force: boolean): Promise<void> {
    this.cdrom(n);
    const done = this.guard(n);
    try {
      if (!this.ide.openTray(n.index, force)) {
        throw new MediaError(`Device '${n.qdev ?? n.id}' is locked and force was not specified, wait for tray to open and try again`);
      }
      await this.remove(n);
    } finally {
      done();
    }
  }

  /**
   * QMP `blockdev-change-medium`: open `path` (read-only: a CD), then open the
   * tray, swap, close the tray. Nothing changes when the file cannot be
   * opened or the tray stays locked.
   */
  async change(n: IdeDriveName, path: string, shownAs: string, format: BlockFormat, force: boolean): Promise<void> {
    this.cdrom(n);
    const done = this.guard(n);
    try {
      let b: BlockBackend;
      try {
        b = await this.open(path, format, n.cache);
      } catch (e) {
        throw new MediaError(e instanceof BlockOpenError ? e.message : `cannot open ${shownAs}: ${String(e)}`);
      }
      if (!this.ide.openTray(n.index, force)) {
        await b.close();
        throw new MediaError(`Device '${n.qdev ?? n.id}' is locked and force was not specified, wait for tray to open and try again`);
      }
      await this.remove(n);
      const d = this.ide.drive(n.index);
      d.setMedium(b);
      this.backends.push(b);
      this.files[n.index] = shownAs;
      d.moveTray(false);
      this.log.info({ drive: n.id, file: shownAs, bytes: b.size }, 'CD-ROM medium inserted');
    } finally {
      done();
    }
  }

  /** Take the medium out (tray open) and close its backend once nothing is in flight on it. */
  private async remove(n: IdeDriveName): Promise<void> {
    const d = this.ide.drive(n.index);
    const old = d.backend;
    if (old === null) return;
    d.setMedium(null);
    this.files[n.index] = null;
    const at = this.backends.indexOf(old);
    if (at >= 0) this.backends.splice(at, 1);
    this.log.info({ drive: n.id }, 'CD-ROM medium removed');
    await d.drained();
    try {
      await old.close();
    } catch (e) {
      this.log.error({ drive: n.id, err: String(e) }, 'closing the old medium failed');
    }
  }
}
