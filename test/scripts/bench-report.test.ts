// The benchmark report (scripts/bench-report.ts) on a results.json in the
// format test/e2e/report.ts writes: fixtures/e2e-results.json was made by
// report.ts itself from synthetic PASS/FAIL lines (four device models, one
// FAIL), so its figures are made up and only the report's shape is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadResults, markdown, renderSvg, rowCells, ROWS } from '../../scripts/bench-report.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/e2e-results.json', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../../scripts/bench-report.ts', import.meta.url));
const FOUR = ['qemu-xen', 'stubdm-dom0', 'stubdm-stubdom', 'qemu-stubdom'];
const row = (key: string) => ROWS.find((r) => r.key === key)!;

test('the table has the four device models as columns, figures and ratios to the baseline', () => {
  const r = loadResults(FIXTURE);
  const md = markdown(r, 'e2e.svg');
  const header = md.split('\n').find((l) => l.startsWith('| figure '))!;
  assert.deepEqual(header.split('|').map((c) => c.trim()).filter(Boolean).slice(4), FOUR);
  // boot 160 s for qemu-xen, 140 s for stubdm-dom0: 0.88 of it
  assert.match(md, /\| boot: xl create to guest init \| s \| lower \| qemu-xen \| 160 \| 140 \(0\.88x\) \| 170 \(1\.06x\) \| 180 \(1\.13x\) \|/);
  // the stub-only row is taken against qemu-stubdom; dom0 columns have no figure
  assert.match(md, /\| stub domain: memory in use \| MiB \| lower \| qemu-stubdom \| - \| - \| 70\.0 \(0\.78x\) \| 90\.0 \|/);
  // qemu-stubdom's disk FAILed: no figure, and the failure is listed
  assert.match(md, /\| disk: sequential read, O_DIRECT \| MB\/s \| higher \| qemu-xen \| 20\.0 \| 10\.0 \(0\.50x\) \| 5\.00 \(0\.25x\) \| - \|/);
  assert.match(md, /- disk qemu-stubdom: guest read a wrong pattern/);
  assert.match(md, /\| DM resident memory \| MiB \| lower \| qemu-xen \| 60\.0 \| 50\.0 \(0\.83x\) \| 48\.0 \(0\.80x\) \| 55\.0 \(0\.92x\) \|/);
  assert.doesNotMatch(md, /xl save/);
  assert.match(md, /2026-01-01T00:00:00\.000Z on synthetic figures/);
  assert.match(md, /only the ratios between columns carry over/);
  assert.match(md, /!\[[^\]]*\]\(e2e\.svg\)/);
});

test('rowCells: ratio is value over the baseline, undefined where either is missing', () => {
  const r = loadResults(FIXTURE);
  const cpu = rowCells(r, row('dm_cpu_net'));
  assert.deepEqual(cpu.map((c) => c.dm), FOUR);
  assert.equal(cpu[0]!.ratio, 1);
  assert.ok(Math.abs(cpu[2]!.ratio! - 0.7 / 0.3) < 1e-9);
  const disk = rowCells(r, row('dm_cpu_disk'));
  assert.equal(disk[3]!.value, undefined);
  assert.equal(disk[3]!.ratio, undefined);
  const mem = rowCells(r, row('stub_mem_used_mib'));
  assert.equal(mem[0]!.value, undefined);
  assert.equal(mem[3]!.ratio, 1);
});

test('the SVG chart is drawn headless with a bar panel per figure and the four device models', async () => {
  const r = loadResults(FIXTURE);
  const svg = await renderSvg(r);
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  for (const dm of FOUR) assert.ok(svg.includes(`>${dm}</text>`), `${dm} is a label`);
  assert.ok(svg.includes('DM CPU, guest idle (CPU s/s, lower is better)'));
  assert.ok(svg.includes('140 (0.88x qemu-xen)'));
  assert.ok(svg.includes('synthetic figures for the unit test'));
  // one bar per figure present: 15 rows (the run has no saverestore) x 4
  // device models, minus the 3 that qemu-stubdom's failed disk lacks (read,
  // write, DM CPU) and the 3 stub-domain rows x 2 dom0 columns
  const bars = svg.match(/<path aria-label="[^"]*" role="graphics-symbol" aria-roledescription="bar"/g) ?? [];
  assert.equal(bars.length, 15 * 4 - 3 - 3 * 2);
  assert.ok(!svg.includes('xl save'), 'no saverestore panel: the run did not include it');
});

test('npm run report writes e2e.md and e2e.svg; a bad input is one clear line and exit 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  try {
    const ok = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, FIXTURE, dir], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(readFileSync(join(dir, 'e2e.md'), 'utf8'), /\| qemu-xen \| stubdm-dom0 \| stubdm-stubdom \| qemu-stubdom \|/);
    assert.match(readFileSync(join(dir, 'e2e.svg'), 'utf8'), /<svg /);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ hello: 1 }));
    const no = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, bad, dir], { encoding: 'utf8' });
    assert.equal(no.status, 1);
    assert.equal(no.stderr.trim().split('\n').length, 1);
    assert.match(no.stderr, /is not an e2e results file/);
    const usage = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, '--nope'], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
