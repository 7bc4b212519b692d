// planNetwork / openNetdev / openNetwork: what libxl passes works, each
// contradiction is refused with one line naming the option, and the tap's
// open errors become operator sentences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseArgs } from '../../src/cli/index.ts';
import type { StubdmConfig } from '../../src/cli/config.ts';
import { NetdevError, openNetdev, openNetwork, planNetwork, type NetConfig } from '../../src/net/index.ts';
import type { NetWatcher, TapIo, TapOpenResult } from '../../src/net/native.ts';

const quiet = pino({ level: 'silent' });

async function cfgOf(argv: string[]): Promise<StubdmConfig> {
  return (await parseArgs(['-xen-domid', '5', '-machine', 'xenfv', '-m', '128', ...argv])).config;
}

const LIBXL_NIC = ['-device', 'e1000,id=nic0,netdev=net0,mac=00:16:3e:5e:00:02',
  '-netdev', 'type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no'];

function net(over: Partial<NetConfig>, base: StubdmConfig): NetConfig {
  return { stubdom: base.stubdom, netNone: base.netNone, netdevs: base.netdevs, devices: base.devices, ...over };
}

/** Records tapOpen calls; fails them with `fail` when set. */
class OpenIo implements TapIo {
  opened: string[] = [];
  closedFds: number[] = [];
  fail: Record<string, string> = {};
  watch(): NetWatcher {
    return { setEvents() {}, stop() {} };
  }
  tapOpen(ifname: string): TapOpenResult {
    const code = this.fail[ifname];
    if (code) throw Object.assign(new Error(`TUNSETIFF ${ifname}: ${code}`), { code });
    this.opened.push(ifname);
    return { fd: -1, ifname: ifname || 'tap7', vnetHdrLen: 10 };
  }
  tapRead(): number {
    return -11;
  }
  tapWrite(): number {
    return 0;
  }
}

test("libxl's NIC argv plans one e1000 on tap vif5.0-emu", async () => {
  const { nics, warnings } = planNetwork(net({ stubdom: false }, await cfgOf(LIBXL_NIC)));
  assert.equal(nics.length, 1);
  assert.equal(nics[0].nic.driver, 'e1000');
  assert.equal(nics[0].nic.mac, '00:16:3e:5e:00:02');
  assert.equal(nics[0].netdev.ifname, 'vif5.0-emu');
  assert.deepEqual(warnings, []);
});

test('contradictions are one line each, naming the option', async () => {
  const base = await cfgOf(LIBXL_NIC);
  const nd = base.netdevs[0];
  const cases: Array<[Partial<NetConfig>, RegExp]> = [
    [{ netdevs: [{ ...nd, type: 'user' }] }, /^-netdev user,id=net0: only type=tap is supported/],
    [{ netdevs: [nd, { ...nd }] }, /^-netdev id=net0 is given twice$/],
    [{ netNone: true }, /^-net none contradicts -netdev tap,id=net0,ifname=vif5\.0-emu/],
    [{ netdevs: [{ ...nd, script: '/etc/qemu-ifup' }] }, /script=\/etc\/qemu-ifup: stubdm runs no network scripts.*script=no$/],
    [{ netdevs: [{ ...nd, downscript: '/bin/x' }] }, /downscript=\/bin\/x/],
    [{ stubdom: true, netdevs: [{ ...nd, ifname: null }] }, /a tap in a stub domain needs ifname=/],
    [{ netdevs: [{ ...nd, ifname: 'a-very-long-ifname' }] }, /ifname=a-very-long-ifname is not a valid interface name/],
    [{ netdevs: [{ ...nd, ifname: 'a/b' }] }, /is not a valid interface name/],
    [{ netdevs: [nd, { ...nd, id: 'net1' }] }, /-netdev id=net0 and id=net1 both name ifname=vif5\.0-emu/],
    [{ devices: [...base.devices, { ...base.devices[0], id: 'nic1' }] }, /^-netdev id=net0 is used by two NICs \(e1000 nic0 and e1000 nic1\)/],
    [{ devices: [{ ...base.devices[0], netdev: 'nope' }] }, /netdev=nope has no -netdev with that id/],
  ];
  for (const [over, re] of cases) {
    assert.throws(() => planNetwork(net({ stubdom: false, ...over }, base)), (e: unknown) => {
      assert.ok(e instanceof NetdevError, `${String(e)} is a NetdevError`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  }
});

test('a netdev no NIC uses is a warning; a tap without ifname is fine in dom0', async () => {
  const base = await cfgOf(LIBXL_NIC);
  const spare = { ...base.netdevs[0], id: 'net9', ifname: null };
  const { nics, warnings } = planNetwork(net({ stubdom: false, netdevs: [...base.netdevs, spare] }, base));
  assert.equal(nics.length, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /-netdev tap,id=net9 is not used by any -device/);
});

test('openNetdev: open errors become operator sentences', async () => {
  const nd = (await cfgOf(LIBXL_NIC)).netdevs[0];
  const io = new OpenIo();
  const want: Record<string, RegExp> = {
    ENOENT: /\/dev\/net\/tun is missing \(load the tun module/,
    EPERM: /needs CAP_NET_ADMIN/,
    EBUSY: /tap vif5\.0-emu is already attached to another process/,
    EINVAL: /vif5\.0-emu exists and is not a single-queue tap/,
    EMFILE: /cannot open tap vif5\.0-emu: TUNSETIFF vif5\.0-emu: EMFILE/,
  };
  for (const [code, re] of Object.entries(want)) {
    io.fail['vif5.0-emu'] = code;
    await assert.rejects(openNetdev(nd, false, { log: quiet, io }), (e: unknown) => {
      assert.ok(e instanceof NetdevError);
      assert.match(e.message, /^-netdev tap,id=net0,ifname=vif5\.0-emu: /);
      assert.match(e.message, re);
      return true;
    });
  }
  delete io.fail['vif5.0-emu'];
  const b = await openNetdev(nd, false, { log: quiet, io });
  assert.equal(b.name, 'vif5.0-emu');
  assert.equal(b.offloads, true);
  await b.close();
});

test('in a stub domain the tap must already exist (/init made and bridged it); in dom0 it is created', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stubdm-sysnet-'));
  try {
    const nd = (await cfgOf(LIBXL_NIC)).netdevs[0];
    const io = new OpenIo();
    await assert.rejects(openNetdev(nd, true, { log: quiet, io, sysClassNet: dir }), /there is no interface vif5\.0-emu; in a stub domain \/init creates the tap/);
    assert.deepEqual(io.opened, [], 'nothing created behind /init');
    mkdirSync(join(dir, 'vif5.0-emu'));
    const b = await openNetdev(nd, true, { log: quiet, io, sysClassNet: dir });
    await b.close();
    const c = await openNetdev(nd, false, { log: quiet, io, sysClassNet: join(dir, 'none') });
    await c.close();
    assert.deepEqual(io.opened, ['vif5.0-emu', 'vif5.0-emu']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openNetwork opens every NIC in argv order and closes what it opened when a later one fails', async () => {
  const base = await cfgOf([...LIBXL_NIC,
    '-device', 'e1000,id=nic1,netdev=net1,mac=00:16:3e:5e:00:03',
    '-netdev', 'type=tap,id=net1,ifname=vif5.1-emu,br=xenbr0,script=no,downscript=no']);
  const io = new OpenIo();
  const all = await openNetwork(net({ stubdom: false }, base), { log: quiet, io });
  assert.deepEqual(all.map((x) => [x.nic.id, x.backend.name]), [['nic0', 'vif5.0-emu'], ['nic1', 'vif5.1-emu']]);
  await Promise.all(all.map((x) => x.backend.close()));

  const io2 = new OpenIo();
  io2.fail['vif5.1-emu'] = 'EBUSY';
  let closed = 0;
  const origWatch = io2.watch.bind(io2);
  io2.watch = () => ({ ...origWatch(), stop: () => void closed++ });
  await assert.rejects(openNetwork(net({ stubdom: false }, base), { log: quiet, io: io2 }), /vif5\.1-emu is already attached/);
  assert.equal(closed, 1, 'the first tap was closed again');
});
