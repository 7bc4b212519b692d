/**
 * libxl's dm_restrict and device_model_user for a dom0 device model:
 * `-chroot DIR` and `-runas USER` (docs/xen-contract.md §17). The plan is made
 * before anything is opened (the user is looked up while /etc/passwd is still
 * reachable, the directory checked), and applied once every privileged
 * resource is open: chroot first (it needs root), then the user. Accepts
 * `UID:GID` (what libxl passes for its xen-qemuuser-range-base user) or a user
 * name (xen-qemuuser-shared, device_model_user) with its primary group.
 */
import fs from 'node:fs';
import os from 'node:os';
import { loadUnixSock, type UnixSock } from './qmp/unixsock.ts';

export class RunasError extends Error {}

export function resolveRunas(spec: string, passwd = '/etc/passwd'): { uid: number; gid: number } {
  const num = /^([0-9]+):([0-9]+)$/.exec(spec);
  if (num) return { uid: Number(num[1]), gid: Number(num[2]) };
  let text: string;
  try {
    text = fs.readFileSync(passwd, 'utf8');
  } catch (err) {
    throw new RunasError(`-runas ${spec}: cannot read ${passwd}: ${(err as Error).message}`);
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[0] === spec && /^[0-9]+$/.test(f[2]) && /^[0-9]+$/.test(f[3])) {
      return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  }
  throw new RunasError(`-runas ${spec}: no such user (give a user name or UID:GID)`);
}

export interface Confinement {
  chroot: string | null;
  runas: { spec: string; uid: number; gid: number } | null;
}

/**
 * Checks what can be checked before anything opens: the user exists (read
 * now: inside the chroot there is no /etc/passwd), the directory is one.
 */
export function planConfinement(chroot: string | null, runas: string | null, passwd = '/etc/passwd'): Confinement {
  if (chroot !== null) {
    let st: fs.Stats;
    try {
      st = fs.statSync(chroot);
    } catch (e) {
      throw new RunasError(`-chroot ${chroot}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (!st.isDirectory()) throw new RunasError(`-chroot ${chroot}: not a directory`);
  }
  return { chroot, runas: runas === null ? null : { spec: runas, ...resolveRunas(runas, passwd) } };
}

/** chroot(dir) and chdir("/") through the unixsock addon (Node has no chroot). */
export function enterChroot(dir: string, us: Pick<UnixSock, 'chroot'> = loadUnixSock()): void {
  const rc = us.chroot(dir);
  if (rc !== 0) throw new RunasError(`-chroot ${dir}: ${errnoText(-rc)}${-rc === 1 ? ' (chroot needs root: -runas comes after it)' : ''}`);
}

/** Supplementary groups dropped first, then the group, then the user (the order that cannot be undone). */
export function dropPrivileges(id: { spec: string; uid: number; gid: number }, proc: Pick<NodeJS.Process, 'setgroups' | 'setgid' | 'setuid'> = process): void {
  try {
    proc.setgroups?.([id.gid]);
    proc.setgid?.(id.gid);
    proc.setuid?.(id.uid);
  } catch (err) {
    throw new RunasError(`-runas ${id.spec}: cannot switch to uid ${id.uid} gid ${id.gid}: ${(err as Error).message}`);
  }
  // As QEMU checks after its own switch: a process that can become root again has not dropped anything.
  if (id.uid !== 0 && proc.setuid !== undefined) {
    let regained = true;
    try {
      proc.setuid(0);
    } catch {
      regained = false;
    }
    if (regained) throw new RunasError(`-runas ${id.spec}: still able to become root after switching to uid ${id.uid}`);
  }
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([k, v]) => [v, k] as const));

function errnoText(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
