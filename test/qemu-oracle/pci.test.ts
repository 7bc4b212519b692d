/**
 * Judge level 2: our chipset's config space against QEMU's, byte by byte.
 *
 * QEMU (Debian's qemu-system-x86) runs `-machine pc` under qtest, stopped
 * (-S) right after machine reset, and we read 00:00.0, 00:01.0, 00:01.1 and
 * 00:01.3 through config mechanism #1 (`outl 0xcf8` / `inl 0xcfc`), exactly
 * as a guest does. The Xen platform device cannot be created outside Xen, so
 * it is covered by the unit tests only.
 *
 * Two passes per function: the reset values of all 256 bytes, and the header
 * (0x00-0x3f) after writing all ones to every dword, which compares the
 * writable masks of command, BARs (sizing) and the read-only IDs. Bytes where
 * we differ on purpose are listed in INTENDED with the reason; every other
 * byte must match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { installPcPlatform } from '../../src/pci/platform.ts';
import { testBoard } from '../helpers/board.ts';

const QEMU = 'qemu-system-x86_64';
const RAM_MIB = 128;
const FUNCTIONS: [name: string, devfn: number][] = [
  ['00:00.0 i440FX', 0x00],
  ['00:01.0 PIIX3 ISA', 0x08],
  ['00:01.1 PIIX3 IDE', 0x09],
  ['00:01.3 PIIX4 ACPI', 0x0b],
];

/** `devfn:reg` -> why we differ from QEMU there on purpose. */
const INTENDED: Record<string, string> = {
  // No SMBus controller is emulated: QEMU's piix4 reports an SMBus at 0xb100
  // with the host enabled (0xd2 = 0x09); advertising one nobody answers would
  // make i2c-piix4 probe a floating bus. hvmloader zeroes 0xd2 anyway.
  'reset:0b:91': 'SMBBA bits 15:8: QEMU 0xb1 (SMBus at 0xb100), no SMBus here',
  'reset:0b:d2': 'SMBHSTCFG: QEMU 0x09 (enabled, IRQ9), no SMBus here',
  'hvmloader:0b:91': 'SMBBA bits 15:8 again: hvmloader leaves SMBBA alone',
};

/** A config access through CF8/CFC, the same for QEMU and for us. Reads are what gets compared. */
type Op = { w: true; devfn: number; reg: number; size: 1 | 2 | 4; value: number } | { w: false; devfn: number; reg: number };

interface Pass {
  name: string;
  /** Writes applied to all functions first (a firmware's sequence), in order. */
  setup: Op[];
  /** For each function: which dwords to read back and compare. */
  compare: (devfn: number) => Op[];
}

function cf8(devfn: number, reg: number): string {
  return `0x${((0x80000000 | (devfn << 8) | reg) >>> 0).toString(16)}`;
}

/**
 * Runs one QEMU, feeds it the qtest commands and collects one answer line per
 * command; QEMU is killed as soon as the last answer arrives (qtest does not
 * exit on EOF). The timeout only guards against a hung QEMU.
 */
async function runQemuRaw(commands: string[]): Promise<string[]> {
  const child = spawn(
    QEMU,
    ['-machine', 'pc', '-m', String(RAM_MIB), '-qtest', 'stdio', '-qtest-log', '/dev/null', '-display', 'none', '-nodefaults', '-S'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const answers: string[] = [];
  let stderr = '';
  let pending = '';
  const done = new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`qemu answered ${answers.length}/${commands.length} commands in 120 s`)), 120_000);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(guard);
      reject(
        e.code === 'ENOENT'
          ? new Error(`${QEMU} is not installed: apt-get install qemu-system-x86 (or run scripts/install-deps.sh)`)
          : e,
      );
    });
    child.on('exit', (code) => {
      clearTimeout(guard);
      if (answers.length < commands.length) reject(new Error(`qemu exited (${code}) after ${answers.length} answers: ${stderr}`));
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('OK') || line.startsWith('FAIL') || line.startsWith('ERR')) answers.push(line);
      }
      if (answers.length >= commands.length) {
        clearTimeout(guard);
        resolve();
      }
    });
  });
  child.stdin.on('error', () => {}); // an exec failure surfaces through 'error' above
  child.stdin.write(commands.join('\n') + '\n');
  try {
    await done;
  } finally {
    child.kill('SIGKILL');
  }
  const bad = answers.find((l) => !l.startsWith('OK'));
  assert.equal(bad, undefined, `qtest refused a command: ${bad}`);
  return answers;
}

/** The values of the reads, in order. */
async function runQemu(commands: string[]): Promise<number[]> {
  return (await runQemuRaw(commands)).filter((l) => l.startsWith('OK 0x')).map((l) => Number.parseInt(l.slice(3), 16));
}

function ourPlatform() {
  const { board } = testBoard();
  installPcPlatform(board, { ramBytes: RAM_MIB * 1024 * 1024, log: pino({ level: 'silent' }) });
  return board;
}

const SUFFIX = { 1: 'b', 2: 'w', 4: 'l' } as const;

function qtestOf(ops: Op[]): string[] {
  const c: string[] = [];
  for (const op of ops) {
    c.push(`outl 0xcf8 ${cf8(op.devfn, op.reg & 0xfc)}`);
    const port = `0x${(0xcfc + (op.reg & 3)).toString(16)}`;
    c.push(op.w ? `out${SUFFIX[op.size]} ${port} 0x${op.value.toString(16)}` : `inl ${port}`);
  }
  return c;
}

function runOurs(ops: Op[]): number[] {
  const board = ourPlatform();
  const out: number[] = [];
  for (const op of ops) {
    board.pio.write(0xcf8, 4, Number(cf8(op.devfn, op.reg & 0xfc)));
    if (op.w) board.pio.write(0xcfc + (op.reg & 3), op.size, op.value);
    else out.push(board.pio.read(0xcfc, 4));
  }
  return out;
}

const rd = (devfn: number, reg: number): Op => ({ w: false, devfn, reg });
const wr = (devfn: number, reg: number, size: 1 | 2 | 4, value: number): Op => ({ w: true, devfn, reg, size, value });
const allDwords = (devfn: number) => Array.from({ length: 64 }, (_, i) => rd(devfn, 4 * i));

/**
 * What hvmloader's pci_setup() (tools/firmware/hvmloader/pci.c) writes to
 * these four functions: PIRQ links to the PCI_ISA_IRQ_MASK IRQs 5/10/11/5,
 * the PIIX4 PM block, IDE legacy enable, decode off, BAR sizing of all 7
 * slots, interrupt lines, BAR4 of the IDE at 0xc000, then decode + master on.
 */
function hvmloaderOps(): Op[] {
  const ops: Op[] = [];
  [5, 10, 11, 5].forEach((irq, link) => ops.push(wr(0x08, 0x60 + link, 1, irq)));
  ops.push(
    wr(0x0b, 0x20, 2, 0),
    wr(0x0b, 0xd2, 2, 0),
    wr(0x0b, 0x22, 2, 0),
    wr(0x0b, 0x3c, 2, 9),
    wr(0x0b, 0x3d, 2, 1),
    wr(0x0b, 0x40, 4, 0xb001),
    wr(0x0b, 0x80, 1, 1),
    wr(0x09, 0x40, 2, 0x8000),
    wr(0x09, 0x42, 2, 0x8000),
  );
  for (const [, devfn] of FUNCTIONS) {
    ops.push(wr(devfn, 0x04, 2, 0)); // cmd &= ~(MEMORY | IO): all zero after reset
    for (let bar = 0; bar < 7; bar++) {
      const reg = bar === 6 ? 0x30 : 0x10 + 4 * bar;
      ops.push(wr(devfn, reg, 4, bar === 6 ? 0xfffff800 : 0xffffffff), rd(devfn, reg), wr(devfn, reg, 4, 0));
    }
  }
  ops.push(wr(0x0b, 0x3c, 1, 10)); // INTA of device 1 -> link (0 + 1) & 3 = 1 -> IRQ10
  ops.push(wr(0x09, 0x20, 4, 0xc001), wr(0x09, 0x04, 2, 0x0005)); // IDE BMIBA, I/O + master
  for (const devfn of [0x00, 0x08, 0x0b]) ops.push(wr(devfn, 0x04, 2, 0x0004)); // master for the rest
  return ops;
}

const PASSES: Pass[] = [
  { name: 'reset', setup: [], compare: allDwords },
  {
    name: 'ones',
    setup: [],
    compare: (devfn) => Array.from({ length: 16 }, (_, i) => [wr(devfn, 4 * i, 4, 0xffffffff), rd(devfn, 4 * i)]).flat(),
  },
  { name: 'hvmloader', setup: hvmloaderOps(), compare: allDwords },
];

function bytesOf(dwords: number[]): number[] {
  const out: number[] = [];
  for (const d of dwords) for (let i = 0; i < 4; i++) out.push((d >>> (8 * i)) & 0xff);
  return out;
}

test('PCI config space matches QEMU -machine pc byte by byte (except the listed intended differences)', async () => {
  const report: string[] = [];
  let compared = 0;
  // One QEMU per pass so no pass sees another's writes.
  for (const pass of PASSES) {
    const compareOps = FUNCTIONS.map(([, devfn]) => pass.compare(devfn));
    const ops = [...pass.setup, ...compareOps.flat()];
    const setupReads = pass.setup.filter((o) => !o.w).length;
    const theirAll = await runQemu(qtestOf(ops));
    const ourAll = runOurs(ops);
    // Reads inside the firmware sequence (BAR sizing) must agree too.
    pass.setup.filter((o) => !o.w).forEach((op, i) => {
      compared += 4;
      if (theirAll[i] !== ourAll[i]) {
        report.push(`${pass.name} setup read ${i} devfn 0x${op.devfn.toString(16)} reg 0x${op.reg.toString(16)}: qemu 0x${theirAll[i]?.toString(16)} ours 0x${ourAll[i]?.toString(16)}`);
      }
    });
    const theirs = theirAll.slice(setupReads);
    const ours = ourAll.slice(setupReads);
    assert.equal(theirs.length, ours.length, `qtest answered ${theirs.length} reads, we made ${ours.length}`);
    let at = 0;
    FUNCTIONS.forEach(([name, devfn], i) => {
      const reads = compareOps[i].filter((o) => !o.w);
      const t = bytesOf(theirs.slice(at, at + reads.length));
      const o = bytesOf(ours.slice(at, at + reads.length));
      at += reads.length;
      for (let b = 0; b < t.length; b++) {
        compared++;
        const reg = reads[b >> 2].reg + (b & 3);
        const key = `${pass.name}:${devfn.toString(16).padStart(2, '0')}:${reg.toString(16).padStart(2, '0')}`;
        if (t[b] === o[b]) {
          assert.ok(!(key in INTENDED), `${key} is listed as intended but matches: drop it from INTENDED`);
          continue;
        }
        if (key in INTENDED) continue;
        report.push(`${pass.name} ${name} reg 0x${reg.toString(16)}: qemu 0x${t[b].toString(16)} ours 0x${o[b].toString(16)}`);
      }
    });
  }
  assert.equal(compared, 4 * 256 + 4 * 64 + (4 * 7 * 4 + 4 * 256));
  assert.deepEqual(report, [], 'unexpected differences from QEMU');
});

/**
 * The chipset's own ports, read after the same writes on both sides. Ports
 * Xen emulates itself (PM1a_STS/EN at 0xb000, the PM timer at 0xb008) are
 * not ours and not compared. `why` marks reads where we differ on purpose.
 */
const PORT_SCRIPT: { cmd: string; why?: string }[] = [
  { cmd: 'inb 0x92' },
  { cmd: 'inb 0xcf9' },
  { cmd: 'inb 0xb2' },
  { cmd: 'inb 0xb3' },
  { cmd: 'inl 0xafe0' },
  // hvmloader: PMBA = 0xb000|1, PMREGMISC = 1, then acpi_enable_sci().
  { cmd: 'outl 0xcf8 0x80000b40' },
  { cmd: 'outl 0xcfc 0xb001' },
  { cmd: 'outl 0xcf8 0x80000b80' },
  { cmd: 'outb 0xcfc 0x01' },
  { cmd: 'inw 0xb004' },
  { cmd: 'inb 0xb004' },
  { cmd: 'outb 0xb2 0xf1' },
  { cmd: 'inw 0xb004' },
  { cmd: 'inb 0xb2' },
  { cmd: 'outb 0xb3 0x5a' },
  { cmd: 'inb 0xb3' },
  { cmd: 'outw 0xb004 0x0401' }, // SLP_TYP 1 without SLP_EN: stored
  { cmd: 'inw 0xb004' },
  { cmd: 'inb 0xb005', why: 'Debian QEMU 7.2 acpi_pm_cnt_read ignores the offset (returns the low byte); upstream QEMU later shifts by it, as we do' },
  { cmd: 'outb 0xb2 0xf0' },
  { cmd: 'inw 0xb004' },
  { cmd: 'inw 0xb006' },
  // GPE0: enable bytes read/write, status reads 0.
  { cmd: 'outw 0xafe2 0xffff' },
  { cmd: 'inl 0xafe0' },
  { cmd: 'outb 0xafe3 0x00' },
  { cmd: 'inw 0xafe2' },
  { cmd: 'inb 0xafe1' },
  // CONFADD latch.
  { cmd: 'outl 0xcf8 0x80000b44' },
  { cmd: 'inl 0xcf8' },
  { cmd: 'outb 0xcfb 0x01' }, // Linux pci_check_type1 probe: a byte write is not a CONFADD write
  { cmd: 'inl 0xcf8' },
  { cmd: 'inw 0xcf8', why: 'PCI 3.0 §3.2.2.3.2: non-dword CONFADD accesses are plain I/O (all ones); QEMU returns the latch' },
  { cmd: 'inb 0xcf8', why: 'as above' },
  { cmd: 'outl 0xcf8 0x7f0001fe' },
  { cmd: 'inl 0xcf8', why: 'PCI 3.0 §3.2.2.3.2: CONFADD bits 30:24 and 1:0 read 0; QEMU keeps them' },
  // Reset control and port 0x92, without the reset bits.
  { cmd: 'outb 0xcf9 0x02' },
  { cmd: 'inb 0xcf9' },
  { cmd: 'outb 0x92 0x02' },
  { cmd: 'inb 0x92' },
];

function runOursQtest(script: string[]): string[] {
  const board = ourPlatform();
  const size = { b: 1, w: 2, l: 4 } as const;
  return script.map((line) => {
    const [op, portS, valS] = line.split(' ');
    const sz = size[op.at(-1) as 'b' | 'w' | 'l'];
    const port = Number(portS);
    if (op.startsWith('out')) {
      board.pio.write(port, sz, Number(valS));
      return 'OK';
    }
    return `OK 0x${board.pio.read(port, sz).toString(16).padStart(4, '0')}`;
  });
}

test('chipset ports (APM, PM1a_CNT, GPE0, CONFADD, 0xcf9, 0x92) answer like QEMU', async () => {
  const script = PORT_SCRIPT.map((p) => p.cmd);
  const theirs = await runQemuRaw(script);
  const ours = runOursQtest(script);
  const report: string[] = [];
  let reads = 0;
  PORT_SCRIPT.forEach((p, i) => {
    if (!p.cmd.startsWith('in')) return;
    reads++;
    const same = Number(theirs[i].slice(3)) === Number(ours[i].slice(3));
    if (p.why) assert.ok(!same, `"${p.cmd}" is marked as an intended difference but matches QEMU: drop the mark`);
    else if (!same) report.push(`${p.cmd}: qemu ${theirs[i]} ours ${ours[i]}`);
  });
  assert.ok(reads >= 20);
  assert.deepEqual(report, [], 'unexpected differences from QEMU');
});
