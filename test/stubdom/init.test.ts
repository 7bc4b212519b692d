/**
 * The stub domain's /init logic (rootfs/lib/stubdom.sh) against a fake
 * xenstore: xenstore-read/-list/-exists are shell scripts on PATH that serve a
 * directory tree, the way libxl lays the keys out (libxl_dm.c
 * libxl__write_stub_dmargs: one key per argument under <vm>/image/dm-argv).
 * Runs with the machine's sh and, when the build has unpacked it, busybox sh
 * (what the stub domain runs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const lib = resolve('rootfs/lib/stubdom.sh');
const busybox = resolve('build/cache/x/bin/busybox');
const shells: string[][] = [['sh']];
if (existsSync(busybox)) shells.push([busybox, 'sh']);

const STUB = 7;

/** A fake xenstore rooted at dir; relative paths are the stub domain's. */
function fakeXenstore(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const resolvePath = `p="$1"; case "$p" in /*) ;; *) p="/local/domain/${STUB}/$p" ;; esac; f="${dir}/xs$p"`;
  const tools: Record<string, string> = {
    // like the real one: any number of paths, one value per line
    'xenstore-read': `for a in "$@"; do set -- "$a"; ${resolvePath}; [ -f "$f" ] || { echo "xenstore-read: couldn't read path $1" >&2; exit 1; }; cat "$f"; echo; done`,
    // libxenstore lists children in no particular order: shuffle them
    'xenstore-list': `${resolvePath}; [ -d "$f" ] || exit 1; ls "$f" | sort -r`,
    'xenstore-exists': `${resolvePath}; [ -e "$f" ]`,
    'xenstore-write': `v="$2"; ${resolvePath}; mkdir -p "$(dirname "$f")"; printf %s "$v" >"$f"`,
  };
  for (const [name, body] of Object.entries(tools)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return bin;
}

function xsWrite(dir: string, path: string, value: string): void {
  const f = join(dir, 'xs', path);
  mkdirSync(join(f, '..'), { recursive: true });
  writeFileSync(f, value); // xenstore values carry no trailing newline
}

/** Lays out a guest `guest` whose dm-argv is `argv`, as libxl does. */
function guestWithArgv(dir: string, guest: number, argv: string[]): void {
  const vm = '/vm/0b6f1e5c-1f4e-4a39-9c1f-2f1b8c0e7a11';
  xsWrite(dir, `/local/domain/${STUB}/target`, String(guest));
  xsWrite(dir, `/local/domain/${guest}/vm`, vm);
  argv.forEach((a, i) => xsWrite(dir, `${vm}/image/dm-argv/${String(i + 1).padStart(3, '0')}`, a));
}

function run(shell: string[], dir: string, script: string): { status: number | null; out: string; err: string } {
  const bin = fakeXenstore(dir);
  const r = spawnSync(shell[0]!, [...shell.slice(1), '-c', `. "${lib}"; ${script}`], {
    encoding: 'utf8',
    env: { PATH: `${bin}:/usr/bin:/bin`, STUBDM_ARGV_FILE: join(dir, 'dm-argv') },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

const libxlArgv = [
  '-xen-domid', '5', '-no-shutdown', '-nodefaults', '-no-user-config', '-name', 'hvm guest',
  '-display', 'none', '-serial', '/dev/hvc3', '-boot', 'order=cda',
  '-device', 'e1000,id=nic0,netdev=net0,mac=00:16:3e:11:22:33',
  '-netdev', 'type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no',
  '-device', 'rtl8139,id=nic1,netdev=net1,mac=00:16:3e:11:22:34',
  '-netdev', 'tap,id=net1,ifname=vif5.1-emu,script=no',
  '-netdev', 'user,id=net2',
  '-incoming', '$STUBDOM_RESTORE_INCOMING_ARG',
  '-machine', 'xenfv,suppress-vmdesc=on', '-m', '2032',
  '-drive', 'file=/dev/xvda,if=ide,index=0,media=disk,format=host_device,cache=writeback',
];

for (const shell of shells) {
  const name = shell.join(' ');

  test(`${name}: dm-argv is read in key order, one argument per key, rewritten for the stub domain`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      guestWithArgv(dir, 5, libxlArgv);
      const r = run(shell, dir, 'read_dm_argv 5 "$STUBDM_ARGV_FILE"');
      assert.equal(r.status, 0, r.err);
      const argv = readFileSync(join(dir, 'dm-argv'), 'utf8').split('\n').slice(0, -1);
      // The restore console by name (stubdm opens it raw); the save console as fd set 1 when it exists.
      const expected = libxlArgv.map((a) => (a === '$STUBDOM_RESTORE_INCOMING_ARG' ? 'file:/dev/hvc2' : a));
      expected.push('-chardev', 'socket,id=libxl-cmd,path=/run/stubdm-qmp.sock,server=on,wait=off',
        '-mon', 'chardev=libxl-cmd,mode=control');
      assert.deepEqual(argv, expected);
      // open_consoles opened the save console (a char device here): fd 4 becomes fd set 1.
      const r2 = run(shell, dir, 'STUBDM_SAVE_CONSOLE=/dev/null; open_consoles; read_dm_argv 5 "$STUBDM_ARGV_FILE"');
      assert.equal(r2.status, 0, r2.err);
      const argv2 = readFileSync(join(dir, 'dm-argv'), 'utf8').split('\n').slice(0, -1);
      assert.deepEqual(argv2, [...expected, '-add-fd', 'fd=4,set=1,opaque=stubdom-save-console']);
      // No save console: no fd set, and the shell (/init) carries on.
      const r3 = run(shell, dir, 'STUBDM_SAVE_CONSOLE=/nonexistent/hvc1; open_consoles; read_dm_argv 5 "$STUBDM_ARGV_FILE"; echo survived');
      assert.equal(r3.status, 0, r3.err);
      assert.match(r3.out, /survived/);
      assert.deepEqual(readFileSync(join(dir, 'dm-argv'), 'utf8').split('\n').slice(0, -1), expected);
      // the taps to bridge, in NIC order; the user netdev is not one
      assert.equal(readFileSync(join(dir, 'dm-argv.taps'), 'utf8'), 'vif5.0-emu\nvif5.1-emu\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: keys sort numerically past 999`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      const many = Array.from({ length: 1002 }, (_, i) => `a${i + 1}`);
      guestWithArgv(dir, 3, many);
      const r = run(shell, dir, 'dm_argv_keys "$(xenstore-read /local/domain/3/vm)"');
      assert.equal(r.status, 0, r.err);
      const keys = r.out.split('\n').filter(Boolean);
      assert.equal(keys.length, 1002);
      assert.deepEqual(keys.slice(-4), ['999', '1000', '1001', '1002']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: modules: a kernel with everything built in has no load-order, and that is no error`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      // our kernel: no modules directory at all, or one without load-order
      let r = run(shell, dir, `load_modules "${join(dir, 'nomodules')}" && load_modules "${dir}" && echo done`);
      assert.equal(r.status, 0, r.err);
      assert.equal(r.err, '');
      assert.equal(r.out, 'done\n');
      // Debian's kernel: a module that does not load is logged, not fatal
      mkdirSync(join(dir, 'mods'));
      writeFileSync(join(dir, 'mods', 'load-order'), 'xen-privcmd\n');
      const calls = join(dir, 'calls');
      r = run(shell, dir, `insmod() { echo "$*" >>"${calls}"; return 1; }; load_modules "${join(dir, 'mods')}" && echo done`);
      assert.equal(r.status, 0, r.err);
      assert.equal(readFileSync(calls, 'utf8'), `${join(dir, 'mods', 'xen-privcmd.ko')} unrestricted=1\n`);
      assert.match(r.out, /modules not loaded: xen-privcmd\ndone\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: a guest without a vm path or without dm-argv is an error, not an empty argv`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      xsWrite(dir, `/local/domain/${STUB}/target`, '9');
      let r = run(shell, dir, 'read_dm_argv 9 "$STUBDM_ARGV_FILE"');
      assert.notEqual(r.status, 0);
      xsWrite(dir, '/local/domain/9/vm', '/vm/x');
      mkdirSync(join(dir, 'xs/vm/x/image/dm-argv'), { recursive: true });
      r = run(shell, dir, 'read_dm_argv 9 "$STUBDM_ARGV_FILE"');
      assert.notEqual(r.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: readahead is set on the image's loop device only`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      // a fake /sys/block: loop0 backs another file, loop1 the image, loop2 nothing
      const loops: Record<string, string | null> = { loop0: '/other.img', loop1: '/opt/stubdm.sqfs', loop2: null };
      for (const [dev, backing] of Object.entries(loops)) {
        mkdirSync(join(dir, 'sys/block', dev, 'queue'), { recursive: true });
        writeFileSync(join(dir, 'sys/block', dev, 'queue/read_ahead_kb'), '128\n');
        if (backing !== null) {
          mkdirSync(join(dir, 'sys/block', dev, 'loop'));
          writeFileSync(join(dir, 'sys/block', dev, 'loop/backing_file'), `${backing}\n`);
        }
      }
      const r = run(shell, dir, `STUBDM_SYSFS="${dir}/sys" STUBDM_IMAGE=/opt/stubdm.sqfs; image_readahead 0`);
      assert.equal(r.status, 0, r.err);
      const ra = (dev: string): string => readFileSync(join(dir, 'sys/block', dev, 'queue/read_ahead_kb'), 'utf8').trim();
      assert.deepEqual([ra('loop0'), ra('loop1'), ra('loop2')], ['128', '0', '128']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${name}: device-model state: /init says running early unless stubdom.wait_ready is on the command line`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      const key = join(dir, `xs/local/domain/${STUB}/device-model/5/state`);
      writeFileSync(join(dir, 'cmdline'), 'console=hvc0 stubdom.wait_ready\n');
      // t_running: when /init wrote it (uptime, for the e2e's margin_s), empty when it did not.
      let r = run(shell, dir, `STUBDM_CMDLINE="${dir}/cmdline" target=5; early_running; echo "t=$t_running"`);
      assert.equal(r.status, 0, r.err);
      assert.equal(existsSync(key), false);
      assert.equal(r.out.trim(), 't=');
      writeFileSync(join(dir, 'cmdline'), 'console=hvc0 stubdom.wait_readyx\n');
      r = run(shell, dir, `STUBDM_CMDLINE="${dir}/cmdline" target=5; early_running; echo "t=$t_running"`);
      assert.equal(r.status, 0, r.err);
      assert.equal(readFileSync(key, 'utf8'), 'running');
      assert.match(r.out.trim(), /^t=[0-9]+\.[0-9]+$/);
      rmSync(key);
      writeFileSync(join(dir, 'cmdline'), 'console=hvc0\n');
      r = run(shell, dir, `STUBDM_CMDLINE="${dir}/cmdline" target=5; early_running`);
      assert.equal(r.status, 0, r.err);
      assert.equal(readFileSync(key, 'utf8'), 'running');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

for (const shell of shells) {
  for (const [key, env] of [['net_trace', 'STUBDM_NET_TRACE'], ['disk_trace', 'STUBDM_DISK_TRACE'], ['evtchn_wait_us', 'STUBDM_EVTCHN_WAIT_US']] as const) {
    test(`${shell.join(' ')}: stubdm.${key}=N on the stub domain's command line becomes ${env} for stubdm`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
      try {
        const traceOf = (cmdline: string): string => {
          writeFileSync(join(dir, 'cmdline'), cmdline);
          const r = run(shell, dir, `STUBDM_CMDLINE="${dir}/cmdline"; cmdline_env; echo "v=\${${env}-unset}"`);
          assert.equal(r.status, 0, r.err);
          return r.out.trim();
        };
        // Off in the stub domain unless the command line turns it on (rootfs/lib/stubdom.sh says why).
        const unset = key === 'evtchn_wait_us' ? 'v=0' : 'v=unset';
        assert.equal(traceOf(`xen_privcmd.unrestricted=1 rootfstype=ramfs stubdm.${key}=8192 stubdom.wait_ready\n`), 'v=8192');
        assert.equal(traceOf(`console=hvc0 stubdm.${key}=8192\n`), 'v=8192', 'last on the line');
        assert.equal(traceOf(`stubdm.${key}=64 stubdm.${key}=128\n`), 'v=128', 'the last one counts');
        assert.equal(traceOf('console=hvc0\n'), unset);
        assert.equal(traceOf(`stubdm.${key}=8k xstubdm.${key}=5 stubdm.${key}=\n`), unset, 'digits only, whole words');
        const own = { net_trace: 'v=100', disk_trace: 'v=200', evtchn_wait_us: 'v=300' }[key];
        assert.equal(traceOf('stubdm.net_trace=100 stubdm.disk_trace=200 stubdm.evtchn_wait_us=300\n'), own, 'each its own');
        const none = run(shell, dir, `STUBDM_CMDLINE="${dir}/none"; cmdline_env; echo "v=\${${env}-unset}"`);
        assert.equal(none.status, 0, none.err);
        assert.equal(none.out.trim(), unset, 'no command line to read');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

test('the init script parses with the machine shell', () => {
  execFileSync('sh', ['-n', resolve('rootfs/init')]);
  execFileSync('sh', ['-n', lib]);
});

// The QEMU stub domain (rootfs/lib/qemu-stubdom.sh over stubdom.sh): the same
// argv, but QEMU 7.2 restores from an fd (no file: URI) and is what start_dm runs.
const qemuLib = resolve('rootfs/lib/qemu-stubdom.sh');
for (const shell of shells) {
  test(`${shell.join(' ')}: qemu-stubdom: restore from fd 3, QEMU started with the image's ROM directory`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'stubdom-'));
    try {
      guestWithArgv(dir, 5, libxlArgv);
      // a stand-in QEMU that prints its argv and whether fd 3 is open
      const fakeQemu = join(dir, 'qemu');
      writeFileSync(fakeQemu, '#!/bin/sh\nfor a in "$@"; do echo "arg $a"; done\n[ -e /proc/self/fd/3 ] && echo fd3-open\nexit 0\n');
      chmodSync(fakeQemu, 0o755);
      writeFileSync(join(dir, 'restore'), 'state');
      const r = run(shell, dir, `. "${qemuLib}"; STUBDM_QEMU="${fakeQemu}" STUBDM_DIR=/opt/stubdm STUBDM_RESTORE_CONSOLE="${dir}/restore"; ` +
        `stty() { :; }; read_dm_argv 5 "$STUBDM_ARGV_FILE" && (IFS='\n'; set -- $(cat "$STUBDM_ARGV_FILE"); start_dm "$@")`);
      assert.equal(r.status, 0, r.err);
      const argv = readFileSync(join(dir, 'dm-argv'), 'utf8').split('\n').slice(0, -1);
      assert.equal(argv[argv.indexOf('-incoming') + 1], 'fd:3');
      const args = r.out.split('\n').filter((l) => l.startsWith('arg ')).map((l) => l.slice(4));
      assert.deepEqual(args.slice(0, 2), ['-L', '/opt/stubdm/share/qemu']);
      assert.deepEqual(args.slice(2), argv);
      assert.match(r.out, /fd3-open/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
