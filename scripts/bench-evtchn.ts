/**
 * The ioreq path as it runs on Xen, as far as it runs without Xen: the Xen
 * host (src/xen/host.ts) over the fake Xen libraries of the tests
 * (test/xen/xen-fake.ts), with the real fdwatch addon (native/fdwatch.c)
 * watching a FIFO that stands for /dev/xen/evtchn (reading it gives the
 * ports written into it; the addon's unmask write puts the port back, which
 * is the next event), the real mapcache over the fake's memory and the real
 * file backend. What one ioreq costs the device model: libuv's epoll_wait,
 * the addon's read of the port and its unmask write, the crossing into JS,
 * the ioreq server taking the slot, the device, the answer and the notify
 * ioctl, which scripts/bench-evtchn-preload.c answers with 0 (a FIFO says
 * ENOTTY). "Xen" is a few lines of JS in front of the callback: check the
 * previous answer and post the next request.
 *
 *   LD_PRELOAD=$PWD/build/bench-evtchn-preload.so node --import tsx scripts/bench-evtchn.ts pio|dma [N]
 *
 * (scripts/bench.ts, section native, builds the shim and runs both.)
 * pio: N round trips of the IDE Alternate Status read (the register ata_piix
 * reads most); prints native_ioreq_roundtrip (CPU time, user + system, per
 * round trip, median of RUNS windows of N) and native_alloc_bytes_per_ioreq
 * (young-generation growth per round trip, median over samples of 1000 with
 * no scavenge in them).
 * dma: N READ DMA EXTs of 512 KiB as ata_piix issues them (31 ioreqs each,
 * test/devices/ide/libata.ts; 128 PRD entries of a page, from a raw image in
 * the page cache) with the INTRQ edges through the fake's DMOP; prints
 * native_dma_read_512k (CPU per command, median of RUNS windows) and the
 * wake-ups that found nothing to do per command (waiting for the transfer).
 * The interrupt DMOP and xenforeignmemory are the fake's JS, not koffi:
 * ffi_koffi_call is the floor each would add. N is also what an instruction
 * count takes the difference of (valgrind --tool=callgrind at N and 2 x N,
 * node --single-threaded --expose-gc: then it repeats within 1-2%).
 */
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Board } from '../src/core/board.ts';
import { IoreqServer } from '../src/ioreq/server.ts';
import { IdeController } from '../src/devices/ide/controller.ts';
import { installPcPlatform } from '../src/pci/platform.ts';
import { MemoryBackend } from '../src/block/memory.ts';
import { openBlockBackend, type BlockBackend } from '../src/block/index.ts';
import { loadFdWatch, type FdWatch } from '../src/xen/native.ts';
import {
  IOREQ_DIR,
  IOREQ_OFF_ADDR,
  IOREQ_OFF_COUNT,
  IOREQ_OFF_DATA,
  IOREQ_OFF_FLAGS,
  IOREQ_OFF_SIZE,
  IOREQ_OFF_TYPE,
  IOREQ_STATE_MASK,
  IOREQ_TYPE_PIO,
  STATE_IOREQ_READY,
  STATE_IORESP_READY,
} from '../src/ioreq/abi.ts';
import { Fake, quiet } from '../test/xen/xen-fake.ts';
import { openXenHost } from '../src/xen/index.ts';
import { newSpaceUsed } from '../test/helpers/alloc.ts';

const RUNS = 5;
const mode = process.argv[2] ?? 'pio';
if (mode !== 'pio' && mode !== 'dma') throw new Error('bench-evtchn: mode pio or dma');
const N = Number(process.argv[3] ?? (mode === 'pio' ? 100_000 : 2000));
/** The fake binds remote port r as local r + 1000; Xen's vp_eport of vCPU 0 is 100. */
const VCPU0_PORT = 1100;
const ALT_STATUS = 0x3f6;
const BMIBA = 0xc040;
const IDE_DEVFN = (1 << 3) | 1;
const PRDT = 0x2000;
const IMAGE = 64 << 20;
const REQ = 512 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'stubdm-bench-evtchn-'));
execFileSync('mkfifo', [join(dir, 'evtchn')]);
const fd = openSync(join(dir, 'evtchn'), constants.O_RDWR | constants.O_NONBLOCK);

const fake = new Fake();
fake.nrVcpus = 1;
const libs = fake.libs();
libs.evtchn.fd = () => fd;
let irq14 = 0;
libs.dm.set_isa_irq_level = (_h, _domid, irq, level) => {
  if (irq === 14) irq14 = level;
  return 0;
};

const slot8 = new Uint8Array(fake.ioreqPage);
const slot32 = new Int32Array(fake.ioreqPage);

/** Post one request in vCPU 0's slot as Xen does: fields first, then state READY. */
function post(type: number, addr: number, size: number, read: boolean, data: number): void {
  slot32[IOREQ_OFF_ADDR / 4] = addr;
  slot32[IOREQ_OFF_ADDR / 4 + 1] = 0;
  slot32[IOREQ_OFF_DATA / 4] = data;
  slot32[IOREQ_OFF_DATA / 4 + 1] = 0;
  slot32[IOREQ_OFF_COUNT / 4] = 1;
  slot32[IOREQ_OFF_SIZE / 4] = size;
  slot8[IOREQ_OFF_TYPE] = type;
  Atomics.store(slot8, IOREQ_OFF_FLAGS, STATE_IOREQ_READY | (read ? IOREQ_DIR : 0));
}
const answered = (): boolean => (Atomics.load(slot8, IOREQ_OFF_FLAGS) & IOREQ_STATE_MASK) === STATE_IORESP_READY;
const lastData = (): number => slot32[IOREQ_OFF_DATA / 4];

/**
 * One READ DMA EXT as ata_piix issues it (test/devices/ide/libata.ts has the
 * reasons), as [port, size, read, value]; a negative value is "the last read
 * answer, with these bits of the value's complement cleared or set" below.
 */
type Step = [port: number, size: number, read: boolean, value: number];
function dmaSteps(lba: number, sectors: number): Step[] {
  return [
    [0x1f7, 1, true, 0], [0x1f6, 1, false, 0xa0], [0x3f6, 1, true, 0], [0x1f7, 1, true, 0],
    [0x1f1, 1, false, 0], [0x1f2, 1, false, (sectors >> 8) & 0xff], [0x1f3, 1, false, (lba >>> 24) & 0xff],
    [0x1f4, 1, false, 0], [0x1f5, 1, false, 0], [0x1f1, 1, false, 0], [0x1f2, 1, false, sectors & 0xff],
    [0x1f3, 1, false, lba & 0xff], [0x1f4, 1, false, (lba >> 8) & 0xff], [0x1f5, 1, false, (lba >> 16) & 0xff],
    [0x1f6, 1, false, 0x40], [0x1f7, 1, true, 0],
    [BMIBA + 4, 4, false, PRDT], [BMIBA, 1, true, 0], [BMIBA, 1, false, 0x08], [0x1f7, 1, false, 0x25],
    [0x3f6, 1, true, 0], [BMIBA, 1, true, 0], [BMIBA, 1, false, 0x09],
    // the interrupt (posted once INTRQ is up)
    [BMIBA + 2, 1, true, 0], [BMIBA, 1, true, 0], [BMIBA, 1, false, 0x08], [0x3f6, 1, true, 0], [0x3f6, 1, true, 0],
    [0x1f7, 1, true, 0], [BMIBA + 2, 1, true, 0], [BMIBA + 2, 1, false, -1],
  ];
}
const START_STEP = 22;

let units = 0; // round trips (pio) or commands (dma) done
let spurious = 0;
/** Warm-up before the measured windows: every function on the path optimised (TurboFan) before them. */
const total = (mode === 'pio' ? 30_000 : 1000) + RUNS * N;
const warm = total - RUNS * N;
const cpu: number[] = [];
const young: number[] = [];
let done: () => void = () => {};
const finished = new Promise<void>((r) => (done = r));
let failed = '';

/**
 * Samples every SAMPLE_EVERY units, warm-up included, so the branch that
 * calls sample() has run long before the windows and never deoptimises the
 * hot path when they start (sample() itself runs too rarely to be optimised).
 */
const SAMPLE_EVERY = mode === 'pio' ? 1000 : 10;
if (N % SAMPLE_EVERY !== 0) throw new Error(`bench-evtchn: N must be a multiple of ${SAMPLE_EVERY}`);
let lastYoung = -1;
/** With --expose-gc: a full collection where the measured windows start, so no major GC from start-up lands in them. */
const gc = (globalThis as { gc?: () => void }).gc;
/**
 * BENCH_CALLGRIND=<the preload shim's path> (under valgrind --tool=callgrind
 * --collect-atstart=no): callgrind counts from the first measured unit to
 * the last, nothing else.
 */
const collect: (() => void) | null =
  process.env.BENCH_CALLGRIND !== undefined
    ? (await import('koffi')).default.load(process.env.BENCH_CALLGRIND).func('void stubdm_bench_collect(void)')
    : null;
function sample(): void {
  if (units === warm) gc?.();
  if ((units === warm || units === total) && collect !== null) collect();
  if (units >= warm && (units - warm) % N === 0) {
    const t = process.cpuUsage();
    cpu.push(t.user + t.system);
  }
  if (mode === 'pio' && units >= warm) {
    // Young-generation growth per unit; a sample with a scavenge in it is left out.
    const y = newSpaceUsed();
    if (lastYoung >= 0 && y >= lastYoung) young.push((y - lastYoung) / SAMPLE_EVERY);
    lastYoung = y;
  }
}

let first = true;
/** pio: Xen's side in front of every wake-up. */
function xenPio(): void {
  if (!first) {
    if (!answered()) failed ||= `round trip ${units} not answered`;
    units++;
  }
  first = false;
  if (units % SAMPLE_EVERY === 0) sample();
  if (units === total) return done();
  post(IOREQ_TYPE_PIO, ALT_STATUS, 1, true, 0);
}

let steps = dmaSteps(0, REQ / 512);
let step = -1;
let lba = 0;
/** dma: the next step of the current command, or nothing while the transfer runs. */
function xenDma(): void {
  if (step >= 0 && !answered()) {
    spurious++; // the DM was woken and found no request (the FIFO holds the port every turn)
    return;
  }
  if (step === START_STEP && irq14 === 0) {
    spurious++;
    return; // waiting for the transfer's interrupt
  }
  step++;
  if (step === steps.length) {
    if (irq14 !== 0) failed ||= `command ${units}: INTRQ still up after the Status read`;
    units++;
    if (units % SAMPLE_EVERY === 0) sample();
    if (units === total) return done();
    lba = (lba + REQ / 512) % (IMAGE / 512);
    steps = dmaSteps(lba, REQ / 512);
    step = 0;
  }
  const [port, size, read, value] = steps[step];
  post(IOREQ_TYPE_PIO, port, size, read, value < 0 ? lastData() : value);
}

const real = loadFdWatch();
const pio = mode === 'pio';
const fdwatch: FdWatch = {
  ...real,
  evtchnWatch: (wfd, q, hold, answers, onPorts) =>
    real.evtchnWatch(wfd, q, hold, answers, (status) => {
      if (pio) xenPio();
      else xenDma();
      onPorts(status);
    }),
};

const host = openXenHost({ domid: 5, ramBytes: 64 << 20, vcpus: 1, log: quiet }, { libs, fdwatch });
const board = new Board(host.memory, host.interrupts, host.power, host.routing);
let backend: BlockBackend;
if (mode === 'dma') {
  const path = join(dir, 'disk.img');
  writeFileSync(path, new Uint8Array(IMAGE).fill(0x5a)); // written just now: in the page cache
  backend = await openBlockBackend({ path, cache: 'writeback' });
} else {
  backend = new MemoryBackend(new Uint8Array(1 << 20));
}
const ide = IdeController.forBoard(board, [{ kind: 'disk', backend }], quiet);
installPcPlatform(board, { ide, ramBytes: 64 << 20, log: quiet });
const server = new IoreqServer(host, board, quiet);

if (mode === 'dma') {
  // BAR4 at BMIBA, I/O and bus mastering on (as the firmware leaves it), through config ioreqs served directly.
  const cfg = (reg: number, size: number, v: number) => board.pci.configWrite(IDE_DEVFN, reg, size as 1 | 2 | 4, v);
  cfg(0x20, 4, BMIBA | 1);
  cfg(0x04, 2, 5);
  // 128 PRD entries of one page, scattered as a 1 MiB O_DIRECT dd buffer's pages are.
  const prd = new Uint8Array(128 * 8);
  const v = new DataView(prd.buffer);
  for (let i = 0; i < 128; i++) {
    v.setUint32(i * 8, 0x100000 + i * 0x2000, true);
    v.setUint32(i * 8 + 4, 0x1000 | (i === 127 ? 0x80000000 : 0), true);
  }
  if (!host.memory.write(PRDT, prd, 0, prd.length)) throw new Error('bench-evtchn: PRD table not written');
}
server.start();
// The first event; every unmask after it is the next one.
writeSync(fd, new Uint8Array(new Uint32Array([VCPU0_PORT]).buffer));
await finished;
server.stop();
host.close();
await backend.close();
closeSync(fd);
rmSync(dir, { recursive: true, force: true });

if (failed) throw new Error(`bench-evtchn: ${failed}`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const per: number[] = [];
for (let i = 1; i < cpu.length; i++) per.push(((cpu[i] - cpu[i - 1]) * 1000) / N);
if (mode === 'pio') {
  console.log(`native_ioreq_roundtrip ${Math.round(median(per))} ns/op`);
  console.log(`native_alloc_bytes_per_ioreq ${young.length > 0 ? median(young).toFixed(2) : "n/a"} bytes`);
} else {
  console.log(`native_dma_read_512k ${(median(per) / 1000).toFixed(1)} us/command`);
  console.log(`native_dma_idle_wakeups ${(spurious / total).toFixed(2)} wakeups/command`);
}
