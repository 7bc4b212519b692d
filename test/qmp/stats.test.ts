/**
 * The live counters through QMP and HMP, against a whole device model on the
 * simulator with libxl's dom0 argv: query-blockstats in the shape libxenstat
 * parses for xentop's VBD columns (device, stats.rd_bytes / wr_bytes /
 * rd_operations / wr_operations), query-stats, `info blockstats`, `info stats`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start } from '../../src/main.ts';
import { connectQmp } from '../helpers/qmp-client.ts';

const SECTOR = 512;
const IDE_DEVFN = (1 << 3) | 1;
const BMDMA = 0xc000;
const ATA_NSECT = 0x1f2, ATA_LBAL = 0x1f3, ATA_LBAM = 0x1f4, ATA_LBAH = 0x1f5, ATA_DEV = 0x1f6, ATA_CMD = 0x1f7;

test('query-blockstats answers what libxenstat reads; query-stats and info stats count ioreqs by type and device', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-stats-'));
  const disk = path.join(dir, 'disk.img');
  fs.writeFileSync(disk, Buffer.alloc(64 * SECTOR));
  const qmp = path.join(dir, 'qmp-libxenstat-1');
  const { config } = await parseArgs([
    '-xen-domid', '1', '-chardev', `socket,id=libxenstat-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxenstat-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim',
    '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  const sim = dm.sim!;
  const c = await connectQmp(qmp);
  try {
    await c.cmd('qmp_capabilities');
    const zero = (await c.cmd('query-blockstats')).return;
    assert.deepEqual(zero.map((b: any) => [b.device, b.stats.rd_bytes, b.stats.wr_operations]), [['ide0-hd0', 0, 0]]);

    // A guest's READ DMA of 2 sectors, WRITE DMA of 1, FLUSH CACHE.
    sim.pciConfigWrite(IDE_DEVFN, 0x20, 4, BMDMA | 1);
    sim.pciConfigWrite(IDE_DEVFN, 0x04, 2, 0x0005);
    sim.memwrite(0x10000, [0x00, 0x00, 0x02, 0x00, 0x00, 0x04, 0x00, 0x80]);
    sim.outl(BMDMA + 4, 0x10000);
    sim.outb(ATA_NSECT, 2);
    sim.outb(ATA_LBAL, 5);
    sim.outb(ATA_LBAM, 0);
    sim.outb(ATA_LBAH, 0);
    sim.outb(ATA_DEV, 0xe0);
    sim.outb(ATA_CMD, 0xc8);
    sim.outb(BMDMA, 0x09);
    await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
    sim.inb(ATA_CMD);
    sim.outb(BMDMA, 0x00);
    sim.memwrite(0x10000, [0x00, 0x00, 0x03, 0x00, 0x00, 0x02, 0x00, 0x80]);
    sim.outb(ATA_NSECT, 1);
    sim.outb(ATA_LBAL, 9);
    sim.outb(ATA_DEV, 0xe0);
    sim.outb(ATA_CMD, 0xca);
    sim.outb(BMDMA, 0x01);
    await sim.waitFor(() => sim.isaIrqLevel(14) === 1);
    sim.inb(ATA_CMD);
    sim.outb(BMDMA, 0x00);
    sim.outb(ATA_CMD, 0xe7);
    await sim.waitFor(() => (sim.inb(0x3f6) & 0x80) === 0);

    // libxenstat: return[i].device, return[i].stats.{rd_bytes,wr_bytes,rd_operations,wr_operations} as integers.
    const [b] = (await c.cmd('query-blockstats')).return;
    assert.equal(b.device, 'ide0-hd0');
    assert.deepEqual(
      [b.stats.rd_bytes, b.stats.wr_bytes, b.stats.rd_operations, b.stats.wr_operations, b.stats.flush_operations, b.stats.wr_highest_offset, b.stats.failed_operations],
      [2 * SECTOR, SECTOR, 1, 1, 1, 10 * SECTOR, 0],
    );
    // ...then query-block's inserted.file, matched against the qdisk backend's params in xenstore.
    assert.equal((await c.cmd('query-block')).return[0].inserted.file, disk);

    const hmp = async (line: string): Promise<string> => (await c.cmd('human-monitor-command', { 'command-line': line })).return as string;
    assert.equal(
      await hmp('info blockstats'),
      `ide0-hd0: rd_bytes=${2 * SECTOR} wr_bytes=${SECTOR} rd_operations=1 wr_operations=1 flush_operations=1 wr_highest_offset=${10 * SECTOR} failed_operations=0\r\n`,
    );

    const stats = (await c.cmd('query-stats', { target: 'vm' })).return as Array<{ provider: string; 'qom-path': string; stats: Array<{ name: string; value: number }> }>;
    const get = (p: string, n: string): number | undefined => stats.find((g) => g['qom-path'] === p)?.stats.find((s) => s.name === n)?.value;
    assert.ok(stats.every((g) => g.provider === 'stubdm'));
    // Every outb/inb/outl above was one PIO ioreq; the PCI config writes were two of their own type.
    assert.ok(get('/ioreq', 'pio')! >= 20, `pio ${get('/ioreq', 'pio')}`);
    assert.equal(get('/ioreq', 'pciConfig'), 2);
    const ide = stats.find((g) => g['qom-path'].startsWith('/pio/') && g['qom-path'].endsWith('@0x1f0'));
    assert.ok(ide !== undefined, `an IDE command-block region in ${stats.map((g) => g['qom-path']).join(' ')}`);
    assert.equal(ide.stats[0].value, 13, "the 13 command-block accesses above, each one ioreq");
    assert.equal(get('/block/ide0-hd0', 'rd_operations'), 1);
    // Other targets and providers: nothing, as QEMU answers for a provider with nothing to say; a bad target is an error.
    assert.deepEqual((await c.cmd('query-stats', { target: 'vcpu' })).return, []);
    assert.deepEqual((await c.cmd('query-stats', { target: 'vm', providers: [{ provider: 'kvm' }] })).return, []);
    assert.equal((await c.cmd('query-stats', { target: 'moon' })).error.class, 'GenericError');
    const text = await hmp('info stats');
    assert.match(text, /^\/ioreq: events=\d+ .*pio=\d+/m);
    assert.match(text, /^\/block\/ide0-hd0: rd_bytes=1024 /m);
    // Where CPU time went: this process (cpuUsage, monotonic) and, on Linux, the kernel's cpu line.
    const cpu0 = get('/cpu/process', 'user-us')! + get('/cpu/process', 'system-us')!;
    assert.ok(cpu0 > 0, `process CPU ${cpu0} us`);
    if (fs.existsSync('/proc/stat')) {
      assert.ok(get('/cpu/kernel', 'idle-ticks')! > 0, 'the kernel cpu line');
      assert.ok(get('/kernel/stat', 'ctxt')! > 0, "the kernel's context switches");
    }
    if (fs.existsSync('/proc/interrupts')) assert.match(text, /^\/kernel\/interrupts: \S+=\d+/m);
    assert.match(text, /^\/cpu\/process: user-us=\d+ system-us=\d+$/m);
  } finally {
    c.close();
    await dm.shutdown('test');
  }
});
