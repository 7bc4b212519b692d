/**
 * Live counters of the running device model, read on demand (QMP
 * `query-stats`, HMP `info stats`): nothing here runs on the hot path. The
 * counters themselves are plain numbers the hot path increments in state
 * allocated at start: IoreqServer.stats (ioreqs by type, errors), each bus
 * region's `accesses` (by device), IoBus unclaimed reads/writes, each IDE
 * drive's DriveIoStats, each NIC backend's frame counters.
 *
 * The shape is QEMU's query-stats answer for target `vm` (qapi/stats.json
 * StatsResult: provider, qom-path, stats as name/value pairs) with a
 * provider of its own, `stubdm`: QEMU's providers (kvm, cryptodev) do not
 * exist here.
 */
import type { IoBus } from '../core/bus.ts';
import type { BlockStats } from './media.ts';

export interface StatsResult {
  provider: 'stubdm';
  'qom-path': string;
  stats: Array<{ name: string; value: number }>;
}

export interface StatsSources {
  /** IoreqServer.stats: ioreqs by type and the errors met. */
  ioreq: object;
  /** The host's waits in place for a vCPU's next request, if it makes them (IoreqChannel.waitStats). */
  ioreqWait?(): { waits: number; inPlace: number } | undefined;
  pio: IoBus;
  mmio: IoBus;
  blockstats(): BlockStats[];
  /** Each NIC's id and its backend's counters (frames in and out, drops), if it keeps any. */
  nics(): Array<{ id: string; stats: object | undefined }>;
  /** Each serial port's label and the guest bytes its backend dropped, if it counts them. */
  serials(): Array<{ id: string; dropped: number | undefined }>;
  /**
   * Where CPU time went: this process's (process.cpuUsage, microseconds) and,
   * when the host's /proc/stat is readable, the whole kernel's `cpu` line (in
   * USER_HZ ticks). In a stub domain the second is the whole domain, so the
   * difference of two reads says how much of an idle stub's vCPU time is
   * stubdm and how much its kernel and the other processes (e2e vga).
   */
  cpu?(): { process: { user: number; system: number }; procStat: string | null; interrupts?: string | null };
}

/**
 * /proc/stat's `intr` total and `ctxt` (interrupts and context switches since
 * boot, proc(5)): in a stub domain, two reads say how often its idle vCPU
 * woke up.
 */
export function procStatWakeups(text: string | null): Array<{ name: string; value: number }> {
  const out: Array<{ name: string; value: number }> = [];
  for (const line of text?.split('\n') ?? []) {
    const f = line.split(' ', 3);
    if ((f[0] === 'intr' || f[0] === 'ctxt') && Number.isFinite(Number(f[1]))) out.push({ name: f[0], value: Number(f[1]) });
  }
  return out;
}

/**
 * /proc/interrupts as one counter per source: each row's counts summed over
 * the CPUs, named by its last field (the handler's name: timer0, xenbus,
 * vfb, hvc_console, evtchn:node, ...) or its label (LOC, RES, ...); rows of
 * the same name add up. Which source wakes an idle stub domain.
 */
export function procInterrupts(text: string | null): Array<{ name: string; value: number }> {
  const lines = text?.split('\n') ?? [];
  const cpus = (lines[0] ?? '').trim().split(/\s+/).filter((c) => /^CPU\d+$/.test(c)).length;
  if (cpus === 0) return [];
  const sums = new Map<string, number>();
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || !f[0].endsWith(':')) continue;
    let n = 0;
    let i = 1;
    for (; i <= cpus && i < f.length && /^\d+$/.test(f[i]); i++) n += Number(f[i]);
    if (i === 1) continue;
    const label = f[0].slice(0, -1);
    const name = /^\d+$/.test(label) ? (i < f.length ? f[f.length - 1] : label) : label;
    sums.set(name, (sums.get(name) ?? 0) + n);
  }
  return [...sums].map(([name, value]) => ({ name, value }));
}

/** /proc/stat's aggregate `cpu` line as named USER_HZ tick counters (proc(5)); [] when it is not there. */
export function procStatCpu(text: string | null): Array<{ name: string; value: number }> {
  const line = text?.split('\n', 1)[0] ?? '';
  const f = line.split(/\s+/);
  if (f[0] !== 'cpu') return [];
  const names = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'];
  const out: Array<{ name: string; value: number }> = [];
  for (let i = 0; i < names.length; i++) {
    const v = Number(f[i + 1]);
    if (Number.isFinite(v)) out.push({ name: `${names[i]}-ticks`, value: v });
  }
  return out;
}

/** The numeric fields of a counters object, as name/value pairs (anything else is left out). */
function pairs(o: object): Array<{ name: string; value: number }> {
  const out: Array<{ name: string; value: number }> = [];
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number') out.push({ name: k, value: v });
  return out;
}

function busStats(bus: IoBus): StatsResult[] {
  const out: StatsResult[] = [
    { provider: 'stubdm', 'qom-path': `/${bus.kind}`, stats: [{ name: 'unclaimed-reads', value: bus.unclaimedReads }, { name: 'unclaimed-writes', value: bus.unclaimedWrites }] },
  ];
  for (const r of bus.list()) {
    out.push({ provider: 'stubdm', 'qom-path': `/${bus.kind}/${r.name}@0x${r.start.toString(16)}`, stats: [{ name: 'accesses', value: r.accesses }] });
  }
  return out;
}

export function collectStats(src: StatsSources): StatsResult[] {
  const out: StatsResult[] = [{ provider: 'stubdm', 'qom-path': '/ioreq', stats: pairs(src.ioreq) }];
  const wait = src.ioreqWait?.();
  if (wait !== undefined) {
    out.push({ provider: 'stubdm', 'qom-path': '/ioreq/wait', stats: [{ name: 'waits', value: wait.waits }, { name: 'in-place', value: wait.inPlace }] });
  }
  out.push(...busStats(src.pio), ...busStats(src.mmio));
  for (const b of src.blockstats()) out.push({ provider: 'stubdm', 'qom-path': `/block/${b.device}`, stats: pairs(b.stats) });
  for (const n of src.nics()) if (n.stats !== undefined) out.push({ provider: 'stubdm', 'qom-path': `/net/${n.id}`, stats: pairs(n.stats) });
  for (const s of src.serials()) {
    if (s.dropped !== undefined) out.push({ provider: 'stubdm', 'qom-path': `/chardev/${s.id}`, stats: [{ name: 'dropped', value: s.dropped }] });
  }
  const cpu = src.cpu?.();
  if (cpu !== undefined) {
    out.push({ provider: 'stubdm', 'qom-path': '/cpu/process', stats: [{ name: 'user-us', value: cpu.process.user }, { name: 'system-us', value: cpu.process.system }] });
    const k = procStatCpu(cpu.procStat);
    if (k.length > 0) out.push({ provider: 'stubdm', 'qom-path': '/cpu/kernel', stats: k });
    const w = procStatWakeups(cpu.procStat);
    if (w.length > 0) out.push({ provider: 'stubdm', 'qom-path': '/kernel/stat', stats: w });
    const irq = procInterrupts(cpu.interrupts ?? null);
    if (irq.length > 0) out.push({ provider: 'stubdm', 'qom-path': '/kernel/interrupts', stats: irq });
  }
  return out;
}

/** `info stats`: one line per group, `path: name=value ...`. */
export function hmpInfoStats(groups: readonly StatsResult[]): string {
  return groups.map((g) => `${g['qom-path']}: ${g.stats.map((s) => `${s.name}=${s.value}`).join(' ')}\n`).join('');
}
