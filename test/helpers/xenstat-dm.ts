/**
 * A whole device model on the simulator with libxl's two dom0 monitors
 * (libxl-cmd and libxenstat-cmd, docs/xen-contract.md §11c) and one IDE disk
 * the guest has read READ_SECTORS sectors of, by PIO: what xentop's VBD
 * columns are read from. Shut down and removed when the test ends.
 */
import type { TestContext } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import { start, type Dm } from '../../src/main.ts';
import { CMD_READ_SECTORS, ST_BSY, ST_DRQ } from '../../src/devices/ide/regs.ts';

export const SECTOR = 512;
export const READ_SECTORS = 2;
const ATA_DATA = 0x1f0, ATA_NSECT = 0x1f2, ATA_LBAL = 0x1f3, ATA_LBAM = 0x1f4, ATA_LBAH = 0x1f5, ATA_DEV = 0x1f6, ATA_CMD = 0x1f7;
const ATA_ALTSTATUS = 0x3f6;

export interface XenstatDm {
  dm: Dm;
  /** The libxenstat socket, qmp-libxenstat-1. */
  qmp: string;
  /** The disk image: query-block's inserted.file. */
  disk: string;
}

export async function startXenstatDm(t: TestContext): Promise<XenstatDm> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stubdm-xenstat-'));
  const disk = path.join(dir, 'disk.img');
  fs.writeFileSync(disk, Buffer.alloc(64 * SECTOR));
  const qmp = path.join(dir, 'qmp-libxenstat-1');
  const { config } = await parseArgs([
    '-xen-domid', '1',
    '-chardev', `socket,id=libxl-cmd,path=${path.join(dir, 'qmp-libxl-1')},server=on,wait=off`, '-mon', 'chardev=libxl-cmd,mode=control',
    '-chardev', `socket,id=libxenstat-cmd,path=${qmp},server=on,wait=off`, '-mon', 'chardev=libxenstat-cmd,mode=control',
    '-serial', 'null', '-machine', 'xenfv', '-m', '16', '--sim',
    '-drive', `file=${disk},if=ide,index=0,media=disk,format=raw,cache=writeback`,
  ]);
  const dm = await start(config, { log: pino({ level: 'silent' }), signals: false });
  t.after(async () => {
    await dm.shutdown('test');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const sim = dm.sim!;
  sim.outb(ATA_NSECT, READ_SECTORS);
  sim.outb(ATA_LBAL, 3);
  sim.outb(ATA_LBAM, 0);
  sim.outb(ATA_LBAH, 0);
  sim.outb(ATA_DEV, 0xe0);
  sim.outb(ATA_CMD, CMD_READ_SECTORS);
  for (let s = 0; s < READ_SECTORS; s++) {
    await sim.waitFor(() => (sim.inb(ATA_ALTSTATUS) & (ST_BSY | ST_DRQ)) === ST_DRQ);
    for (let w = 0; w < SECTOR / 2; w++) sim.inw(ATA_DATA);
  }
  return { dm, qmp, disk };
}
