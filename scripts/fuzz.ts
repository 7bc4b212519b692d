/**
 * `npm run fuzz [-- --seed N] [--seconds S | --accesses A | --per-family P] [--epoch E] [--ops K]`:
 * the whole-machine fuzzer (test/fuzz/machine.ts) for as long as asked (with
 * several limits, until the first is reached; --per-family P: until every
 * device family has P accesses).
 * Prints a progress line per epoch, then `name value unit` lines: accesses
 * per device family, epochs, slowest access, peak heap and RSS, defects.
 * Each defect line carries the seed and epoch that replay it
 * (`npm run fuzz -- --seed N --epoch E`). Exit 1 if any defect was found.
 */
import { FAMILIES, fuzzMachine } from '../test/fuzz/machine.ts';

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`fuzz: --${name} needs a non-negative number\n`);
    process.exit(2);
  }
  return v;
}

const seed = arg('seed') ?? (Date.now() & 0x7fffffff);
const seconds = arg('seconds');
const accesses = arg('accesses');
const perFamily = arg('per-family');
const epoch = arg('epoch');
const ops = arg('ops');
process.stdout.write(`fuzz seed ${seed}${epoch !== undefined ? ` epoch ${epoch}` : ''}${seconds !== undefined ? ` for ${seconds} s` : ''}\n`);
const res = await fuzzMachine({
  seed,
  seconds: seconds ?? (accesses === undefined && perFamily === undefined && epoch === undefined ? 60 : undefined),
  accesses,
  perFamily,
  epoch,
  opsPerEpoch: ops,
  progress: (r) => {
    const total = FAMILIES.reduce((n, f) => n + r.accesses[f], 0);
    process.stdout.write(`epoch ${r.epochs} ${Math.round(r.ms / 1000)} s ${total} accesses ${Math.round(total / (r.ms / 1000))}/s defects ${r.defects.length} heap ${r.peakHeapMiB.toFixed(0)} MiB rss ${r.peakRssMiB.toFixed(0)} MiB\n`);
  },
});
for (const f of FAMILIES) process.stdout.write(`fuzz_accesses_${f.replace('-', '_')} ${res.accesses[f]} accesses\n`);
process.stdout.write(`fuzz_vga_pictures ${res.renders} pictures\nfuzz_vga_screendumps ${res.screendumps} screendumps\n`);
process.stdout.write(`fuzz_epochs ${res.epochs} epochs\nfuzz_seconds ${(res.ms / 1000).toFixed(0)} s\nfuzz_slowest_access ${res.slowestMs.toFixed(2)} ms\nfuzz_slowest_picture ${res.slowestPictureMs.toFixed(2)} ms\n`);
process.stdout.write(`fuzz_peak_heap ${res.peakHeapMiB.toFixed(0)} MiB\nfuzz_peak_rss ${res.peakRssMiB.toFixed(0)} MiB\nfuzz_defects ${res.defects.length} defects\n`);
const seen = new Set<string>();
for (const d of res.defects) {
  const key = `${d.family} ${d.what.replace(/0x[0-9a-f]+/g, 'X').replace(/\d+/g, 'N')}`;
  if (seen.has(key)) continue;
  seen.add(key);
  process.stdout.write(`DEFECT seed=${d.seed} epoch=${d.epoch} op=${d.op} family=${d.family}: ${d.what}\n`);
}
process.exit(res.defects.length > 0 ? 1 : 0);
