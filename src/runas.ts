/**
 * -runas (libxl's dm_restrict / device_model_user): drop to an unprivileged
 * user once every privileged resource is open, as QEMU does. Accepts
 * `UID:GID` (what libxl passes for its user range) or a user name from
 * /etc/passwd (its primary group).
 */
import fs from 'node:fs';

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

/** Supplementary groups dropped first, then the group, then the user (the order that cannot be undone). */
export function dropPrivileges(spec: string): { uid: number; gid: number } {
  const id = resolveRunas(spec);
  try {
    process.setgroups?.([id.gid]);
    process.setgid?.(id.gid);
    process.setuid?.(id.uid);
  } catch (err) {
    throw new RunasError(`-runas ${spec}: cannot switch to uid ${id.uid} gid ${id.gid}: ${(err as Error).message}`);
  }
  return id;
}
