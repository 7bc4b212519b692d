/**
 * QEMU's fd sets (qapi/misc.json add-fd, remove-fd, query-fdsets): numbered
 * sets of file descriptors the monitor received, which a file name
 * `/dev/fdset/<id>` then stands for. libxl sends `add-fd` with the save file
 * attached (SCM_RIGHTS) and names the returned set in
 * `xen-save-devices-state` (docs/xen-contract.md §11); in a stub domain the
 * set 1 is the save console, added on the command line (`-add-fd`, §12).
 *
 * Bounds: MAX_FDSETS sets of MAX_FDS_PER_SET descriptors. A descriptor added
 * over a QMP connection belongs to that connection and is closed when it
 * closes (libxl adds, saves and disconnects), unless it came from the
 * command line.
 */
export const MAX_FDSETS = 64;
export const MAX_FDS_PER_SET = 16;
/** Longest `opaque` kept: a format name, ':' and a PATH_MAX path (what libxl's cd-insert sends). */
export const MAX_OPAQUE = 4096 + 32;
/** Set ids as QEMU takes them: a non-negative int64; we keep them to 31 bits. */
export const MAX_FDSET_ID = 0x7fffffff;

export class FdSetError extends Error {}

interface Entry {
  readonly fd: number;
  readonly opaque: string | null;
  /** The QMP session that added it (closed with it), or null (command line: kept). */
  readonly owner: object | null;
}

export type FdSetInfo = { 'fdset-id': number; fds: Array<{ fd: number; opaque?: string }> };

const FDSET_PATH = /^\/dev\/fdset\/(0|[1-9][0-9]{0,9})$/;

/** `/dev/fdset/<id>` -> id; anything else -> null (a plain path). Throws for a malformed fdset name. */
export function parseFdsetPath(name: string): number | null {
  if (!name.startsWith('/dev/fdset/')) return null;
  const m = FDSET_PATH.exec(name);
  const id = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(id) || id > MAX_FDSET_ID) throw new FdSetError(`bad fd set name '${name}'`);
  return id;
}

export class FdSets {
  private readonly sets = new Map<number, Entry[]>();

  constructor(private readonly closeFd: (fd: number) => void) {}

  /**
   * Put `fd` into set `id` (or the lowest free id when null). Returns the set
   * id. The caller hands over ownership of fd: on error it is the caller's to close.
   */
  add(fd: number, id: number | null, opaque: string | null, owner: object | null): number {
    if (!Number.isInteger(fd) || fd < 0) throw new FdSetError(`bad file descriptor ${fd}`);
    if (id !== null && (!Number.isInteger(id) || id < 0 || id > MAX_FDSET_ID)) throw new FdSetError(`fdset-id ${id} is out of range`);
    // xl cd-insert sends "<format>:<image path>" here: room for a PATH_MAX path.
    if (opaque !== null && opaque.length > MAX_OPAQUE) throw new FdSetError(`opaque is longer than ${MAX_OPAQUE} characters`);
    let set = id === null ? undefined : this.sets.get(id);
    if (set === undefined) {
      if (this.sets.size >= MAX_FDSETS) throw new FdSetError(`too many fd sets (at most ${MAX_FDSETS})`);
      if (id === null) {
        id = 0;
        while (this.sets.has(id)) id++;
      }
      set = [];
      this.sets.set(id, set);
    }
    if (set.length >= MAX_FDS_PER_SET) throw new FdSetError(`fd set ${id} is full (at most ${MAX_FDS_PER_SET} descriptors)`);
    if (set.some((e) => e.fd === fd)) throw new FdSetError(`fd ${fd} is already in fd set ${id}`);
    set.push({ fd, opaque, owner });
    return id!;
  }

  /** remove-fd: one descriptor of the set, or the whole set. Closes what it removes. */
  remove(id: number, fd: number | null): void {
    const set = this.sets.get(id);
    const hit = set === undefined ? [] : fd === null ? set.slice() : set.filter((e) => e.fd === fd);
    if (hit.length === 0) {
      throw new FdSetError(fd === null ? `File descriptor named 'fdset-id:${id}' not found` : `File descriptor named 'fdset-id:${id}, fd:${fd}' not found`);
    }
    for (const e of hit) this.drop(id, e);
  }

  query(): FdSetInfo[] {
    return [...this.sets.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, set]) => ({
        'fdset-id': id,
        fds: set.map((e) => (e.opaque === null ? { fd: e.fd } : { fd: e.fd, opaque: e.opaque })),
      }));
  }

  /**
   * A descriptor of set `id` that allows `want` (QEMU's qemu_open of
   * /dev/fdset/N matches the access mode the same way). `accessMode(fd)` is
   * O_ACCMODE: 0 read-only, 1 write-only, 2 read-write.
   */
  find(id: number, want: 'read' | 'write', accessMode: (fd: number) => number): number {
    const set = this.sets.get(id);
    if (set === undefined || set.length === 0) throw new FdSetError(`fd set ${id} does not exist`);
    for (const e of set) {
      let mode: number;
      try {
        mode = accessMode(e.fd);
      } catch {
        continue;
      }
      if (mode === 2 || (want === 'read' && mode === 0) || (want === 'write' && mode === 1)) return e.fd;
    }
    throw new FdSetError(`fd set ${id} has no descriptor open for ${want === 'read' ? 'reading' : 'writing'}`);
  }

  /** A QMP connection closed: close what it added. */
  dropOwner(owner: object): void {
    for (const [id, set] of [...this.sets.entries()]) for (const e of set.slice()) if (e.owner === owner) this.drop(id, e);
  }

  /** Teardown. */
  closeAll(): void {
    for (const [id, set] of [...this.sets.entries()]) for (const e of set.slice()) this.drop(id, e);
  }

  private drop(id: number, e: Entry): void {
    const set = this.sets.get(id)!;
    set.splice(set.indexOf(e), 1);
    if (set.length === 0) this.sets.delete(id);
    try {
      this.closeFd(e.fd);
    } catch {
      // already closed
    }
  }
}
