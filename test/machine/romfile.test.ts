/**
 * Option ROM files (src/machine/romfile.ts): which file a -device asks for,
 * where a bare name is found, the one-line errors, and that Debian's iPXE ROM
 * for the e1000 is what SeaBIOS's map_pcirom accepts for 8086:100e.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from '../../src/cli/index.ts';
import type { DeviceConfig } from '../../src/cli/config.ts';
import { findRomfile, loadRomfile, RomfileError, romfileOf } from '../../src/machine/romfile.ts';

async function nic(props: string): Promise<DeviceConfig> {
  const { config } = await parseArgs([
    '-xen-domid', '1', '-machine', 'xenfv', '--sim',
    '-device', `e1000,id=nic0,netdev=net0,mac=00:16:3e:00:00:02${props}`,
    '-netdev', 'type=tap,id=net0,ifname=vif1.0-emu,script=no,downscript=no',
  ]);
  return config.devices[0];
}

function tmp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'stubdm-rom-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('romfile= as QEMU: default efi-e1000.rom, empty or rombar=0 for none, a name or a path otherwise', async () => {
  assert.equal(romfileOf(await nic('')), 'efi-e1000.rom');
  assert.equal(romfileOf(await nic(',romfile=')), null);
  assert.equal(romfileOf(await nic(',rombar=0')), null);
  assert.equal(romfileOf(await nic(',rombar=1')), 'efi-e1000.rom');
  assert.equal(romfileOf(await nic(',romfile=pxe-e1000.rom')), 'pxe-e1000.rom');
  assert.equal(romfileOf(await nic(',romfile=/srv/x.rom')), '/srv/x.rom');
  assert.equal(loadRomfile(await nic(',romfile='), []), null, 'no ROM, no file read');
});

test('a bare name is searched in the firmware directories in order; a path is taken as given', (t) => {
  const d = tmp(t);
  mkdirSync(join(d, 'a'));
  mkdirSync(join(d, 'b'));
  writeFileSync(join(d, 'b', 'x.rom'), 'B');
  assert.equal(findRomfile('x.rom', [join(d, 'a'), join(d, 'b')]), join(d, 'b', 'x.rom'));
  writeFileSync(join(d, 'a', 'x.rom'), 'A');
  assert.equal(findRomfile('x.rom', [join(d, 'a'), join(d, 'b')]), join(d, 'a', 'x.rom'), 'first directory wins');
  assert.equal(findRomfile(join(d, 'b', 'x.rom'), []), join(d, 'b', 'x.rom'));
  assert.equal(findRomfile('y.rom', [join(d, 'a')]), null);
  assert.equal(findRomfile(join(d, 'a'), []), null, 'a directory is not a ROM');
});

test('a ROM that cannot be used stops the start with one line naming the device and the file', async (t) => {
  const d = tmp(t);
  const nic0 = await nic('');
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof RomfileError && re.test(e.message) && !e.message.includes('\n');
  assert.throws(() => loadRomfile(nic0, [d]), oneLine(/^-device e1000,id=nic0: failed to find romfile "efi-e1000.rom" \(looked in .*\); install Debian's ipxe-qemu, or give romfile= for no ROM$/));
  const nicPath = await nic(`,romfile=${join(d, 'missing.rom')}`);
  assert.throws(() => loadRomfile(nicPath), oneLine(/failed to find romfile ".*missing.rom"$/));
  writeFileSync(join(d, 'empty.rom'), '');
  const nicEmpty = await nic(`,romfile=${join(d, 'empty.rom')}`);
  assert.throws(() => loadRomfile(nicEmpty), oneLine(/has 0 bytes/));
  writeFileSync(join(d, 'ok.rom'), Buffer.from([0x55, 0xaa, 1, 2]));
  assert.deepEqual([...loadRomfile(await nic(',romfile=ok.rom'), [d])!], [0x55, 0xaa, 1, 2]);
});

/**
 * SeaBIOS map_pcirom walks the images of a PCI ROM for one whose PCI data
 * structure ("PCIR", pointer at 0x18) names the function's vendor:device with
 * code type 0 (x86 BIOS); the image length is at PCIR+0x10 in 512-byte units,
 * bit 7 of PCIR+0x15 marks the last image.
 */
function x86ImageFor(rom: Uint8Array, vendor: number, device: number): number | null {
  const u16 = (o: number) => rom[o] | (rom[o + 1] << 8);
  let at = 0;
  for (let n = 0; n < 8 && at + 0x1a <= rom.length; n++) {
    if (u16(at) !== 0xaa55) return null;
    const pcir = at + u16(at + 0x18);
    if (pcir + 0x18 > rom.length || String.fromCharCode(...rom.subarray(pcir, pcir + 4)) !== 'PCIR') return null;
    if (u16(pcir + 4) === vendor && u16(pcir + 6) === device && rom[pcir + 0x14] === 0) return at;
    if (rom[pcir + 0x15] & 0x80) return null;
    at += u16(pcir + 0x10) * 512;
  }
  return null;
}

test("the default e1000 ROM (Debian's ipxe-qemu, installed with qemu-system-x86) holds an x86 image for 8086:100e", async () => {
  const rom = loadRomfile(await nic(''));
  assert.ok(rom && rom.length > 0);
  assert.equal(x86ImageFor(rom, 0x8086, 0x100e), 0, 'the first image is the legacy PXE ROM SeaBIOS copies and runs');
});
