import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError, parseArgs } from '../../src/cli/index.ts';
import type { SocketSpec } from '../../src/chardev/spec.ts';

const split = (s: string) => s.trim().split(/\s+/);

// docs/xen-contract.md §13, captured: what libxl passed to a dom0 device model (no disk/NIC, vga="none").
const DOM0 = split(`-xen-domid 1 -no-shutdown
 -chardev socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-1,server=on,wait=off -mon chardev=libxl-cmd,mode=control
 -chardev socket,id=libxenstat-cmd,path=/var/run/xen/qmp-libxenstat-1,server=on,wait=off -mon chardev=libxenstat-cmd,mode=control
 -nodefaults -no-user-config -name hvm1 -vnc none -display none -serial file:/var/log/xen/hvm1-serial.log
 -boot order=cda -net none -machine xenfv,suppress-vmdesc=on -m 128`);

// docs/xen-contract.md §13, captured: the dm-argv libxl wrote for a Linux stub domain.
const STUBDOM = split(`-xen-domid 1 -no-shutdown -nodefaults -no-user-config -name hvmstub -display none
 -serial /dev/hvc3 -boot order=cda -device rtl8139,id=nic0,netdev=net0,mac=00:16:3e:00:00:01
 -netdev type=tap,id=net0,ifname=vif1.0-emu,br=xenbr0,script=no,downscript=no -machine xenfv,suppress-vmdesc=on
 -m 128 -drive file=/dev/xvda,if=ide,index=0,media=disk,format=host_device,cache=writeback`);

// docs/xen-contract.md §13: stub domain argv for a typical guest (domid 5, 2 vCPUs, stdvga, e1000).
const CONTRACT = split(`-xen-domid 5 -no-shutdown -nodefaults -no-user-config -name hvm1 -display none
 -device VGA,vgamem_mb=16 -boot order=cda -smp 2,maxcpus=2
 -device e1000,id=nic0,netdev=net0,mac=00:16:3E:11:22:33
 -netdev type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no
 -machine xenfv,suppress-vmdesc=on -m 2032
 -drive file=/dev/xvda,if=ide,index=0,media=disk,format=host_device,cache=writeback`);

// docs/xen-contract.md §13: the dom0 QMP part (inherited listening fd, -S).
const DOM0_FD = split(`-xen-domid 5 -no-shutdown -chardev socket,id=libxl-cmd,fd=7,server=on,wait=off -S
 -mon chardev=libxl-cmd,mode=control
 -chardev socket,id=libxenstat-cmd,path=/var/run/xen/qmp-libxenstat-5,server=on,wait=off
 -mon chardev=libxenstat-cmd,mode=control -nodefaults -no-user-config -name hvm1 -vnc 0.0.0.0:0,to=99 -display none
 -machine pc,accel=xen,suppress-vmdesc=on,max-ram-below-4g=3G -m 2032 -runas 124:125 -xen-domid-restrict -chroot /var/empty`);

async function fails(argv: string[], re: RegExp): Promise<void> {
  await assert.rejects(parseArgs(argv), (e: Error) => e instanceof CliError && re.test(e.message) && !e.message.includes('\n'));
}

test('dom0 argv libxl passed (docs/xen-contract.md §13)', async () => {
  const { config: c, warnings } = await parseArgs(DOM0);
  assert.deepEqual(warnings, []);
  assert.equal(c.domid, 1);
  assert.equal(c.stubdom, true);
  assert.equal(c.name, 'hvm1');
  assert.equal(c.ramMiB, 128);
  assert.deepEqual(c.machine, { type: 'xenfv', xenPlatform: true, suppressVmdesc: true, maxRamBelow4g: null });
  assert.deepEqual(c.monitors, [
    { chardev: 'libxl-cmd', path: '/var/run/xen/qmp-libxl-1', fd: null },
    { chardev: 'libxenstat-cmd', path: '/var/run/xen/qmp-libxenstat-1', fd: null },
  ]);
  assert.deepEqual(c.serials, [
    { index: 0, id: 'serial0', spec: { backend: 'file', path: '/var/log/xen/hvm1-serial.log', append: false } },
  ]);
  assert.equal(c.bootOrder, 'cda');
  assert.equal(c.netNone, true);
  assert.equal(c.noShutdown, true);
  assert.equal(c.startPaused, false);
  assert.deepEqual([c.vcpus, c.maxVcpus], [1, 1]);
});

test('stub domain dm-argv libxl wrote (docs/xen-contract.md §13)', async () => {
  const { config: c, warnings } = await parseArgs(STUBDOM);
  assert.deepEqual(warnings, ['-device rtl8139: not emulated yet; ignored']);
  assert.deepEqual(c.serials, [{ index: 0, id: 'serial0', spec: { backend: 'tty', path: '/dev/hvc3' } }]);
  assert.deepEqual(c.monitors, []);
  assert.deepEqual(c.drives, [
    { index: 0, file: '/dev/xvda', media: 'disk', format: 'host_device', cache: 'writeback', readonly: false, id: 'ide0-hd0', qdev: null },
  ]);
  assert.deepEqual(c.netdevs, [
    { type: 'tap', id: 'net0', ifname: 'vif1.0-emu', bridge: 'xenbr0', script: 'no', downscript: 'no' },
  ]);
  assert.equal(c.devices[0].driver, 'rtl8139');
  assert.equal(c.devices[0].netdev, 'net0');
  assert.equal(c.devices[0].mac, '00:16:3e:00:00:01');
});

test('-vga std is -device VGA; -vga none is nothing; other cards are reported', async () => {
  const std = await parseArgs(['--sim', '-vga', 'std']);
  assert.deepEqual(std.config.devices.map((d) => [d.driver, d.vgamemMb]), [['VGA', null]]);
  assert.deepEqual(std.warnings, []);
  const both = await parseArgs(['--sim', '-vga', 'std', '-device', 'VGA,vgamem_mb=8']);
  assert.deepEqual(both.config.devices.map((d) => [d.driver, d.vgamemMb]), [['VGA', 8]], 'one VGA, the -device one');
  assert.deepEqual((await parseArgs(['--sim', '-vga', 'none'])).config.devices, []);
  const cirrus = await parseArgs(['--sim', '-vga', 'cirrus']);
  assert.deepEqual(cirrus.config.devices, []);
  assert.deepEqual(cirrus.warnings, ['-vga cirrus: only std (standard VGA) and none are emulated; ignored']);
});

test('docs/xen-contract.md §13 argv: smp, VGA memory, e1000, 2032 MiB', async () => {
  const { config: c, warnings } = await parseArgs(CONTRACT);
  assert.deepEqual(warnings, [], 'VGA and e1000 are emulated: no warning');
  assert.equal(c.domid, 5);
  assert.deepEqual([c.vcpus, c.maxVcpus], [2, 2]);
  assert.equal(c.ramMiB, 2032);
  assert.equal(c.devices[0].vgamemMb, 16);
  assert.equal(c.devices[1].mac, '00:16:3e:11:22:33');
  assert.equal(c.devices[1].id, 'nic0');
});

test('dom0 argv with an inherited QMP fd, -S, pc,accel=xen and dm_restrict options', async () => {
  const { config: c, warnings } = await parseArgs(DOM0_FD);
  assert.deepEqual(c.monitors[0], { chardev: 'libxl-cmd', path: null, fd: 7 });
  assert.equal(c.startPaused, true);
  assert.deepEqual(c.machine, { type: 'pc', xenPlatform: false, suppressVmdesc: true, maxRamBelow4g: 3 * 2 ** 30 });
  assert.equal(c.runas, '124:125');
  assert.equal(c.chroot, '/var/empty');
  assert.equal(c.xenDomidRestrict, true);
  assert.deepEqual(warnings, ['-vnc 0.0.0.0:0,to=99: no -device VGA, nothing to show; ignored']);
});

test('our own options, double dashes and = forms', async () => {
  const { config: c } = await parseArgs(['--sim', '--no-stubdom', '--log-level=debug', '-m', 'size=1G', '--smp=4']);
  assert.equal(c.sim, true);
  assert.equal(c.stubdom, false);
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.domid, 1, 'sim defaults to domain 1');
  assert.equal(c.ramMiB, 1024);
  assert.deepEqual([c.vcpus, c.maxVcpus], [4, 4]);
});

test('serial forms: pty, null, none, chardev:ID, two ports, -chardev ids are labels', async () => {
  const { config: c } = await parseArgs([
    '--sim', '-chardev', 'file,id=log,path=/tmp/x', '-serial', 'none', '-serial', 'chardev:log', '-serial', 'pty',
  ]);
  assert.deepEqual(c.serials, [
    { index: 0, id: 'log', spec: { backend: 'file', path: '/tmp/x', append: false } },
    { index: 1, id: 'serial1', spec: { backend: 'pty' } },
  ]);
  await fails(['--sim', '-serial', 'null', '-serial', 'null', '-serial', 'null', '-serial', 'null', '-serial', 'null'], /at most 4 serial ports \(COM1-COM4\)/);
  await fails(['--sim', '-serial', 'chardev:nope'], /no -chardev with id=nope/);
  await fails(['--sim', '-serial', 'telnet:1.2.3.4:5'], /not supported \(file:PATH, pipe:PATH, tcp:/);
});

/** A socket spec with the defaults QEMU gives the keys left out. */
const sock = (o: Partial<SocketSpec>): SocketSpec => ({
  backend: 'socket', path: null, fd: null, host: null, port: null, server: false, wait: false, nodelay: false, reconnect: 0, ...o,
});

test('serial sockets and pipes: -serial tcp:/unix:/pipe: and -chardev socket/pipe, as QEMU spells them', async () => {
  const { config: c } = await parseArgs([
    '--sim',
    '-serial', 'tcp::4444,server,nowait',
    '-serial', 'tcp:[::1]:4445,server=on,wait=off,nodelay=on',
    '-serial', 'unix:/tmp/a,,b.sock,server=on',
    '-serial', 'chardev:c4',
    '-chardev', 'socket,id=c4,host=example.org,port=23,reconnect=5',
  ]);
  assert.deepEqual(c.serials, [
    { index: 0, id: 'serial0', spec: sock({ host: '', port: 4444, server: true }) },
    { index: 1, id: 'serial1', spec: sock({ host: '::1', port: 4445, server: true, nodelay: true }) },
    { index: 2, id: 'serial2', spec: sock({ path: '/tmp/a,b.sock', server: true, wait: true }) },
    { index: 3, id: 'c4', spec: sock({ host: 'example.org', port: 23, reconnect: 5 }) },
  ]);
  const { config: p } = await parseArgs(['--sim', '-serial', 'pipe:/run/com1', '-chardev', 'pipe,id=p,path=/run/com2', '-serial', 'chardev:p', '-serial', 'unix:/tmp/x']);
  assert.deepEqual(p.serials.map((s) => s.spec), [
    { backend: 'pipe', path: '/run/com1' },
    { backend: 'pipe', path: '/run/com2' },
    sock({ path: '/tmp/x' }),
  ]);
  await fails(['--sim', '-serial', 'tcp:1.2.3.4'], /tcp: needs \[HOST\]:PORT/);
  await fails(['--sim', '-serial', 'tcp:1.2.3.4:http'], /port "http" is not a number/);
  await fails(['--sim', '-serial', 'tcp:1.2.3.4:70000'], /port 70000 is out of range/);
  await fails(['--sim', '-serial', 'tcp:1.2.3.4:0'], /port 0 can only be listened on/);
  await fails(['--sim', '-serial', 'tcp::5,server,telnet'], /socket option telnet is not supported/);
  await fails(['--sim', '-serial', 'tcp::5,server,reconnect=3'], /reconnect= applies to client sockets/);
  await fails(['--sim', '-serial', 'tcp:h:5,nowait'], /wait= applies to server=on sockets only/);
  await fails(['--sim', '-serial', 'tcp:h:5,port=6'], /port= is given by the address/);
  await fails(['--sim', '-serial', 'unix:'], /unix: needs a path/);
  await fails(['--sim', '-serial', `unix:/${'x'.repeat(200)},server`], /1 to 107 bytes/);
  await fails(['--sim', '-serial', 'pipe:'], /pipe: needs a path/);
  await fails(['--sim', '-chardev', 'pipe,id=p', '-serial', 'chardev:p'], /pipe needs path=/);
  await fails(['--sim', '-chardev', 'socket,id=s,port=5,path=/x,server', '-serial', 'chardev:s'], /exactly one of path=/);
  await fails(['--sim', '-chardev', 'socket,id=s,host=h,server', '-serial', 'chardev:s'], /needs port=/);
  await fails(['--sim', '-chardev', 'socket,id=s,fd=5', '-serial', 'chardev:s'], /fd= is an inherited listening socket/);
  // QMP stays on listening unix sockets (libxl's); a TCP or client socket for -mon is one line.
  await fails(['--sim', '-chardev', 'socket,id=m,host=h,port=5,server=on,wait=off', '-mon', 'chardev=m,mode=control'], /listening unix sockets only/);
  await fails(['--sim', '-chardev', 'socket,id=m,path=/m', '-mon', 'chardev=m,mode=control'], /listening unix sockets only/);
  // One chardev, one user.
  await fails(['--sim', '-chardev', 'socket,id=m,path=/m,server=on,wait=off', '-mon', 'chardev=m,mode=control', '-serial', 'chardev:m'], /already in use/);
});

test('drives: empty cdrom, readonly, bus/unit, automatic index, comma escaping', async () => {
  const { config: c } = await parseArgs([
    '--sim', '-drive', 'if=ide,index=2,media=cdrom', '-drive', 'file=/img/a,,b.raw,format=raw,cache=none,readonly=on',
    '-drive', 'file=/dev/x,bus=0,unit=1',
  ]);
  assert.deepEqual(c.drives, [
    { index: 0, file: '/img/a,b.raw', media: 'disk', format: 'raw', cache: 'none', readonly: true, id: 'ide0-hd0', qdev: null },
    { index: 1, file: '/dev/x', media: 'disk', format: 'raw', cache: 'writeback', readonly: false, id: 'ide0-hd1', qdev: null },
    // An unnamed -drive gets QEMU's default block backend name (what QMP `device` takes).
    { index: 2, file: null, media: 'cdrom', format: 'raw', cache: 'writeback', readonly: true, id: 'ide1-cd0', qdev: null },
  ]);
});

// Seen on real Xen 4.17 (e2e, qemu-dm log): libxl passes a CD-ROM as a detached
// drive plus an ide-cd device; stubdm refused `if=none` and libxl saw the DM exit.
const XL_DISKS = split(`-drive file=/e2e/boot.img,if=ide,index=0,media=disk,format=raw,cache=writeback
 -drive file=/e2e/data.img,if=ide,index=1,media=disk,format=raw,cache=writeback
 -drive if=none,readonly=on,id=ide-5632,file=/e2e/cd.iso,format=raw
 -device ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0`);

test('libxl 4.17 CD-ROM: -drive if=none + -device ide-cd,bus=ide.1,unit=0 is IDE position 2', async () => {
  const { config: c, warnings } = await parseArgs(['--sim', ...XL_DISKS, '-drive', 'if=none,readonly=on,id=ide-5696',
    '-device', 'ide-cd,id=ide-5696,drive=ide-5696,bus=ide.1,unit=1']);
  assert.deepEqual(c.drives, [
    { index: 0, file: '/e2e/boot.img', media: 'disk', format: 'raw', cache: 'writeback', readonly: false, id: 'ide0-hd0', qdev: null },
    { index: 1, file: '/e2e/data.img', media: 'disk', format: 'raw', cache: 'writeback', readonly: false, id: 'ide0-hd1', qdev: null },
    // libxl names both the -drive and the -device ide-<devid>: xl cd-insert sends `id`.
    { index: 2, file: '/e2e/cd.iso', media: 'cdrom', format: 'raw', cache: 'writeback', readonly: true, id: 'ide-5632', qdev: 'ide-5632' },
    { index: 3, file: null, media: 'cdrom', format: 'raw', cache: 'writeback', readonly: true, id: 'ide-5696', qdev: 'ide-5696' },
  ]);
  assert.deepEqual(warnings.filter((w) => /ide-cd/.test(w)), []);
  await fails(['--sim', '-device', 'ide-cd,drive=nope,bus=ide.1,unit=0'], /no -drive if=none,id=nope/);
  await fails(['--sim', '-drive', 'if=none,id=a,file=/x', '-device', 'ide-cd,drive=a,bus=ide.2'], /bus=ide\.2/);
  await fails(['--sim', '-drive', 'if=none,file=/x'], /if=none needs id=/);
  await fails(['--sim', ...XL_DISKS, '-drive', 'file=/y,index=2'], /IDE index 2 is already used/);
});

test('contradictions are one-line CliErrors', async () => {
  await fails(['-machine', 'xenfv', '-m', '128'], /-xen-domid N is required/);
  await fails(['-xen-domid', 'x', '-machine', 'xenfv'], /-xen-domid: domain id "x" is not a number/);
  await fails(['-xen-domid', '0', '-machine', 'xenfv'], /dom0/);
  await fails(['-xen-domid', '3'], /-machine is required/);
  await fails(['--sim', '-m', 'lots'], /-m: RAM size "lots" is not a size/);
  await fails(['--sim', '-m', '0'], /positive/);
  await fails(['--sim', '-smp', '4,maxcpus=2'], /maxcpus \(2\) is below/);
  await fails(['--sim', '-smp', '129'], /out of range/);
  await fails(['--sim', '-drive', 'file=/a,index=0', '-drive', 'file=/b,index=0'], /IDE index 0 is already used/);
  await fails(['--sim', '-drive', 'file=/a,if=virtio'], /if=virtio/);
  await fails(['--sim', '-drive', 'file=/a,format=qcow2'], /qcow2/);
  await fails(['--sim', '-drive', 'media=disk'], /needs file=/);
  await fails(['--sim', '-device', 'e1000,netdev=net9'], /no -netdev/);
  await fails(['--sim', '-device', 'e1000,mac=zz'], /not xx:xx/);
  await fails(['--sim', '-machine', 'q35'], /only xenfv and pc/);
  await fails(['-xen-domid', '2', '-machine', 'pc'], /needs accel=xen/);
  await fails(['--sim', '-mon', 'chardev=x,mode=control'], /no -chardev with id=x/);
  await fails(['--sim', '-chardev', 'socket,id=a,path=/x,server=on', '-chardev', 'null,id=a'], /given twice/);
  await fails(['--sim', '-chardev', 'socket,id=a,path=/x,fd=3,server=on'], /exactly one of path= \(unix\), fd=/);
  await fails(['--sim', '-boot', 'order=c!'], /boot order/);
  await fails(['--sim', '-m'], /-m needs a value/);
  await fails(['--sim', 'disk.img'], /unexpected argument "disk.img"/);
  await fails(['--sim', '--log-level', 'loud'], /--log-level loud/);
});

test('unknown options are reported once and skipped with their value', async () => {
  const { config: c, warnings } = await parseArgs(['--sim', '-foo', 'bar', '-foo', 'baz', '-qux', '-m', '64']);
  assert.deepEqual(warnings, ['ignoring unknown option -foo', 'ignoring unknown option -qux']);
  assert.equal(c.ramMiB, 64);
});

test('known-but-unsupported options and devices are reported once each', async () => {
  const { warnings } = await parseArgs([
    '--sim', '-kernel', '/k', '-device', 'cirrus-vga,vgamem_mb=8', '-device', 'usb-tablet', '-device', 'usb-tablet,id=t2',
    '-mon', 'chardev=h', '-chardev', 'socket,id=h,path=/h,server,nowait',
  ]);
  assert.deepEqual(warnings.sort(), [
    '-device cirrus-vga: not emulated yet; ignored',
    '-device usb-tablet: not emulated yet; ignored',
    '-kernel: direct kernel boot is not supported; boot from a disk',
    '-mon chardev=h,mode=readline: only QMP (mode=control) monitors exist; ignored',
  ]);
});

test('--help returns the help text', async () => {
  const r = await parseArgs(['--help']);
  assert.match(r.help ?? '', /-xen-domid/);
  assert.match(r.help ?? '', /--no-stubdom/);
  assert.match(r.help ?? '', /Exit codes/);
});

test("CD-ROMs as Xen 4.17's libxl passes them: -drive if=none + -device ide-cd,bus=ide.B,unit=U", async () => {
  // strings in Debian's libxenlight.so 4.17: "if=none,readonly=on,id=%s", "%s,file=%s,format=%s",
  // "ide-cd,id=%s,drive=%s,bus=ide.%u,unit=%u" (hdc = dev_number 5632)
  const { config: c, warnings } = await parseArgs(split(`-xen-domid 3 -machine xenfv -m 256
    -drive file=/dev/xvda,if=ide,index=0,media=disk,format=host_device,cache=writeback
    -drive if=none,readonly=on,id=ide-5632,file=/srv/install.iso,format=raw
    -device ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0
    -drive if=none,readonly=on,id=ide-5696
    -device ide-cd,id=ide-5696,drive=ide-5696,bus=ide.1,unit=1`));
  assert.deepEqual(warnings, []);
  assert.deepEqual(c.drives, [
    { index: 0, file: '/dev/xvda', media: 'disk', format: 'host_device', cache: 'writeback', readonly: false, id: 'ide0-hd0', qdev: null },
    { index: 2, file: '/srv/install.iso', media: 'cdrom', format: 'raw', cache: 'writeback', readonly: true, id: 'ide-5632', qdev: 'ide-5632' },
    { index: 3, file: null, media: 'cdrom', format: 'raw', cache: 'writeback', readonly: true, id: 'ide-5696', qdev: 'ide-5696' },
  ]);
  await fails(['--sim', '-device', 'ide-cd,drive=nope,bus=ide.1'], /no -drive if=none,id=nope/);
  await fails(['--sim', '-drive', 'if=none,id=d,file=/a', '-device', 'ide-hd,drive=d,bus=ahci0.0'], /only the PIIX IDE buses/);
  await fails(['--sim', '-drive', 'file=/a,index=2', '-drive', 'if=none,id=c', '-device', 'ide-cd,drive=c,bus=ide.1,unit=0'], /IDE index 2 is already used/);
  await fails(['--sim', '-drive', 'if=none,file=/a'], /if=none needs id=/);
  const { warnings: w2 } = await parseArgs(['--sim', '-drive', 'if=none,id=lonely,file=/a']);
  assert.deepEqual(w2, ['-drive id=lonely (if=none) is not attached to any -device; ignored']);
});

test('-incoming (fd:N, file:PATH, defer) and -add-fd, as libxl and the stub domain pass them', async () => {
  const base = ['-xen-domid', '3', '-machine', 'xenfv', '-m', '64'];
  assert.deepEqual((await parseArgs([...base, '-incoming', 'fd:27'])).config.incoming, { kind: 'fd', fd: 27 });
  assert.deepEqual((await parseArgs([...base, '-incoming', 'file:/dev/hvc2'])).config.incoming, { kind: 'file', path: '/dev/hvc2' });
  assert.deepEqual((await parseArgs([...base, '-incoming', 'defer'])).config.incoming, { kind: 'defer' });
  assert.equal((await parseArgs(base)).config.incoming, null);
  for (const bad of ['tcp:0:4444', 'fd:', 'fd:-1', 'fd:01', 'fd:99999999999', 'file:relative', 'exec:cat', '$STUBDOM_RESTORE_INCOMING_ARG']) {
    await assert.rejects(parseArgs([...base, '-incoming', bad]), CliError, bad);
  }
  const c = (await parseArgs([...base, '-add-fd', 'fd=4,set=1,opaque=stubdom-save-console', '-add-fd', 'fd=9,set=2'])).config;
  assert.deepEqual(c.addFds, [{ fd: 4, set: 1, opaque: 'stubdom-save-console' }, { fd: 9, set: 2, opaque: null }]);
  for (const bad of ['fd=4', 'set=1', 'fd=1,set=1', 'fd=x,set=1', 'fd=4,set=1,mode=rw']) {
    await assert.rejects(parseArgs([...base, '-add-fd', bad]), CliError, bad);
  }
});

// issue #15: sizes a hostile or mistaken argv gives are one-line CliErrors (exit 2), never an allocation that throws.
test('RAM, ringbuf and socket-path bounds are one-line CliErrors', async () => {
  await fails(['--sim', '-m', '8T'], /-m 8T: RAM is limited to 4096 MiB under --sim/);
  await fails(['--sim', '-m', '1000000'], /-m 1000000: RAM is limited to 4096 MiB under --sim/);
  await fails(['-xen-domid', '3', '-machine', 'xenfv', '-m', '32T'], /-m 32T: RAM is limited to 16777216 MiB$/);
  const { config } = await parseArgs(['-xen-domid', '3', '-machine', 'xenfv', '-m', '1000000']);
  assert.equal(config.ramMiB, 1000000, 'Xen decides about big guests');
  assert.equal((await parseArgs(['--sim', '-m', '4G'])).config.ramMiB, 4096);
  await fails(['--sim', '-chardev', 'ringbuf,id=r,size=100G', '-serial', 'chardev:r'], /ringbuf size=100G must be a power of two/);
  await fails(['--sim', '-chardev', 'ringbuf,id=r,size=0', '-serial', 'chardev:r'], /ringbuf size=0 must be a power of two/);
  await fails(['--sim', '-chardev', 'ringbuf,id=r,size=1000', '-serial', 'chardev:r'], /power of two/);
  const rb = (await parseArgs(['--sim', '-chardev', 'ringbuf,id=r,size=4K', '-serial', 'chardev:r'])).config.chardevs[0].spec;
  assert.deepEqual(rb, { backend: 'ringbuf', size: 4096 });
  const long = '/tmp/' + 'a'.repeat(103); // 108 bytes: one over sun_path
  await fails(['--sim', '-chardev', `socket,id=q,path=${long},server=on,wait=off`, '-mon', 'chardev=q,mode=control'], /1 to 107 bytes; this one is 108/);
  const ok = (await parseArgs(['--sim', '-chardev', `socket,id=q,path=${long.slice(0, -1)},server=on,wait=off`, '-mon', 'chardev=q,mode=control'])).config;
  assert.equal(ok.monitors[0].path, long.slice(0, -1));
});

// issue #14: the operator's side of argv.
test('--log-format: text by default, json on request, anything else one line; the level is info by default', async () => {
  const d = (await parseArgs(['--sim'])).config;
  assert.equal(d.logFormat, 'text');
  assert.equal(d.logLevel, 'info');
  assert.equal((await parseArgs(['--sim', '--log-format', 'json'])).config.logFormat, 'json');
  await assert.rejects(parseArgs(['--sim', '--log-format', 'xml']), (e: Error) => e instanceof CliError && e.message === '--log-format xml: use text or json');
});

test('-version and --version: one line in QEMU\'s shape, with the QEMU version QMP reports', async () => {
  for (const v of ['-version', '--version']) {
    const r = await parseArgs([v]);
    assert.match(r.help ?? '', /^QEMU emulator version 8\.2\.0 \(stubdm \d+\.\d+\.\d+[^)]*\)$/);
  }
});

test('Qubes pseudo-arguments (-qubes-net:..., -qubes-audio:...) are ignored with one line each', async () => {
  const { config: c, warnings } = await parseArgs([
    '--sim', '-qubes-audio:audiovm_xid=0', '-m', '64',
    '-qubes-net:client_ip=10.137.0.1,dns_0=10.139.1.1,gw=10.137.0.2,netmask=255.255.255.255',
  ]);
  assert.equal(c.ramMiB, 64, 'the next option is still read as an option, not taken as a value');
  assert.deepEqual(warnings, [
    "-qubes-audio: a setting for Qubes' stub domain init, not for the device model; ignored",
    "-qubes-net: a setting for Qubes' stub domain init, not for the device model; ignored",
  ]);
});

// libxl_dm.c (Xen 4.17) for `disk = [ '/img/s.raw,raw,sda,w' ]` and for hdtype='ahci'.
test('disks stubdm cannot serve: an sd* disk is one line naming it and the alternative; AHCI and qcow2 stop with one line', async () => {
  const { config: c, warnings } = await parseArgs(['--sim', '-device', 'lsi53c895a',
    '-drive', 'file=/img/s.raw,id=scsi0-hd0,format=raw,if=none,readonly=off,cache=writeback',
    '-device', 'scsi-hd,drive=scsi0-hd0,scsi-id=0']);
  assert.deepEqual(c.drives, []);
  assert.deepEqual(warnings.filter((w) => w.includes('scsi0-hd0')), [
    '-device scsi-hd,drive=scsi0-hd0: disk /img/s.raw is an sd* disk (SCSI), which stubdm does not emulate: the guest sees it through PV drivers only; name it hda-hdd or xvda-xvdd in xl.cfg for an emulated IDE disk',
  ]);
  await assert.rejects(
    parseArgs(['--sim', '-device', 'ahci,id=ahci0', '-drive', 'file=/img/a.raw,if=none,id=ahcidisk-0,format=raw,cache=writeback',
      '-device', 'ide-hd,bus=ahci0.0,unit=0,drive=ahcidisk-0']),
    (e: Error) => e instanceof CliError && /^-device ahci: no AHCI controller is emulated.*hdtype='ide'/.test(e.message),
  );
  await assert.rejects(
    parseArgs(['--sim', '-drive', 'file=/img/q.qcow2,if=ide,index=0,media=disk,format=qcow2,cache=writeback']),
    (e: Error) => e instanceof CliError && /disk \/img\/q\.qcow2 is qcow2; stubdm reads raw images only: convert it \(qemu-img convert -O raw\)/.test(e.message),
  );
});

test('-k: en-us is the VNC keymap; another layout with VNC on is one line, without VNC a warning', async () => {
  const vnc = ['--sim', '-device', 'VGA', '-vnc', '127.0.0.1:0'];
  assert.equal((await parseArgs([...vnc, '-k', 'en-us'])).config.keymap, 'en-us');
  await fails([...vnc, '-k', 'de'], /^-k de: only the en-us keymap is supported by stubdm's VNC server/);
  const { config: c, warnings } = await parseArgs(['--sim', '-vnc', 'none', '-k', 'fr']);
  assert.equal(c.keymap, 'fr');
  assert.deepEqual(warnings, ['-k fr: no VNC server here; ignored']);
});

test('libxl 4.17 SPICE extras: spicevmc chardevs go with the ignored -spice instead of stopping the start', async () => {
  // spice_vdagent=1 and spice_usbredirection=1 (libxl_dm.c libxl__build_device_model_args_new).
  const { config: c, warnings } = await parseArgs(['--sim', '-spice', 'port=5900,tls-port=0,disable-ticketing=on,agent-mouse=on',
    '-device', 'virtio-serial', '-chardev', 'spicevmc,id=vdagent,name=vdagent', '-device', 'virtserialport,chardev=vdagent,name=com.redhat.spice.0',
    '-chardev', 'spicevmc,name=usbredir,id=usbrc1', '-device', 'usb-redir,chardev=usbrc1,id=usbrc1']);
  assert.deepEqual(c.chardevs, []);
  assert.deepEqual(warnings.filter((w) => w.startsWith('-chardev')), [
    '-chardev spicevmc,id=vdagent: a SPICE channel, and there is no SPICE server; ignored',
    '-chardev spicevmc,id=usbrc1: a SPICE channel, and there is no SPICE server; ignored',
  ]);
  assert.ok(warnings.includes('-spice: no SPICE server; ignored'));
  // Any other backend stubdm lacks still stops it: only SPICE's own channels go with -spice.
  await fails(['--sim', '-chardev', 'vc,id=v'], /^-chardev v: backend vc is not supported/);
});

test('-no-acpi (acpi=0) is reported: the PIIX4 PM function stays where QEMU would leave it out', async () => {
  const { warnings } = await parseArgs(['--sim', '-no-acpi']);
  assert.deepEqual(warnings, ['-no-acpi: the PIIX4 power management function (00:01.3) stays on the PCI bus; ignored']);
});

test('COLO disks (driver=quorum / replication) stop with one line that names COLO, not a missing file=', async () => {
  const primary = 'if=ide,index=0,media=disk,cache=writeback,driver=quorum,id=colo1,children.0.file.filename=/img/a.raw,children.0.driver=raw,read-pattern=fifo,vote-threshold=1';
  await fails(['--sim', '-drive', primary], /^-drive if=ide,.*: driver=quorum is a COLO replicated disk, which stubdm does not support/);
  const secondary = 'if=ide,index=0,id=top-colo,media=disk,cache=writeback,driver=replication,mode=secondary,top-id=top-colo,file.driver=qcow2';
  await fails(['--sim', '-drive', secondary], /driver=replication is a COLO replicated disk/);
});
