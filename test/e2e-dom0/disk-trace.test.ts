/**
 * dom0's side of the e2e disk scenario's trace (test/e2e/scenarios/disk.sh,
 * E2E_DISK_TRACE), which only a real-Xen run exercises end to end: here its
 * shell functions run in bash against a fake `xl` that answers `info
 * disktrace` with what stubdm prints for a model of ata_piix on the
 * simulator. The flag the guest looks for lands where it looks, the poll
 * dumps once per marker and types a key only where the guest waits, and the
 * PASS line's keys are the dump's summary figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DiskTrace } from '../../src/block/trace.ts';
import { formatDiskTrace, summaryKeys, dmaRequests } from '../../src/devices/ide/trace.ts';
import { createSimHost, simBoard, simClock } from '../../src/sim/index.ts';
import { IoreqServer } from '../../src/ioreq/server.ts';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { IdeController } from '../../src/devices/ide/controller.ts';
import { MemoryBackend } from '../../src/block/memory.ts';
import { BMIBA, IDE_DEVFN, LibataModel } from '../devices/ide/libata.ts';

const SCENARIO = path.resolve('test/e2e/scenarios/disk.sh');

/** What `info disktrace` prints after three 512 KiB reads by the ata_piix model. */
async function sampleDump(): Promise<string> {
  const sim = createSimHost({ ramBytes: 32 << 20 });
  const board = simBoard(sim);
  const trace = new DiskTrace(4096, () => sim.clock.now());
  const ide = IdeController.forBoard(board, [{ kind: 'disk', backend: new MemoryBackend(16 << 20) }], undefined, trace);
  installPcPlatform(board, { ide, ramBytes: 32 << 20 });
  const server = new IoreqServer(sim, board);
  server.addTrace(trace);
  server.start();
  sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMIBA | 1);
  sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005);
  sim.memwrite(0x2000, [0, 0, 0x10, 0, 0, 0, 0, 0x80]); // one 64 KiB entry at 1 MiB
  const m = new LibataModel(sim, { exitMs: 0.25, irqMs: 1, thinkMs: 2 });
  for (let k = 0; k <= 3; k++) {
    m.issueDma(k * 128, 128, false, 0x2000);
    await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
    simClock(sim).advance(1);
    m.dmaInterrupt();
  }
  server.stop();
  const want = new Map(summaryKeys(dmaRequests(trace.events()).filter((r) => !r.write)));
  assert.equal(want.get('reqs'), '4');
  return formatDiskTrace(trace);
}

function sh(dir: string, script: string, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-c', `set -u; . ${JSON.stringify(SCENARIO)}; ${script}`], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, R: `${dir}/results`, RUN_DIR: `${dir}/run`, DM: 'stubdm-dom0', ...env },
  });
}

/** What driver.sh gives the scenarios that these functions use. */
const DRIVER = `
is_stubdom() { case $DM in *-stubdom) return 0 ;; *) return 1 ;; esac; }
marker() { awk -v s="$1" -v k="$2=" '$1 == "E2E" && $2 == s { for (i = 3; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }' "$RUN_DIR/markers" 2>/dev/null; }
`;

test('e2e disk trace: the guest flag, one dump per marker with a key where the guest waits, and the PASS keys from the dumps', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-disktrace-e2e-'));
  try {
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.mkdirSync(path.join(dir, 'run'));
    fs.mkdirSync(path.join(dir, 'results', 'stubdm-dom0'), { recursive: true });
    const dump = path.join(dir, 'dump.txt');
    fs.writeFileSync(dump, await sampleDump());
    // xl: logs its arguments; `info disktrace` answers with the dump (with QMP's \r\n).
    fs.writeFileSync(path.join(dir, 'bin', 'xl'), `#!/bin/sh\necho "$*" >>"${dir}/xl.log"\ncase "$*" in *"info disktrace"*) sed 's/$/\\r/' "${dump}" ;; esac\n`, { mode: 0o755 });
    const img = path.join(dir, 'run', 'data.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 96 << 20);
    const serial = path.join(dir, 'serial');

    // Not traced (no E2E_DISK_TRACE, or qemu-xen): no cfg line, no flag, no keys.
    assert.equal(sh(dir, `${DRIVER} disk_shared_cfg e2e-stubdm-dom0; disk_trace_flag ${img} && echo flagged; disk_trace_keys`), '');
    assert.equal(sh(dir, `${DRIVER} disk_shared_cfg e2e-qemu-xen; disk_trace_flag ${img} && echo flagged; disk_trace_keys`, { DM: 'qemu-xen', E2E_DISK_TRACE: '1' }), '');

    // Traced (a stub domain here: a dom0 stubdm's entry count goes to /run, which this test leaves alone).
    const on = { E2E_DISK_TRACE: '1', DM: 'stubdm-stubdom' };
    fs.mkdirSync(path.join(dir, 'results', 'stubdm-stubdom'));
    assert.equal(sh(dir, `${DRIVER} disk_shared_cfg e2e-stubdm-stubdom; disk_trace_flag ${img} && echo flagged`, on), 'stubdomain_cmdline="stubdm.disk_trace=65536"\nflagged\n');
    assert.equal(fs.readFileSync(img).subarray(80 << 20, (80 << 20) + 14).toString(), 'E2E-DISKTRACE\0', 'where the guest reads it: 80 MiB');
    assert.equal(sh(dir, `${DRIVER} disk_shared_end e2e-stubdm-stubdom; disk_trace_flag ${img} || echo clear`, on), 'clear\n', 'zeroed once the guest is gone');

    // The shared guest's serial as it grows, polled twice at each stage: the poll's state lives in the driver's shell.
    const line = (l: string) => `printf '%s\\r\\n' ${JSON.stringify(l)} >>${serial}`;
    const poll = `disk_shared_poll e2e-stubdm-stubdom ${serial} 7; disk_shared_poll e2e-stubdm-stubdom ${serial} 7`;
    const xlLog = path.join(dir, 'xl.log');
    sh(dir, [`${DRIVER} disk_shared_cfg e2e-stubdm-stubdom >/dev/null; : >${serial}`, poll, line('E2E boot init uptime=1.00'), poll, `cp ${xlLog} ${xlLog}.boot`,
      line('E2E mark disk0'), line('E2E disk-sync read-done'), poll, line('E2E disk-sync write-done'), poll].join('\n'), on);
    assert.deepEqual(fs.readFileSync(`${xlLog}.boot`, 'utf8').trim().split('\n'), ['qemu-monitor-command 7 info disktrace'], 'at init: a dump, no key (the guest does not wait there)');
    assert.deepEqual(fs.readFileSync(xlLog, 'utf8').trim().split('\n'), [
      'qemu-monitor-command 7 info disktrace',
      'qemu-monitor-command 7 info disktrace',
      'qemu-monitor-command 7 sendkey ret',
      'qemu-monitor-command 7 info disktrace',
      'qemu-monitor-command 7 sendkey ret',
    ]);
    const saved = fs.readFileSync(path.join(dir, 'results', 'stubdm-stubdom', 'disktrace.txt'), 'utf8');
    assert.deepEqual(saved.split('\n').filter((l) => l.startsWith('=== ')).map((l) => l.split(' ')[1]), ['boot', 'read-done', 'write-done']);
    assert.ok(!saved.includes('\r'), 'QMP line ends taken out');

    // The PASS keys: ok when the guest got its keys, then the read summary's figures.
    fs.writeFileSync(path.join(dir, 'run', 'markers'), 'E2E disk driver=ata_piix read=ok write=ok read_mbps=1.0 write_mbps=1.0 trace_gate=key\n');
    const keys = sh(dir, `${DRIVER} disk_trace_keys`, on).trim().split(/\s+/);
    const summary = new Map(fs.readFileSync(dump, 'utf8').split('\n').find((l) => l.startsWith('disktrace read: '))!.split(' ').slice(2).map((kv) => kv.split('=') as [string, string]));
    assert.equal(keys[0], 'disktrace=ok');
    for (const k of ['kib', 'ioreqs', 'dm_us', 'gap_ms', 'backend_ms', 'irq_ack_ms', 'req_ms', 'dm_ms']) {
      assert.ok(keys.includes(`trace_rd_${k}=${summary.get(k)}`), `trace_rd_${k}=${summary.get(k)} in ${keys.join(' ')}`);
    }
    assert.ok(!keys.some((k) => k.startsWith('trace_wr_') || k.startsWith('trace_pio_')), 'the sample has no writes and no PIO');
    fs.writeFileSync(path.join(dir, 'run', 'markers'), 'E2E disk driver=ata_piix trace_gate=timeout\n');
    assert.match(sh(dir, `${DRIVER} disk_trace_keys`, on), /^disktrace=failed\(gate-timeout\)\s+trace_rd_kib=64 /);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
