/**
 * The chipset functions register by register. Sources cited per value:
 * [FX] Intel 290549 82440FX datasheet §3.2; [SB] Intel 82371SB (PIIX3)
 * datasheet; [AB] Intel 82371AB (PIIX4) datasheet; [Q] QEMU (hw/pci-host/
 * i440fx.c, hw/isa/piix.c, hw/ide/piix.c, hw/acpi/piix4.c,
 * hw/i386/xen/xen_platform.c, tests/qtest/i440fx-test.c); [HVM]
 * xen tools/firmware/hvmloader/pci.c; [L] Linux platform-pci-unplug.c.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { restoreDevice, StateError } from '../../src/core/device.ts';
import { SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT } from '../../src/core/host.ts';
import type { IoHandler } from '../../src/core/io.ts';
import type { PciFunction } from '../../src/pci/bus.ts';
import { PciConfig } from '../../src/pci/config.ts';
import type { PciIdeHost } from '../../src/pci/piix-ide.ts';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { Cf8, testBoard, range } from '../helpers/board.ts';

const silent = pino({ level: 'silent' });

function fakeIde() {
  const log: string[] = [];
  const h = (name: string): IoHandler => ({
    read: (off, size) => {
      log.push(`r ${name}+${off}/${size}`);
      return 0x42;
    },
    write: (off, size, v) => void log.push(`w ${name}+${off}/${size}=${v.toString(16)}`),
  });
  const busMaster: boolean[] = [];
  const ide: PciIdeHost = {
    bmdmaHandler: h('bm'),
    channels: [
      { cmd: h('cmd0'), ctl: h('ctl0') },
      { cmd: h('cmd1'), ctl: h('ctl1') },
    ],
    setBusMaster: (on) => void busMaster.push(on),
  };
  return { ide, log, busMaster };
}

function setup(extra: Parameters<typeof installPcPlatform>[1] = {}) {
  const { board, host } = testBoard();
  const { ide, log, busMaster } = fakeIde();
  const unplugs: number[] = [];
  const pc = installPcPlatform(board, {
    ide,
    onUnplug: (m) => void unplugs.push(m),
    ramBytes: 128 * 1024 * 1024,
    log: silent,
    ...extra,
  });
  return { board, host, pc, cf8: new Cf8(board), ideLog: log, busMaster, unplugs };
}

type Expect = [reg: number, size: 1 | 2 | 4, value: number, why: string];

function checkAll(cf8: Cf8, dev: number, fn: number, rows: Expect[]) {
  for (const [reg, size, value, why] of rows) {
    assert.equal(cf8.read(dev, fn, reg, size), value, `00:0${dev}.${fn} reg 0x${reg.toString(16)}: ${why}`);
  }
}

test('board.pci is the bus, functions are claimed with Xen at their devfns', () => {
  const { board, host, pc } = setup();
  assert.equal(board.pci, pc.bus);
  assert.deepEqual([...host.pcidevs].sort(), ['0.0', '1.0', '1.1', '1.3', '2.0']);
  for (const r of ['pio:0xcf8-0xcfb', 'pio:0xcfc-0xcff', 'pio:0x10-0x1f', 'pio:0x92-0x92', 'pio:0xb2-0xb3', 'pio:0xafe0-0xafe3']) {
    assert.ok(host.ranges.has(r), r);
  }
  for (const r of ['pio:0x1f0-0x1f7', 'pio:0x3f6-0x3f6', 'pio:0x170-0x177', 'pio:0x376-0x376']) assert.ok(host.ranges.has(r), r);
});

test('00:00.0 i440FX defaults', () => {
  const { cf8 } = setup();
  checkAll(cf8, 0, 0, [
    [0x00, 2, 0x8086, '[FX 3.2.2] vendor'],
    [0x02, 2, 0x1237, '[FX 3.2.3] device'],
    [0x04, 2, 0x0000, '[Q] command 0 (datasheet 0x0006, qtest marks it BROKEN)'],
    [0x06, 2, 0x0000, '[Q] status 0 (datasheet 0x0280, BROKEN in qtest)'],
    [0x08, 1, 0x02, '[Q i440fx_class_init] revision 2'],
    [0x09, 1, 0x00, '[FX 3.2.7] prog-if'],
    [0x0a, 2, 0x0600, '[FX 3.2.7] class host bridge'],
    [0x0d, 1, 0x00, '[FX 3.2.8] latency timer'],
    [0x0e, 1, 0x00, '[FX 3.2.9] header type, single function'],
    [0x0f, 1, 0x00, '[FX 3.2.10] BIST'],
    [0x2c, 4, 0x11001af4, '[Q pci_set_default_subsystem_id] 1af4:1100'],
    [0x50, 2, 0x0000, '[FX 3.2.11] PMCCFG: 1 CPU, WPE clear'],
    [0x52, 1, 0x00, '[FX 3.2.12] DETURBO'],
    [0x54, 1, 0x00, '[FX 3.2.14] AXC'],
    [0x55, 2, 0x0000, '[FX 3.2.15] DRT'],
    [0x57, 1, 0x10, '[Q i440fx_pcihost_realize] RAM/8MiB for coreboot: 128 MiB'],
    [0x58, 4, 0, '[FX 3.2.17-18] DRAMT (QEMU 0, datasheet 0x10), PAM0-2'],
    [0x5c, 4, 0, '[FX 3.2.18] PAM3-6'],
    [0x68, 1, 0, '[FX 3.2.20] FDHC'],
    [0x70, 1, 0, '[FX 3.2.21] MTT'],
    [0x72, 1, 0x02, '[FX 3.2.23][Q i440fx_realize] SMRAM'],
    [0x90, 1, 0, '[FX 3.2.24] ERRCMD'],
    [0x91, 1, 0, '[FX 3.2.25] ERRSTS'],
    [0x93, 1, 0, '[FX 3.2.26] TRC'],
  ]);
});

test('i440FX PAM and SMRAM take only their writable bits; D_LCK locks SMRAM', () => {
  const { cf8 } = setup();
  cf8.write(0, 0, 0x59, 1, 0xff);
  assert.equal(cf8.read(0, 0, 0x59, 1), 0x30, 'PAM0 low nibble reserved');
  cf8.write(0, 0, 0x5c, 4, 0xffffffff);
  assert.equal(cf8.read(0, 0, 0x5c, 4), 0x33333333, 'PAM3-6: RE/WE per half');
  cf8.write(0, 0, 0x5b, 1, 0x11); // RE only, read back as written
  assert.equal(cf8.read(0, 0, 0x5b, 1), 0x11);
  cf8.write(0, 0, 0x72, 1, 0xef); // everything but D_LCK
  assert.equal(cf8.read(0, 0, 0x72, 1), 0x6a, 'bits 2:0 C_BASE_SEG stay 010, bit 7 reserved');
  cf8.write(0, 0, 0x72, 1, 0x4a); // D_OPEN | G_SMRAME
  assert.equal(cf8.read(0, 0, 0x72, 1), 0x4a);
  cf8.write(0, 0, 0x72, 1, 0x5a); // set D_LCK: D_OPEN clears, lock bits become read-only
  assert.equal(cf8.read(0, 0, 0x72, 1), 0x1a);
  cf8.write(0, 0, 0x72, 1, 0x42);
  assert.equal(cf8.read(0, 0, 0x72, 1), 0x1a);
  cf8.write(0, 0, 0x72, 1, 0x3a); // D_CLS stays writable
  assert.equal(cf8.read(0, 0, 0x72, 1), 0x3a);
});

test('00:01.0 PIIX3 ISA bridge defaults', () => {
  const { cf8 } = setup();
  checkAll(cf8, 1, 0, [
    [0x00, 4, 0x70008086, '[SB] 8086:7000'],
    [0x04, 2, 0x0000, '[Q] command cleared by PCI reset'],
    [0x06, 2, 0x0200, '[Q piix_reset][SB] status devsel medium'],
    [0x08, 4, 0x06010000, '[SB] class 0601, prog-if 0, revision 0'],
    [0x0e, 1, 0x80, '[SB] header type: multi-function'],
    [0x2c, 4, 0x11001af4, '[Q] subsystem'],
    [0x4c, 1, 0x4d, '[SB][Q] IORT'],
    [0x4e, 2, 0x0003, '[SB][Q] XBCS'],
    [0x60, 4, 0x80808080, '[SB][Q] PIRQRC A-D disabled'],
    [0x69, 1, 0x02, '[SB][Q] TOM'],
    [0x70, 1, 0x80, '[SB][Q] MBIRQ0'],
    [0x76, 2, 0x0c0c, '[SB][Q] MBDMA0-1'],
    [0x78, 2, 0x0002, '[SB][Q] PCSC'],
    [0xa0, 1, 0x08, '[SB][Q] SMICNTL'],
    [0xa8, 1, 0x0f, '[SB][Q] FTMR'],
  ]);
});

test('PIRQ route registers reach setPciLinkRoute: disable, invalid IRQs and byte lanes', () => {
  const { cf8, host } = setup();
  cf8.write(1, 0, 0x60, 1, 0x0b); // PIRQA -> IRQ11
  cf8.write(1, 0, 0x61, 1, 0x8a); // PIRQB disabled (bit 7) though IRQ10 is in the low bits
  cf8.write(1, 0, 0x62, 1, 0x02); // PIRQC -> IRQ2: reserved [SB], so disabled
  cf8.write(1, 0, 0x63, 1, 0x0d); // IRQ13 reserved
  assert.deepEqual(host.linkRoutes, [
    [0, 11],
    [1, 0],
    [2, 0],
    [3, 0],
  ]);
  host.linkRoutes.length = 0;
  cf8.write(1, 0, 0x60, 4, 0x0f0e0b05); // one dword: four routes, lane order
  assert.deepEqual(host.linkRoutes, [
    [0, 5],
    [1, 11],
    [2, 14],
    [3, 15],
  ]);
  host.linkRoutes.length = 0;
  cf8.write(1, 0, 0x62, 2, 0x8009); // word at lanes 2-3
  assert.deepEqual(host.linkRoutes, [
    [2, 9],
    [3, 0],
  ]);
  assert.equal(cf8.read(1, 0, 0x60, 4), 0x80090b05);
  cf8.write(1, 0, 0x60, 1, 0x7b); // reserved bits 6:4 read 0
  assert.equal(cf8.read(1, 0, 0x60, 1), 0x0b);
  host.linkRoutes.length = 0;
  cf8.write(1, 0, 0x5c, 4, 0); // neighbouring registers do not route
  assert.deepEqual(host.linkRoutes, []);
});

test('0xCF9 reset control: bit 2 reboots, SRST is kept', () => {
  const { board, host } = setup();
  board.pio.write(0xcf9, 1, 0x02);
  assert.equal(board.pio.read(0xcf9, 1), 0x02);
  assert.deepEqual(host.shutdowns, []);
  board.pio.write(0xcf9, 1, 0x06);
  assert.deepEqual(host.shutdowns, [SHUTDOWN_REBOOT]);
});

test('port 0x92: bit 0 rising edge reboots, A20 bit kept', () => {
  const { board, host } = setup();
  board.pio.write(0x92, 1, 0x02);
  assert.equal(board.pio.read(0x92, 1), 0x02);
  assert.deepEqual(host.shutdowns, []);
  board.pio.write(0x92, 1, 0x03);
  assert.deepEqual(host.shutdowns, [SHUTDOWN_REBOOT]);
  board.pio.write(0x92, 1, 0x03); // no edge: no second reset
  assert.deepEqual(host.shutdowns, [SHUTDOWN_REBOOT]);
});

test('00:01.1 PIIX3 IDE defaults and BAR4', () => {
  const { cf8 } = setup();
  checkAll(cf8, 1, 1, [
    [0x00, 4, 0x70108086, '[SB] 8086:7010'],
    [0x04, 2, 0x0000, '[Q] command'],
    [0x06, 2, 0x0280, '[SB][Q] status fast b2b, devsel medium'],
    [0x08, 4, 0x01018000, '[SB][Q] class 0101 prog-if 0x80, revision 0'],
    [0x0e, 1, 0x00, '[SB] header type'],
    [0x10, 4, 0, '[SB] BAR0-3 hard-wired 0 in compatibility mode'],
    [0x1c, 4, 0, '[SB] BAR3'],
    [0x20, 4, 0x00000001, '[SB] BMIBA: I/O'],
    [0x2c, 4, 0x11001af4, '[Q] subsystem'],
    [0x3d, 1, 0x00, '[SB][Q] no interrupt pin: legacy IRQ 14/15'],
    [0x40, 4, 0, '[SB] IDETIM'],
  ]);
  cf8.write(1, 1, 0x10, 4, 0xffffffff);
  assert.equal(cf8.read(1, 1, 0x10, 4), 0);
  cf8.write(1, 1, 0x20, 4, 0xffffffff);
  assert.equal(cf8.read(1, 1, 0x20, 4), 0xfffffff1, 'BAR4 sizes as 16 ports (QEMU: 32-bit I/O mask)');
  // hvmloader pci.c: "Intel IDE: enable legacy mode" writes 0x8000 to 0x40 and 0x42.
  cf8.write(1, 1, 0x40, 2, 0x8000);
  cf8.write(1, 1, 0x42, 2, 0x8000);
  assert.equal(cf8.read(1, 1, 0x40, 4), 0x80008000);
  cf8.write(1, 1, 0x40, 2, 0xffff);
  assert.equal(cf8.read(1, 1, 0x40, 2), 0xf3ff, 'IDETIM bits 11:10 reserved');
});

test('IDE host: legacy ports fixed, bus-master block behind BAR4, bus-master bit reported', () => {
  const { board, host, cf8, ideLog, busMaster } = setup();
  assert.deepEqual(busMaster, [false], 'told the initial state at attach');
  board.pio.read(0x1f7, 1);
  board.pio.write(0x3f6, 1, 0x04);
  board.pio.read(0x170, 2);
  board.pio.write(0x376, 1, 0x02);
  assert.deepEqual(ideLog, ['r cmd0+7/1', 'w ctl0+0/1=4', 'r cmd1+0/2', 'w ctl1+0/1=2']);
  ideLog.length = 0;
  cf8.write(1, 1, 0x20, 4, 0xc040);
  assert.ok(!host.ranges.has(range('pio', 0xc040, 0xc04f)));
  cf8.write(1, 1, 0x04, 2, 0x0001);
  assert.ok(host.ranges.has(range('pio', 0xc040, 0xc04f)));
  board.pio.read(0xc04a, 1);
  assert.deepEqual(ideLog, ['r bm+10/1']);
  cf8.write(1, 1, 0x04, 2, 0x0005);
  cf8.write(1, 1, 0x04, 2, 0x0005);
  cf8.write(1, 1, 0x04, 2, 0x0001);
  assert.deepEqual(busMaster, [false, true, false]);
});

test('00:01.3 PIIX4 ACPI defaults', () => {
  const { cf8 } = setup();
  checkAll(cf8, 1, 3, [
    [0x00, 4, 0x71138086, '[AB] 8086:7113'],
    [0x04, 2, 0x0000, '[Q] command'],
    [0x06, 2, 0x0280, '[AB][Q] status'],
    [0x08, 4, 0x06800003, '[AB][Q] class 0680, revision 3'],
    [0x0e, 1, 0x00, '[AB] header type'],
    [0x2c, 4, 0x11001af4, '[Q] subsystem'],
    [0x3d, 1, 0x01, '[AB][Q] INTA'],
    [0x40, 4, 0x00000001, '[AB][Q] PMBA: I/O indicator'],
    [0x5c, 4, 0x10000000, '[Q piix4_pm_machine_ready] DEVRESA'],
    [0x60, 4, 0x60000000, '[Q piix4_pm_machine_ready] DEVRESB'],
    [0x64, 4, 0x00000000, '[Q] DEVRESD: no COM ports on this board'],
    [0x80, 1, 0x00, '[AB][Q] PMREGMISC: PM I/O disabled'],
    [0x90, 4, 0x00000001, 'SMBBA: no SMBus emulated (QEMU 0xb101, on purpose)'],
    [0xd2, 1, 0x00, 'SMBHSTCFG: host disabled (QEMU 0x09, on purpose)'],
  ]);
  const { cf8: withCom } = setup({ com1: true });
  assert.equal(withCom.read(1, 3, 0x67, 1), 0x08, '[Q] DEVRESD: COM1 decoded');
});

function hvmloaderPm(cf8: Cf8) {
  // tools/firmware/hvmloader/pci.c, PIIX4 ACPI PM.
  cf8.write(1, 3, 0x20, 2, 0x0000);
  cf8.write(1, 3, 0xd2, 2, 0x0000);
  cf8.write(1, 3, 0x22, 2, 0x0000);
  cf8.write(1, 3, 0x3c, 2, 9);
  cf8.write(1, 3, 0x3d, 2, 1);
  cf8.write(1, 3, 0x40, 4, 0xb000 | 1);
  cf8.write(1, 3, 0x80, 1, 0x01);
}

test('PM block: only PM1a_CNT is claimed at the programmed base (Xen owns PM1a_EVT and the timer)', () => {
  const { host, cf8, board } = setup();
  assert.ok(![...host.ranges].some((r) => r.startsWith('pio:0xb00')));
  hvmloaderPm(cf8);
  assert.equal(cf8.read(1, 3, 0x40, 4), 0xb001);
  assert.equal(cf8.read(1, 3, 0x3c, 1), 9);
  assert.ok(host.ranges.has('pio:0xb004-0xb005'));
  assert.ok(!host.ranges.has('pio:0xb000-0xb003') && !host.ranges.has('pio:0xb008-0xb00b'));
  // hvmloader acpi_enable_sci(): SCI_EN clear -> outb(0xb2, 0xf1) -> SCI_EN must be set.
  assert.equal(board.pio.read(0xb004, 1) & 1, 0);
  board.pio.write(0xb2, 1, 0xf1);
  assert.equal(board.pio.read(0xb004, 1) & 1, 1);
  board.pio.write(0xb2, 1, 0xf0);
  assert.equal(board.pio.read(0xb004, 2) & 1, 0);
  // Moving the base moves the claim; disabling PMIOSE drops it.
  cf8.write(1, 3, 0x40, 4, 0xc001);
  assert.ok(host.ranges.has('pio:0xc004-0xc005') && !host.ranges.has('pio:0xb004-0xb005'));
  cf8.write(1, 3, 0x80, 1, 0);
  assert.ok(!host.ranges.has('pio:0xc004-0xc005'));
  cf8.write(1, 3, 0x40, 4, 0xffffffff);
  assert.equal(cf8.read(1, 3, 0x40, 4), 0x0000ffc1, '[AB] PMBA bits 15:6');
});

test('PM1a_CNT: SLP_EN with SLP_TYP 0 (Xen \\_S5) powers off; S3 is refused; SLP_EN reads 0', () => {
  const { host, cf8, board } = setup();
  hvmloaderPm(cf8);
  board.pio.write(0xb2, 1, 0xf1);
  board.pio.write(0xb004, 2, 0x0001 | (1 << 10) | 0x2000); // S3 (ssdt_s3.asl SLP_TYP 1)
  assert.deepEqual(host.shutdowns, []);
  assert.equal(board.pio.read(0xb004, 2), 0x0001 | (1 << 10), 'SLP_EN is write-only');
  board.pio.write(0xb004, 1, 0x01); // low byte alone cannot set SLP_EN
  assert.deepEqual(host.shutdowns, []);
  board.pio.write(0xb005, 1, 0x20); // high byte: SLP_TYP 0 + SLP_EN, as Linux acpi_hw_write does in 16 bits
  assert.deepEqual(host.shutdowns, [SHUTDOWN_POWEROFF]);
});

test('GPE0 block: zero status, w1c status, r/w enable', () => {
  const { pc, board } = setup();
  assert.equal(board.pio.read(0xafe0, 4), 0);
  pc.pm.gpeSts = 0x0203;
  board.pio.write(0xafe0, 1, 0x01);
  assert.equal(board.pio.read(0xafe0, 2), 0x0202);
  board.pio.write(0xafe2, 2, 0x0004);
  assert.equal(board.pio.read(0xafe0, 4), 0x00040202);
  board.pio.write(0xafe0, 4, 0xffff0000);
  assert.equal(board.pio.read(0xafe0, 4), 0xffff0202);
});

test('00:02.0 Xen platform device defaults and BARs', () => {
  const { cf8, host, board, pc } = setup();
  checkAll(cf8, 2, 0, [
    [0x00, 4, 0x00015853, '[Q] 5853:0001'],
    [0x04, 2, 0x0000, '[Q] command after reset'],
    [0x06, 2, 0x0000, '[Q] status'],
    [0x08, 4, 0xff800001, '[Q] class ff80, revision 1'],
    [0x0e, 1, 0x00, 'header type'],
    [0x10, 4, 0x00000001, '[Q] BAR0 I/O'],
    [0x14, 4, 0x00000008, '[Q] BAR1 prefetchable memory'],
    [0x2c, 4, 0x00015853, '[Q] subsystem 5853:0001'],
    [0x30, 4, 0, 'no ROM'],
    [0x3d, 1, 0x01, '[Q] INTA'],
  ]);
  cf8.write(2, 0, 0x10, 4, 0xffffffff);
  cf8.write(2, 0, 0x14, 4, 0xffffffff);
  assert.equal(cf8.read(2, 0, 0x10, 4), 0xffffff01, '256 ports');
  assert.equal(cf8.read(2, 0, 0x14, 4), 0xff000008, '16 MiB');
  cf8.write(2, 0, 0x10, 4, 0xc100);
  cf8.write(2, 0, 0x14, 4, 0xf0000000);
  cf8.write(2, 0, 0x04, 2, 0x0003);
  assert.ok(host.ranges.has(range('pio', 0xc100, 0xc1ff)));
  assert.ok(host.ranges.has(range('mmio', 0xf0000000, 0xf0ffffff)));
  assert.equal(board.mmio.read(0xf0001000, 4), 0);
  assert.equal(board.pio.read(0xc100, 1), 0, 'BAR0 byte 0: platform flags');
  assert.equal(board.pio.read(0xc101, 1), 0xff);
  assert.equal(board.pio.read(0xc100, 2), 0xff00, 'wider reads are byte registers side by side');
  board.pio.write(0xc108, 1, 0x41); // BAR0 log byte
  assert.equal(pc.xenPlatform!.pendingLog(), 'A');
});

test('Xen platform fixed ports: the Linux unplug handshake', () => {
  const { board, pc, unplugs } = setup();
  const xp = pc.xenPlatform!;
  // [L] check_platform_magic
  assert.equal(board.pio.read(0x10, 2), 0x49d2, 'magic');
  assert.equal(board.pio.read(0x12, 1), 1, 'protocol version');
  board.pio.write(0x12, 2, 0x0003); // XEN_IOPORT_PRODNUM: Linux
  board.pio.write(0x10, 4, 0x00000001); // XEN_IOPORT_DRVVER
  assert.equal(xp.productNumber, 3);
  assert.equal(xp.buildNumber, 1);
  assert.equal(board.pio.read(0x10, 2), 0x49d2, 'not blacklisted');
  // [L] xen_unplug_emulated_devices: XEN_UNPLUG_ALL_IDE_DISKS | XEN_UNPLUG_ALL_NICS
  board.pio.write(0x10, 2, 0x0003);
  assert.deepEqual(unplugs, [0x3]);
  board.pio.write(0x10, 2, 0x0008); // NVMe
  assert.deepEqual(unplugs, [0x3, 0x8]);
  assert.equal(xp.unplugged, 0xb);
  // Other sizes and offsets float.
  assert.equal(board.pio.read(0x10, 4), 0xffffffff);
  assert.equal(board.pio.read(0x14, 2), 0xffff);
  assert.equal(board.pio.read(0x1f, 1), 0xff);
  // Platform flags byte and the log port.
  board.pio.write(0x10, 1, 0x01);
  assert.equal(board.pio.read(0x10, 1), 0x01);
  for (const ch of 'hi') board.pio.write(0x12, 1, ch.charCodeAt(0));
  assert.equal(xp.pendingLog(), 'hi');
  board.pio.write(0x12, 1, 0x0a);
  assert.equal(xp.pendingLog(), '');
  for (let i = 0; i < 5000; i++) board.pio.write(0x12, 1, 0x41); // no newline: bounded buffer
  assert.ok(xp.pendingLog().length < 4096);
});

test('installPcPlatform without the Xen platform device and without IDE', () => {
  const { board, host } = testBoard();
  const pc = installPcPlatform(board, { xenPlatform: false, log: silent });
  assert.equal(pc.xenPlatform, null);
  assert.ok(!host.pcidevs.has('2.0'));
  assert.ok(!host.ranges.has('pio:0x10-0x1f'));
  assert.ok(!host.ranges.has('pio:0x1f0-0x1f7'));
  const cf8 = new Cf8(board);
  cf8.write(1, 1, 0x20, 4, 0xc040);
  cf8.write(1, 1, 0x04, 2, 1);
  assert.ok(!host.ranges.has('pio:0xc040-0xc04f'), 'no controller: BAR4 decodes nothing');
  assert.equal(cf8.read(1, 1, 0, 4), 0x70108086);
});

test('addDevice puts more functions from 00:03.0 on', () => {
  const { pc, cf8 } = setup();
  const mk = (id: number): PciFunction => ({
    name: `dev${id}`,
    config: new PciConfig({ vendor: 0x1234, device: id, revision: 0, classCode: 0x0300 }),
    barHandler: () => null,
  });
  assert.equal(pc.addDevice(mk(0x1111)), 3);
  assert.equal(pc.addDevice(mk(0x100e)), 4);
  assert.equal(pc.addDevice(mk(0x2222), 7), 7);
  assert.equal(cf8.read(3, 0, 0, 4), 0x11111234);
  assert.equal(cf8.read(4, 0, 0, 4), 0x100e1234);
  assert.throws(() => pc.addDevice(mk(1), 2), /taken/);
});

test('snapshot/restore: a structured-clone round trip of every device plus refresh() rebuilds config, claims and chipset ports', () => {
  const a = setup({ com1: true });
  hvmloaderPm(a.cf8);
  a.board.pio.write(0xb2, 1, 0xf1);
  a.cf8.write(1, 0, 0x60, 4, 0x050b0a05);
  a.cf8.write(1, 1, 0x20, 4, 0xc001);
  a.cf8.write(1, 1, 0x04, 2, 0x0005);
  a.cf8.write(2, 0, 0x10, 4, 0xc100);
  a.cf8.write(2, 0, 0x14, 4, 0xf0000000);
  a.cf8.write(2, 0, 0x04, 2, 0x0003);
  a.cf8.write(0, 0, 0x72, 1, 0x1a); // SMRAM locked
  a.board.pio.write(0xcf9, 1, 0x02);
  a.board.pio.write(0x10, 2, 0x0001);
  a.board.pio.write(0xcf8, 4, 0x80000b40);
  const saved = structuredClone(a.pc.devices.map((d) => d.snapshot()));

  const b = setup({ com1: true });
  b.pc.devices.forEach((d, i) => d.restore(saved[i]));
  b.pc.refresh();
  assert.deepEqual([...b.host.ranges].sort(), [...a.host.ranges].sort(), 'same claims with Xen');
  for (const d of [0x00, 0x08, 0x09, 0x0b, 0x10]) {
    for (let r = 0; r < 256; r += 4) assert.equal(b.pc.bus.configRead(d, r, 4), a.pc.bus.configRead(d, r, 4));
  }
  assert.equal(b.board.pio.read(0xcf8, 4), 0x80000b40);
  assert.equal(b.board.pio.read(0xb004, 2) & 1, 1, 'SCI_EN survives');
  assert.equal(b.board.pio.read(0xcf9, 1), 0x02);
  assert.equal(b.pc.xenPlatform!.unplugged, 1);
  assert.deepEqual(b.busMaster, [false, true], 'the IDE controller learns bus mastering is on');
  assert.deepEqual(b.host.linkRoutes.slice(-4), [
    [0, 5],
    [1, 10],
    [2, 11],
    [3, 5],
  ]);
  assert.deepEqual(b.unplugs, [], 'restoring does not unplug again');
  b.cf8.write(0, 0, 0x72, 1, 0x4a);
  assert.equal(b.cf8.read(0, 0, 0x72, 1), 0x1a, 'SMRAM stays locked after restore');
  // A state from a different layout is refused.
  const c = testBoard();
  const noXen = installPcPlatform(c.board, { xenPlatform: false, log: silent });
  assert.throws(() => noXen.devices[0].restore(saved[0]), (e) => e instanceof StateError && /present/.test(e.message));
  assert.throws(() => restoreDevice(b.pc.bus, 2, saved[0]), (e) => e instanceof StateError && /version/.test(e.message));
});

test('unplugNics removes Ethernet functions only, releasing their claims', () => {
  const { pc, host, cf8 } = setup();
  const mk = (cls: number, bars = true): PciFunction => {
    const config = new PciConfig({
      vendor: 0x8086,
      device: 0x100e,
      revision: 3,
      classCode: cls,
      pin: 1,
      bars: bars ? [{ index: 1, kind: 'io', size: 0x40 }] : [],
    });
    return { name: `f${cls.toString(16)}`, config, barHandler: () => ({ read: () => 0, write: () => {} }) };
  };
  pc.addDevice(mk(0x0300, false)); // VGA at 3
  pc.addDevice(mk(0x0200)); // NIC at 4
  cf8.write(4, 0, 0x14, 4, 0xc200);
  cf8.write(4, 0, 0x04, 2, 0x0001);
  assert.ok(host.ranges.has('pio:0xc200-0xc23f'));
  assert.equal(pc.unplugNics(), 1);
  assert.ok(!host.ranges.has('pio:0xc200-0xc23f'));
  assert.ok(!host.pcidevs.has('4.0'));
  assert.ok(host.pcidevs.has('3.0'));
  assert.equal(cf8.read(4, 0, 0, 4), 0xffffffff);
  assert.equal(pc.unplugNics(), 0);
});
