// The fdwatch addon on a FIFO: the callback fires when the fd is readable,
// not when it is not, and never after stop(); readable() is a zero-timeout poll.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EVTCHN_A_COUNT,
  EVTCHN_A_ERRNO,
  EVTCHN_A_FAILED,
  EVTCHN_A_IN_PLACE,
  EVTCHN_A_PORT,
  EVTCHN_A_PORTS,
  EVTCHN_A_WAIT_US,
  EVTCHN_A_WAITS,
  EVTCHN_NOTIFY_FAILED,
  loadFdWatch,
  type FdWatch,
} from '../../src/xen/native.ts';
import { loadTapIo } from '../../src/net/native.ts';

let fw: FdWatch;
let dir: string;
let rd: number;
let wr: number;

/** Lets the event loop run `n` full turns (each includes a poll phase). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

function drain(fd: number): number {
  const buf = Buffer.alloc(64);
  let total = 0;
  for (;;) {
    try {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) return total;
      total += n;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return total;
      throw e;
    }
  }
}

before(() => {
  // Builds build/native/fdwatch.node if it is missing or stale (cheap when up to date).
  execFileSync('bash', [fileURLToPath(new URL('../../scripts/build-native.sh', import.meta.url))], { stdio: 'inherit' });
  fw = loadFdWatch();
  dir = mkdtempSync(join(tmpdir(), 'stubdm-fdwatch-'));
  execFileSync('mkfifo', [join(dir, 'p')]);
  rd = openSync(join(dir, 'p'), constants.O_RDONLY | constants.O_NONBLOCK);
  wr = openSync(join(dir, 'p'), constants.O_WRONLY);
});

after(() => {
  closeSync(rd);
  closeSync(wr);
  rmSync(dir, { recursive: true, force: true });
});

test('readable() follows the fd state', () => {
  assert.equal(fw.readable(rd), false);
  writeSync(wr, 'x');
  assert.equal(fw.readable(rd), true);
  assert.equal(drain(rd), 1);
  assert.equal(fw.readable(rd), false);
});

test('watch() calls back only while readable, and never after stop()', async () => {
  let calls = 0;
  let drainOnCall = true;
  let wake: (() => void) | null = null;
  const w = fw.watch(rd, (status) => {
    assert.equal(status, 0);
    calls++;
    if (drainOnCall) drain(rd);
    wake?.();
  });
  await turns(5);
  assert.equal(calls, 0, 'no callback while nothing is readable');

  const fired = new Promise<void>((r) => (wake = r));
  writeSync(wr, 'ab');
  await fired;
  assert.equal(calls, 1);
  await turns(5);
  assert.equal(calls, 1, 'drained in the callback: no further wake-ups');

  // Level-triggered: data left in the pipe keeps calling back.
  drainOnCall = false;
  writeSync(wr, 'c');
  await turns(5);
  assert.ok(calls >= 3, `undrained fd keeps waking (calls=${calls})`);

  w.stop();
  w.stop(); // idempotent
  const before = calls;
  writeSync(wr, 'd');
  await turns(5);
  assert.equal(calls, before, 'no callback after stop()');
  assert.equal(fw.readable(rd), true);
  assert.equal(drain(rd), 2);
});

test('stop() from inside the callback ends the watch', async () => {
  let calls = 0;
  let wake: (() => void) | null = null;
  const fired = new Promise<void>((r) => (wake = r));
  const w = fw.watch(rd, () => {
    calls++;
    w.stop(); // leaves the data in the pipe: a live watch would fire again
    wake?.();
  });
  writeSync(wr, 'z');
  await fired;
  await turns(5);
  assert.equal(calls, 1);
  assert.equal(drain(rd), 1);
  // The fd can be watched again once the old handle is closed.
  await turns(2);
  const w2 = fw.watch(rd, () => {});
  w2.stop();
});

test('watch() refuses a bad fd and a non-function', () => {
  assert.throws(() => fw.watch(-1, () => {}), TypeError);
  assert.throws(() => fw.watch(rd, 42 as unknown as () => void), TypeError);
  // An fd that is not open: libuv refuses it with EBADF.
  assert.throws(() => fw.watch(1_000_000, () => {}), /EBADF|cannot watch/);
});

test('a second watcher on the same fd is refused while the first runs', () => {
  const w = fw.watch(rd, () => {});
  try {
    assert.throws(() => fw.watch(rd, () => {}), /EEXIST|cannot watch/);
  } finally {
    w.stop();
  }
});

test('writable watches, setEvents() pauses and switches, and the callback is told which events are ready', async () => {
  // The same addon, typed with the writable half (src/net/native.ts).
  const tapIo = loadTapIo();
  const watch = tapIo.watch.bind(tapIo);
  const events: number[] = [];
  let wake: (() => void) | null = null;
  const w = watch(wr, (status, ev) => {
    assert.equal(status, 0);
    events.push(ev);
    w.setEvents(0); // once is enough: an empty pipe stays writable
    wake?.();
  }, 2);
  await new Promise<void>((r) => (wake = r));
  assert.deepEqual(events, [2], 'the write end of an empty pipe is writable');
  await turns(5);
  assert.equal(events.length, 1, 'paused by setEvents(0)');
  assert.throws(() => w.setEvents(4), TypeError);
  w.stop();
  w.setEvents(2); // no-op once stopped
  await turns(5);
  assert.equal(events.length, 1);
  assert.throws(() => watch(rd, () => {}, 0), TypeError);
  assert.equal(loadFdWatch() as unknown, tapIo as unknown, 'one addon');

  // Readable and writable on one fd with one watcher: a read end reports 1 only.
  const seen: number[] = [];
  let wake2: (() => void) | null = null;
  const r = watch(rd, (_s, ev) => {
    seen.push(ev);
    drain(rd);
    wake2?.();
  }, 1);
  writeSync(wr, 'q');
  await new Promise<void>((res) => (wake2 = res));
  r.stop();
  assert.deepEqual(seen, [1]);
});

// The event-channel half on a FIFO opened read-write, which stands for
// /dev/xen/evtchn: what is written to it (the ports, as uint32s) is what the
// next read returns, and what the addon writes back (the unmasks) can be read.
test('evtchnFill reads every pending port into the queue, appends after what JS still holds, and unmasks all but the held port with one write', () => {
  const fd = openSync(join(dir, 'p'), constants.O_RDWR | constants.O_NONBLOCK);
  try {
    const ports = (...p: number[]) => Buffer.from(new Uint32Array(p).buffer);
    const readPorts = (): number[] => {
      const b = Buffer.alloc(256);
      let n = 0;
      try {
        n = readSync(fd, b, 0, b.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      }
      return Array.from(new Uint32Array(b.buffer, 0, n / 4));
    };
    const q = new Uint32Array(1 + 4);
    assert.equal(fw.evtchnFill(fd, q, 7), 0, 'nothing pending: 0 at once, no wait');
    assert.equal(q[0], 0);
    writeSync(fd, ports(1101, 7, 1100));
    assert.equal(fw.evtchnFill(fd, q, 7), 3);
    assert.deepEqual(Array.from(q), [3, 1101, 7, 1100, 0]);
    assert.deepEqual(readPorts(), [1101, 1100], 'one unmask write, the held port left out');
    // JS still holds three: a new port goes after them; a full queue takes nothing.
    writeSync(fd, ports(1102, 1103));
    assert.equal(fw.evtchnFill(fd, q, 7), 1);
    assert.deepEqual(Array.from(q), [4, 1101, 7, 1100, 1102]);
    assert.deepEqual(readPorts(), [1103, 1102], '1103 still pending, then the unmask of 1102');
    writeSync(fd, ports(1103));
    assert.equal(fw.evtchnFill(fd, q, 7), 0, 'no room');
    assert.deepEqual(readPorts(), [1103], 'left pending in the device');
    q[0] = 99;
    assert.equal(fw.evtchnFill(fd, q, 7), -22, 'a broken queue count: EINVAL, nothing read');
    assert.equal(fw.evtchnUnmask(fd, 1101), 0);
    assert.deepEqual(readPorts(), [1101]);
    assert.equal(fw.evtchnNotify(fd, 1101), -25, 'IOCTL_EVTCHN_NOTIFY on a FIFO: -ENOTTY, not a throw');
    assert.throws(() => fw.evtchnFill(fd, new Uint8Array(8) as unknown as Uint32Array, 7), TypeError);
    assert.throws(() => fw.evtchnFill(fd, new Uint32Array(1), 7), TypeError);
    assert.throws(() => fw.evtchnNotify(fd, 'x' as unknown as number), TypeError);
  } finally {
    closeSync(fd);
  }
});

test('evtchnWatch reads and unmasks before calling JS (no argument: the ports are in the queue)', async () => {
  const fd = openSync(join(dir, 'p'), constants.O_RDWR | constants.O_NONBLOCK);
  try {
    fw.setNonblock(fd);
    const q = new Uint32Array(1 + 8);
    const answers = new Uint32Array(EVTCHN_A_PORTS + 8);
    const seen: unknown[][] = [];
    let wake: (() => void) | null = null;
    const w = fw.evtchnWatch(fd, q, 7, answers, (...args: unknown[]) => {
      seen.push([args.length, ...q.subarray(1, 1 + q[0])]);
      q[0] = 0;
      wake?.();
    });
    await turns(5);
    assert.deepEqual(seen, [], 'no callback while nothing is pending');
    const fired = new Promise<void>((r) => (wake = r));
    writeSync(fd, Buffer.from(new Uint32Array([7]).buffer));
    await fired;
    await turns(5);
    assert.deepEqual(seen, [[0, 7]], 'the held port is not unmasked, so nothing comes back');
    w.stop();
    assert.throws(() => fw.evtchnWatch(fd, q, 7, answers, 1 as unknown as () => void), TypeError);
    assert.throws(() => fw.evtchnWatch(fd, q, 7, new Uint32Array(EVTCHN_A_PORTS), () => {}), TypeError, 'answers without room for a port');
    assert.throws(() => (fw.evtchnWatch as (...a: unknown[]) => unknown)(fd, q, 7, () => {}), TypeError, 'the old four-argument form');
  } finally {
    closeSync(fd);
  }
});

// On a FIFO every IOCTL_EVTCHN_NOTIFY fails (ENOTTY): what the addon does with
// a failed notify is what this sees; that it notifies at all, and when.
test('evtchnWatch notifies the answers once the callback and its microtasks are done, reports a failure at once, and stop() notifies what is queued', async () => {
  const fd = openSync(join(dir, 'p'), constants.O_RDWR | constants.O_NONBLOCK);
  try {
    fw.setNonblock(fd);
    const q = new Uint32Array(1 + 8);
    const answers = new Uint32Array(EVTCHN_A_PORTS + 8);
    const calls: string[] = [];
    let wake: (() => void) | null = null;
    const w = fw.evtchnWatch(fd, q, 7, answers, (status?: number) => {
      if (status === EVTCHN_NOTIFY_FAILED) {
        calls.push(`failed ${answers[EVTCHN_A_FAILED]} port ${answers[EVTCHN_A_PORT]} errno ${answers[EVTCHN_A_ERRNO]}`);
        wake?.();
        return;
      }
      calls.push(`ports ${Array.from(q.subarray(1, 1 + q[0]))}`);
      q[0] = 0;
      answers[EVTCHN_A_PORTS] = 1101;
      answers[EVTCHN_A_PORTS + 1] = 1102;
      answers[EVTCHN_A_COUNT] = 2;
      queueMicrotask(() => calls.push(`microtask: ${answers[EVTCHN_A_COUNT]} queued, ${answers[EVTCHN_A_FAILED]} failed`));
    });
    const fired = new Promise<void>((r) => (wake = r));
    writeSync(fd, Buffer.from(new Uint32Array([7]).buffer));
    await fired;
    assert.deepEqual(calls, ['ports 7', 'microtask: 2 queued, 0 failed', 'failed 2 port 1102 errno 25']);
    assert.equal(answers[EVTCHN_A_COUNT], 0, 'all taken');
    // Queued and not yet notified when the watch stops (paused from inside a callback): stop() makes them.
    answers[EVTCHN_A_PORTS] = 1103;
    answers[EVTCHN_A_COUNT] = 1;
    w.stop();
    assert.equal(answers[EVTCHN_A_COUNT], 0);
    assert.deepEqual([answers[EVTCHN_A_FAILED], answers[EVTCHN_A_PORT]], [3, 1103]);
    w.stop();
    assert.equal(answers[EVTCHN_A_FAILED], 3, 'stop() is idempotent');
  } finally {
    closeSync(fd);
  }
});

// Waiting in place (native/fdwatch.c): after a callback that answered, the
// addon waits for the next port itself. Here the callback writes the next
// port into the FIFO before it returns (held port 7: its unmask writes
// nothing back), so every wait finds one at once and no test times anything.
// The answer's notify fails on a FIFO (ENOTTY); the wait is made all the same.
let fifos = 0;
function fifo(): string {
  const path = join(dir, `evtchn${++fifos}`);
  execFileSync('mkfifo', [path]);
  return path;
}

function portBurst(waitUs: number, ports: number, extra?: (n: number) => void) {
  const fd = openSync(fifo(), constants.O_RDWR | constants.O_NONBLOCK);
  fw.setNonblock(fd);
  const q = new Uint32Array(1 + 8);
  const answers = new Uint32Array(EVTCHN_A_PORTS + 8);
  answers[EVTCHN_A_WAIT_US] = waitUs;
  let n = 0;
  let wake: (() => void) | null = null;
  const done = new Promise<void>((r) => (wake = r));
  const port7 = Buffer.from(new Uint32Array([7]).buffer);
  const w = fw.evtchnWatch(fd, q, 7, answers, (status?: number) => {
    if (status === EVTCHN_NOTIFY_FAILED) return;
    assert.deepEqual(Array.from(q.subarray(1, 1 + q[0])), [7]);
    q[0] = 0;
    n++;
    answers[EVTCHN_A_PORTS] = 1101;
    answers[EVTCHN_A_COUNT] = 1;
    extra?.(n);
    if (n < ports) writeSync(fd, port7);
    else wake?.();
  });
  writeSync(fd, port7);
  return {
    answers,
    // Resolved from inside the last callback: what awaits it runs in that callback's
    // microtasks, before its wait (an immediate would leave libuv work and no wait at all).
    done,
    count: () => n,
    close: () => {
      w.stop();
      closeSync(fd);
    },
  };
}

test('evtchnWatch waits in place after an answer: the next port is served without a libuv turn, at most 64 rounds a turn', async () => {
  const b = portBurst(20000, 300);
  try {
    await b.done;
    assert.equal(b.count(), 300);
    // Each port is in the FIFO before the wait starts, so every wait finds one. 300 ports
    // take 5 libuv turns of at most 64 rounds; the first round of a turn came through libuv,
    // and the last port's round makes no wait before this runs: 295 at most (298 without
    // the bound). A wait is left out where the test runner had an immediate due.
    const waits = b.answers[EVTCHN_A_WAITS];
    assert.equal(b.answers[EVTCHN_A_IN_PLACE], waits, 'every wait ended by the port');
    assert.ok(waits >= 280 && waits <= 295, `${waits} ports served in place: most, and never past 64 rounds a libuv turn`);
  } finally {
    b.close();
  }
});

test('evtchnWatch does not wait in place when told 0, when the callback answered nothing, when an immediate is due, or while a watch it started is not in epoll yet', async () => {
  const off = portBurst(0, 10);
  try {
    await off.done;
    assert.equal(off.count(), 10);
    assert.deepEqual([off.answers[EVTCHN_A_WAITS], off.answers[EVTCHN_A_IN_PLACE]], [0, 0]);
  } finally {
    off.close();
  }
  const imm = portBurst(20000, 10, () => setImmediate(() => {}));
  try {
    await imm.done;
    await turns(1);
    assert.equal(imm.count(), 10);
    assert.deepEqual([imm.answers[EVTCHN_A_WAITS], imm.answers[EVTCHN_A_IN_PLACE]], [0, 0], 'uv_backend_timeout is 0: libuv has work');
  } finally {
    imm.close();
  }
  // A watch started in the callback is not in libuv's epoll set until its next poll phase
  // (uv_backend_timeout is 0 meanwhile: libuv src/unix/core.c).
  let started: ReturnType<FdWatch['watch']> | null = null;
  const late = portBurst(20000, 10, (n) => {
    if (n === 5) started = fw.watch(rd, () => drain(rd));
  });
  try {
    await late.done;
    assert.equal(late.count(), 10);
    // Rounds 1-4 waited and found the next port; round 5 started the watch and made no wait;
    // libuv's next turn registered it, and rounds 6-9 waited again (round 10 is still running).
    assert.deepEqual([late.answers[EVTCHN_A_WAITS], late.answers[EVTCHN_A_IN_PLACE]], [8, 8]);
  } finally {
    (started as ReturnType<FdWatch['watch']> | null)?.stop();
    late.close();
  }
  const fd = openSync(fifo(), constants.O_RDWR | constants.O_NONBLOCK);
  try {
    const q = new Uint32Array(1 + 8);
    const answers = new Uint32Array(EVTCHN_A_PORTS + 8);
    answers[EVTCHN_A_WAIT_US] = 20000;
    let calls = 0;
    const w = fw.evtchnWatch(fd, q, 7, answers, () => {
      calls++;
      q[0] = 0;
    });
    writeSync(fd, Buffer.from(new Uint32Array([7, 7]).buffer));
    await turns(3);
    w.stop();
    assert.equal(calls, 1, 'both ports in one read');
    assert.equal(answers[EVTCHN_A_WAITS], 0, 'no answer, no wait');
  } finally {
    closeSync(fd);
  }
});

test("evtchnWatch's wait in place ends when another fd libuv watches is ready, and that fd's callback runs", async () => {
  drain(rd);
  const other: string[] = [];
  let otherRan: () => void = () => {};
  const ran = new Promise<void>((r) => (otherRan = r));
  const ow = fw.watch(rd, () => {
    other.push(`readable, ${drain(rd)} bytes`);
    otherRan();
  });
  await turns(2); // the watch is in libuv's epoll set
  const b = portBurst(20000, 1, () => writeSync(wr, Buffer.from('x')));
  try {
    await ran;
    assert.deepEqual([b.answers[EVTCHN_A_WAITS], b.answers[EVTCHN_A_IN_PLACE]], [1, 0], 'one wait, ended by the other fd, not a port');
    assert.deepEqual(other, ['readable, 1 bytes']);
  } finally {
    ow.stop();
    b.close();
  }
});

test('readNowait: preadv2(RWF_NOWAIT) fills the views from the page cache, 0 at the end, -EAGAIN for what an O_DIRECT write took out of the cache, -ESPIPE on a pipe; bad arguments throw', () => {
  const raw = fw as unknown as { readNowait(fd: number, off: number, count: number, ...views: Uint8Array[]): number };
  const m = { readNowait: (fd: number, views: Uint8Array[], count: number, off: number) => raw.readNowait(fd, off, count, ...views) };
  const f = join(dir, 'nowait');
  const fd = openSync(f, constants.O_RDWR | constants.O_CREAT);
  try {
    const data = Buffer.alloc(256 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 11) & 0xff;
    writeSync(fd, data, 0, data.length, 0);
    const a = new Uint8Array(1000);
    const b = new Uint8Array(7192);
    assert.equal(m.readNowait(fd, [a, b, new Uint8Array(9)], 2, 4096), 8192, 'count: only the first two views');
    assert.deepEqual(Buffer.concat([a, b]), data.subarray(4096, 4096 + 8192));
    assert.equal(m.readNowait(fd, [a], 1, data.length - 10), 10, 'up to the end of the file');
    assert.equal(m.readNowait(fd, [a], 1, data.length), 0);
    assert.equal(m.readNowait(rd, [a], 1, 0), -29, 'a pipe: ESPIPE');
    // An O_DIRECT write drops its range from the page cache (where the file system has O_DIRECT).
    let direct = -1;
    try {
      direct = openSync(f, constants.O_RDWR | constants.O_DIRECT);
    } catch {
      // tmpfs and friends: no O_DIRECT, no check of -EAGAIN here
    }
    if (direct >= 0) {
      try {
        const raw = Buffer.alloc(64 * 1024 + 4096);
        let wrote = false;
        for (let o = 0; o < 4096 && !wrote; o += 16) {
          try {
            writeSync(direct, raw, o, 64 * 1024, 128 * 1024);
            wrote = true;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
          }
        }
        if (wrote) assert.equal(m.readNowait(fd, [a], 1, 128 * 1024), -11, 'not in the page cache: EAGAIN, no wait');
      } finally {
        closeSync(direct);
      }
    }
    assert.throws(() => m.readNowait(fd, [a], 257, 0), TypeError);
    assert.throws(() => m.readNowait(fd, [a], 2, 0), TypeError, 'fewer views than count');
    assert.throws(() => (raw.readNowait as (...a: unknown[]) => number)(fd, [a, b], 2, 0), TypeError, 'the old form, an array of views');
    assert.throws(() => m.readNowait(fd, [a, 5 as unknown as Uint8Array], 2, 0), TypeError);
    assert.throws(() => m.readNowait(fd, [a], 1, -1), TypeError);
  } finally {
    closeSync(fd);
  }
});

test('willNeed: posix_fadvise(WILLNEED) on a file is 0, on a pipe -ESPIPE; bad arguments throw', () => {
  const m = fw as unknown as { willNeed(fd: number, off: number, len: number): number };
  const f = join(dir, 'ra');
  const fd = openSync(f, constants.O_RDWR | constants.O_CREAT);
  try {
    writeSync(fd, Buffer.alloc(65536, 1));
    assert.equal(m.willNeed(fd, 0, 65536), 0);
    assert.equal(m.willNeed(rd, 0, 4096), -29);
    assert.throws(() => m.willNeed(fd, -1, 10), TypeError);
  } finally {
    closeSync(fd);
  }
});
