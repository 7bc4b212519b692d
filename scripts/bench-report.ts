/**
 * The benchmark report of an e2e run (issue #16): a markdown table and an SVG
 * chart comparing the device models side by side, from the results.json that
 * test/e2e/report.ts writes.
 *
 *   npm run report [-- RESULTS.json [OUT-DIR]]
 *
 * Defaults: build/e2e/results.json -> docs/bench/e2e.md + docs/bench/e2e.svg.
 * Everything in an e2e run is emulated by QEMU's TCG on a small host, so the
 * absolute figures mean little; the report says so and gives each figure's
 * ratio to the baseline device model next to it.
 *
 * The chart is drawn by vega-lite + vega (the Vega project's declarative
 * grammar; `View.toSVG()` renders headless in Node with no canvas or other
 * native module), so this file only says what to draw.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as vegaParse, View } from 'vega';
import { compile } from 'vega-lite';

export interface RunResult {
  scenario: string;
  dm: string;
  status: 'PASS' | 'FAIL' | 'SKIP';
  metrics: Record<string, string | number>;
  reason?: string;
}
export interface Results {
  date: string;
  machine?: string;
  wallSeconds: number;
  dms: string[];
  scenarios: string[];
  passed: number;
  failed: number;
  skipped: number;
  results: RunResult[];
}

/** One compared figure: where it is on the PASS lines and which way is better. */
export interface Row {
  scenario: string;
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  /** The device model the ratio is taken against (qemu-xen unless it has no such figure). */
  baseline: string;
}

// The rows issue #16 compares on: start-up, disk, network, the guest's CPU,
// the DM's CPU, memory and save/restore (rows of scenarios the run did not
// include are left out). Stub-domain-only rows are taken against
// qemu-stubdom, the peer stubdm-stubdom replaces.
export const ROWS: readonly Row[] = [
  { scenario: 'boot', key: 'seconds', label: 'boot: xl create to guest init', unit: 's', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'lifecycle', key: 'create_s', label: 'xl create', unit: 's', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'disk', key: 'read_mbps', label: 'disk: sequential read, O_DIRECT', unit: 'MB/s', better: 'higher', baseline: 'qemu-xen' },
  { scenario: 'disk', key: 'write_mbps', label: 'disk: sequential write, O_DIRECT', unit: 'MB/s', better: 'higher', baseline: 'qemu-xen' },
  { scenario: 'net', key: 'tcp_tx_mbps', label: 'net: TCP guest -> dom0', unit: 'MB/s', better: 'higher', baseline: 'qemu-xen' },
  { scenario: 'net', key: 'tcp_rx_mbps', label: 'net: TCP dom0 -> guest', unit: 'MB/s', better: 'higher', baseline: 'qemu-xen' },
  { scenario: 'net', key: 'ping_ms', label: 'net: ping guest -> dom0, median', unit: 'ms', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'boot', key: 'md5_mbps', label: 'guest CPU: md5sum in RAM', unit: 'MB/s', better: 'higher', baseline: 'qemu-xen' },
  { scenario: 'boot', key: 'pio_rtt_us', label: 'ioreq round trip (guest PIO read)', unit: 'us', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'boot', key: 'dm_cpu_idle', label: 'DM CPU, guest idle', unit: 'CPU s/s', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'disk', key: 'dm_cpu_disk', label: 'DM CPU, guest disk I/O', unit: 'CPU s/s', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'net', key: 'dm_cpu_net', label: 'DM CPU, guest network I/O', unit: 'CPU s/s', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'boot', key: 'dm_rss_mib', label: 'DM resident memory', unit: 'MiB', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'boot', key: 'stub_mem_used_mib', label: 'stub domain: memory in use', unit: 'MiB', better: 'lower', baseline: 'qemu-stubdom' },
  { scenario: 'boot', key: 'ramdisk_mib', label: 'stub domain: ramdisk', unit: 'MiB', better: 'lower', baseline: 'qemu-stubdom' },
  { scenario: 'boot', key: 'ready_s', label: 'stub domain: kernel start to DM ready', unit: 's', better: 'lower', baseline: 'qemu-stubdom' },
  { scenario: 'saverestore', key: 'save_s', label: 'xl save, mean', unit: 's', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'saverestore', key: 'restore_s', label: 'xl restore, mean', unit: 's', better: 'lower', baseline: 'qemu-xen' },
  { scenario: 'saverestore', key: 'migrate_s', label: 'xl migrate to this host, mean', unit: 's', better: 'lower', baseline: 'qemu-xen' },
];

/** The run's devices in the harness's order, the four issue #16 names first. */
const DM_ORDER = ['qemu-xen', 'stubdm-dom0', 'stubdm-stubdom', 'qemu-stubdom'];

export const CAVEAT =
  'Everything runs under QEMU TCG (Xen, dom0, the stub domains and the guests are emulated on a 2-core host), ' +
  'so the absolute figures are many times slower than on hardware: only the ratios between columns carry over.';

export function orderedDms(r: Results): string[] {
  const known = DM_ORDER.filter((d) => r.dms.includes(d));
  return [...known, ...r.dms.filter((d) => !DM_ORDER.includes(d))];
}

/** A PASS line's numeric figure, or undefined (no PASS, no key, or not a number). */
export function figure(r: Results, dm: string, scenario: string, key: string): number | undefined {
  const v = r.results.find((x) => x.dm === dm && x.scenario === scenario && x.status === 'PASS')?.metrics[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export interface Cell {
  dm: string;
  value?: number;
  /** value / baseline's value: above 1 is better for 'higher' rows, below 1 for 'lower' ones */
  ratio?: number;
}
export function rowCells(r: Results, row: Row): Cell[] {
  const base = figure(r, row.baseline, row.scenario, row.key);
  return orderedDms(r).map((dm) => {
    const value = figure(r, dm, row.scenario, row.key);
    const ratio = value !== undefined && base !== undefined && base !== 0 ? value / base : undefined;
    return { dm, value, ratio };
  });
}

function fmt(v: number): string {
  // Three significant figures at most: TCG's run-to-run spread is larger.
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
}

export function markdown(r: Results, svgName: string): string {
  const dms = orderedDms(r);
  const lines: string[] = [];
  lines.push('# e2e benchmark: the device models side by side', '');
  lines.push(`Run of ${r.date} on ${r.machine ?? 'an unrecorded machine'}; ${r.wallSeconds} s wall, ` +
    `${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped (scenarios: ${r.scenarios.join(' ')}).`, '');
  lines.push(`**${CAVEAT}**`, '');
  lines.push(`![the device models compared, one panel per figure](${svgName})`, '');
  lines.push('Each cell: the figure, and in parentheses its ratio to the row\'s baseline. "-": no figure ' +
    '(the scenario did not pass, was skipped, or does not apply).', '');
  lines.push(`| figure | unit | better | baseline | ${dms.join(' | ')} |`);
  lines.push(`|---|---|---|---|${dms.map(() => '---:').join('|')}|`);
  for (const row of ROWS) {
    if (!r.scenarios.includes(row.scenario)) continue;
    const cells = rowCells(r, row).map((c) =>
      c.value === undefined ? '-' : c.ratio === undefined || c.dm === row.baseline ? fmt(c.value) : `${fmt(c.value)} (${fmt(c.ratio)}x)`);
    lines.push(`| ${row.label} | ${row.unit} | ${row.better} | ${row.baseline} | ${cells.join(' | ')} |`);
  }
  const failed = r.results.filter((x) => x.status === 'FAIL');
  if (failed.length > 0) {
    lines.push('', 'Failed in this run:', '');
    for (const f of failed) lines.push(`- ${f.scenario} ${f.dm}: ${(f.reason ?? '').slice(0, 200)}`);
  }
  return lines.join('\n') + '\n';
}

/** The vega-lite spec: one panel per figure (own x scale), a bar per device model. */
export function chartSpec(r: Results): object {
  const dms = orderedDms(r);
  const rows = ROWS.filter((row) => r.scenarios.includes(row.scenario));
  const values: Array<Record<string, string | number>> = [];
  for (const row of rows) {
    const panel = `${row.label} (${row.unit}, ${row.better} is better)`;
    for (const c of rowCells(r, row)) {
      if (c.value === undefined) continue;
      const ratio = c.ratio === undefined || c.dm === row.baseline ? '' : ` (${fmt(c.ratio)}x ${row.baseline})`;
      values.push({ panel, dm: c.dm, value: c.value, text: `${fmt(c.value)}${ratio}` });
    }
  }
  const panels = rows.map((row) => `${row.label} (${row.unit}, ${row.better} is better)`);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `stubdm e2e benchmark: ${dms.length} device models`,
      subtitle: [`${r.date}, ${r.machine ?? 'machine not recorded'}`,
        'All under QEMU TCG: absolute figures are slow, only the ratios between bars carry over.'],
      anchor: 'start',
    },
    data: { values },
    facet: {
      row: {
        field: 'panel', type: 'nominal', sort: panels, title: null,
        header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top', labelFontWeight: 'bold' },
      },
    },
    spacing: 6,
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 360,
      height: { step: 14 },
      encoding: {
        y: { field: 'dm', type: 'nominal', sort: dms, title: null, scale: { domain: dms } },
        x: { field: 'value', type: 'quantitative', title: null, axis: { labels: false, ticks: false, grid: false, domain: false } },
      },
      layer: [
        { mark: 'bar', encoding: { color: { field: 'dm', type: 'nominal', sort: dms, scale: { domain: dms }, legend: null } } },
        { mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 }, encoding: { text: { field: 'text' } } },
      ],
    },
  };
}

export async function renderSvg(r: Results): Promise<string> {
  const vg = compile(chartSpec(r) as Parameters<typeof compile>[0]).spec;
  const view = new View(vegaParse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Reads and checks results.json: one clear error instead of a TypeError later. */
export function loadResults(path: string): Results {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message} (run the e2e first: sudo npm run e2e)`);
  }
  const r = raw as Partial<Results>;
  if (typeof r !== 'object' || r === null || !Array.isArray(r.results) || !Array.isArray(r.dms) || !Array.isArray(r.scenarios) ||
    typeof r.date !== 'string') {
    throw new Error(`${path} is not an e2e results file (test/e2e/report.ts writes one: date, dms, scenarios, results)`);
  }
  return r as Results;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length > 2 || argv.some((a) => a.startsWith('-'))) {
    console.error('usage: npm run report [-- RESULTS.json [OUT-DIR]]  (defaults: build/e2e/results.json docs/bench)');
    return 2;
  }
  const [input = 'build/e2e/results.json', outDir = 'docs/bench'] = argv;
  let r: Results;
  try {
    r = loadResults(input);
  } catch (e) {
    console.error(`report: ${(e as Error).message}`);
    return 1;
  }
  mkdirSync(outDir, { recursive: true });
  const svgPath = join(outDir, 'e2e.svg');
  const mdPath = join(outDir, 'e2e.md');
  writeFileSync(svgPath, await renderSvg(r));
  writeFileSync(mdPath, markdown(r, relative(dirname(mdPath), svgPath)));
  console.log(`report: ${mdPath} and ${svgPath} from ${input} (${r.date}, ${orderedDms(r).join(' ')})`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
