/**
 * Top functions of a V8 .cpuprofile (node --cpu-prof), e.g. the one an e2e
 * run leaves with E2E_STUBDM_NODE_ARGS="--cpu-prof ...":
 *
 *   node --import tsx scripts/cpuprofile-top.ts FILE [N] [FROM_S TO_S]
 *
 * Prints `samples self_ms name` per function (self time, most first), and
 * the busy share (everything but "(idle)", i.e. node not blocked in epoll).
 * Under TCG dom0 can be descheduled between two samples: a gap longer than
 * 3 sampling intervals is counted as one interval so it does not land on
 * whatever function happened to run before it. FROM_S/TO_S keep the samples
 * in that window (seconds from the profile's start).
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, nArg, fromArg, toArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuprofile-top.ts FILE.cpuprofile [N] [FROM_S TO_S]');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const top = Number(nArg ?? 25);
const from = fromArg === undefined ? -Infinity : Number(fromArg) * 1e6;
const to = toArg === undefined ? Infinity : Number(toArg) * 1e6;

const name = new Map<number, string>();
for (const n of p.nodes) {
  const f = n.callFrame;
  const where = f.url ? ` ${f.url.split('/').pop()}:${f.lineNumber + 1}` : '';
  name.set(n.id, `${f.functionName || '(anonymous)'}${where}`);
}
const deltas = p.timeDeltas.slice(1).filter((d) => d > 0).sort((a, b) => a - b);
const interval = deltas.length ? deltas[Math.floor(deltas.length / 2)] : 1000;

const count = new Map<string, number>();
const self = new Map<string, number>();
let t = 0;
let samples = 0;
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i] ?? 0;
  if (t < from || t >= to) continue;
  const k = name.get(p.samples[i]) ?? '?';
  const d = Math.min(p.timeDeltas[i + 1] ?? interval, 3 * interval);
  count.set(k, (count.get(k) ?? 0) + 1);
  self.set(k, (self.get(k) ?? 0) + d);
  samples++;
  total += d;
}
const idle = self.get('(idle)') ?? 0;
console.log(`samples ${samples} interval ${(interval / 1000).toFixed(1)} ms time ${(total / 1e6).toFixed(1)} s busy ${((total - idle) / 1e6).toFixed(1)} s`);
for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${String(count.get(k)).padStart(7)} ${(ms / 1000).toFixed(0).padStart(8)} ${k}`);
}
