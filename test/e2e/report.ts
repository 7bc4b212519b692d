// Turns the driver's PASS/FAIL/SKIP lines into the side-by-side table and
// build/e2e/results.json. Usage: node --import tsx test/e2e/report.ts
// <lines.txt> <results.json> <wall-seconds> <dms> <scenarios> [log=path ...]
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';

interface Result {
  scenario: string;
  dm: string;
  status: 'PASS' | 'FAIL' | 'SKIP';
  metrics: Record<string, string | number>;
  reason?: string;
}

// Metrics shown side by side: [scenario, key, label].
const TABLE: ReadonlyArray<readonly [string, string, string]> = [
  ['boot', 'seconds', 'boot: xl create to guest init (s)'],
  ['boot', 'kernel_to_init', 'boot: guest kernel to init (s)'],
  ['boot', 'create_to_ready_s', 'boot: xl create to stubdm serving (s)'],
  ['disk', 'read_mbps', 'disk: sequential read O_DIRECT (MB/s)'],
  ['disk', 'write_mbps', 'disk: sequential write O_DIRECT (MB/s)'],
  ['disk', 'limit_read_mbps', 'disk: limit, dom0 reads the image itself (MB/s)'],
  ['disk', 'limit_write_mbps', 'disk: limit, dom0 writes the image itself (MB/s)'],
  ['disk', 'read_of_limit', 'disk: read / limit'],
  ['disk', 'write_of_limit', 'disk: write / limit'],
  ['disk', 'read_vs_qemu', 'disk: read / qemu-xen read'],
  ['disk', 'write_vs_qemu', 'disk: write / qemu-xen write'],
  ['lifecycle', 'create_s', 'lifecycle: xl create (s)'],
  ['lifecycle', 'destroy_s', 'lifecycle: destroy to DM gone (s)'],
  ['dmcrash', 'gone_s', 'dmcrash: DM quit to guest gone (s)'],
  ['net', 'link_s', 'net: e1000 load to link up (s)'],
  ['net', 'ping_ms', 'net: ping guest -> dom0, median of 20 (ms)'],
  ['net', 'tcp_tx_mbps', 'net: TCP guest -> dom0 (MB/s)'],
  ['net', 'tcp_rx_mbps', 'net: TCP dom0 -> guest (MB/s)'],
  ['pxe', 'pxe_s', 'pxe: xl create to guest init over the network (s)'],
  ['boot', 'md5_mbps', 'guest CPU: md5sum of 16 MiB in RAM (MB/s)'],
  ['boot', 'pio_rtt_us', 'ioreq round trip seen by the guest, median of 500 (us)'],
  ['boot', 'dm_cpu_idle', 'DM CPU, guest idle (CPU s per s)'],
  ['disk', 'dm_cpu_disk', 'DM CPU, guest disk I/O (CPU s per s)'],
  ['net', 'dm_cpu_net', 'DM CPU, guest network I/O (CPU s per s)'],
  ['boot', 'dm_rss_mib', 'DM resident memory (MiB)'],
  ['boot', 'ready_s', 'stub domain: kernel start to DM ready (s)'],
  ['boot', 'running_s', 'stub domain: kernel start to state=running (s)'],
  ['boot', 'margin_s', "stub domain: margin left of libxl's 30 s (s)"],
  ['boot', 'stub_mem_used_mib', 'stub domain: memory in use (MiB)'],
  ['boot', 'stubdm_rss_mib', 'stub domain: stubdm RSS (MiB)'],
  ['abuse', 'accesses', 'abuse: hostile guest accesses'],
  ['abuse', 'abuse_s', 'abuse: period (s)'],
  ['abuse', 'dm_survived', 'abuse: device model survived'],
  ['abuse', 'dm_rss_mib', 'abuse: DM peak RSS (MiB)'],
  ['abuse', 'stub_mem_used_mib', 'abuse: stub domain peak memory in use (MiB)'],
  ['abuse', 'fresh_boot', 'abuse: fresh guest after it'],
  ['stubdom', 'node_e0_s', 'stub domain selftest: node -e 0 (s)'],
  ['stubdom', 'sim_ready_s', 'stub domain selftest: stubdm --sim to ready (s)'],
  ['vga', 'match', "vga: text console pixels equal to qemu-xen's (%)"],
  ['vga', 'diff_cells', "vga: text cells unlike qemu-xen's"],
  ['vga', 'mode', 'vga: bochs-drm mode'],
  ['vga', 'vnc_update_ms', 'vga: guest fb write done to VNC client has it (ms)'],
  ['vga', 'vram', 'vga: VRAM (guest pages / ioreq)'],
  ['vga', 'dm_cpu_vnc_idle', 'vga: DM CPU, guest idle, VNC client connected (CPU s per s)'],
  ['vga', 'vncd_cpu_vnc_idle', "vga: stub domain's dom0 VNC QEMU, same window (CPU s per s)"],
  ['vga', 'dm_cpu_idle_novnc', 'vga: DM CPU, guest idle, no VNC client (CPU s per s)'],
  ['vga', 'vnc_idle_vs_qemu_xen', "vga: idle with a VNC client / qemu-xen's"],
];

function parse(text: string): Result[] {
  const out: Result[] = [];
  for (const line of text.split('\n')) {
    const m = /^(PASS|FAIL|SKIP) (\S+) (\S+) ?(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, status, scenario, dm, rest] = m as unknown as [string, Result['status'], string, string, string];
    const metrics: Record<string, string | number> = {};
    if (status === 'PASS') {
      for (const kv of rest.split(/\s+/)) {
        const eq = kv.indexOf('=');
        if (eq <= 0) continue;
        const v = kv.slice(eq + 1);
        metrics[kv.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
      }
      out.push({ scenario, dm, status, metrics });
    } else {
      out.push({ scenario, dm, status, metrics, reason: rest });
    }
  }
  return out;
}

function main(argv: string[]): number {
  const [linesPath, jsonPath, wall, dmList, scenarioList, ...logArgs] = argv;
  if (!linesPath || !jsonPath || !dmList || !scenarioList) {
    console.error('usage: report.ts <lines.txt> <results.json> <wall-s> <dms> <scenarios> [name=path...]');
    return 2;
  }
  const dms = dmList.split(/\s+/).filter(Boolean);
  const scenarios = scenarioList.split(/\s+/).filter(Boolean);
  const results = existsSync(linesPath) ? parse(readFileSync(linesPath, 'utf8')) : [];
  // Every (scenario, dm) under test gets a line: a missing one is a failure.
  for (const dm of dms) {
    for (const scenario of scenarios) {
      if (!results.some((r) => r.dm === dm && r.scenario === scenario)) {
        const r: Result = { scenario, dm, status: 'FAIL', metrics: {}, reason: 'no result (the VM did not finish: see the logs)' };
        results.push(r);
        console.log(`FAIL ${scenario} ${dm} ${r.reason}`);
      }
    }
  }
  const get = (dm: string, scen: string, key: string): string =>
    String(results.find((r) => r.dm === dm && r.scenario === scen && r.status === 'PASS')?.metrics[key] ?? '-');
  const rows = TABLE.filter(([s]) => scenarios.includes(s)).map(([s, k, label]) => [label, ...dms.map((dm) => get(dm, s, k))]);
  const header = ['', ...dms];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log('');
  console.log(fmt(header));
  for (const r of rows) console.log(fmt(r));
  const logs: Record<string, string> = {};
  for (const a of logArgs) {
    const eq = a.indexOf('=');
    if (eq > 0) logs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const failed = results.filter((r) => r.status === 'FAIL').length;
  writeFileSync(jsonPath, JSON.stringify({
    date: new Date().toISOString(),
    // The host the TCG emulation ran on: the benchmark report (npm run report) names it.
    machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}`,
    wallSeconds: Number(wall),
    dms,
    scenarios,
    passed: results.filter((r) => r.status === 'PASS').length,
    failed,
    skipped: results.filter((r) => r.status === 'SKIP').length,
    results,
    logs,
  }, null, 2) + '\n');
  return failed === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
