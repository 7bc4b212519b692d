/**
 * The guest kernel's config fragment (test/e2e/guest/kernel.config) against what the
 * harness and the scenarios assume of it: the drivers host.sh lists for the initramfs
 * are built in (modules.load) or modules a scenario loads itself (net.modules,
 * vga.modules), and the abuse guest's access rules (test/e2e/README.md) hold.
 * scripts/build-guest-kernel.sh checks that the fragment survives Kconfig; this checks
 * that the fragment is what the scenarios need, without building anything.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

const dir = path.dirname(new URL(import.meta.url).pathname);
const fragment = fs.readFileSync(path.join(dir, 'kernel.config'), 'utf8');
const hostSh = fs.readFileSync(path.join(dir, '..', 'lib', 'host.sh'), 'utf8');

/** CONFIG_X=v lines; "# CONFIG_X is not set" as 'n'. */
function parse(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of text.split('\n')) {
    let r = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(l);
    if (r) m.set(r[1], r[2]);
    r = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(l);
    if (r) m.set(r[1], 'n');
  }
  return m;
}
const cfg = parse(fragment);

/** Module name -> the option that builds it (Kconfig / Makefiles of linux 6.1). */
const SYMBOL: Record<string, string> = {
  ata_piix: 'ATA_PIIX', sd_mod: 'BLK_DEV_SD', sr_mod: 'BLK_DEV_SR', isofs: 'ISO9660_FS',
  e1000: 'E1000', bochs: 'DRM_BOCHS',
};

/** The modules build_guest copies from the guest kernel into each list file. */
function lists(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const re = /copy_modules "\$GUESTK\/root" "\$r" ([a-z0-9_ ]+) >"\$r\/([a-z.]+)"/g;
  for (const m of hostSh.matchAll(re)) out.set(m[2], m[1].trim().split(/\s+/));
  return out;
}

test('guest kernel: host.sh builds its module lists from the guest kernel', () => {
  assert.deepEqual([...lists().keys()].sort(), ['modules.load', 'net.modules', 'vga.modules']);
});

test('guest kernel: what every boot needs is built in, what a scenario loads itself is a module', () => {
  const l = lists();
  for (const mod of l.get('modules.load') ?? []) {
    assert.ok(SYMBOL[mod], `no option known for module ${mod}`);
    assert.equal(cfg.get(SYMBOL[mod]), 'y', `${mod} (CONFIG_${SYMBOL[mod]}) must be built in: guest/init loads modules.load after its boot marker`);
  }
  // net times the link from the e1000's load, and the abuse guest maps the e1000's BARs
  // through /dev/mem, which a bound driver would forbid (IO_STRICT_DEVMEM).
  for (const f of ['net.modules', 'vga.modules']) {
    for (const mod of l.get(f) ?? []) {
      assert.ok(SYMBOL[mod], `no option known for module ${mod}`);
      assert.equal(cfg.get(SYMBOL[mod]), 'm', `${mod} (CONFIG_${SYMBOL[mod]}) must stay a module (${f})`);
    }
  }
  assert.equal(cfg.get('MODULES'), 'y');
});

test("guest kernel: the abuse guest's access rules are the ones test/e2e/README.md states", () => {
  for (const s of ['X86_IOPL_IOPERM', 'DEVMEM', 'STRICT_DEVMEM', 'IO_STRICT_DEVMEM', 'PROC_PAGE_MONITOR', 'XEN_PVHVM_GUEST']) {
    assert.equal(cfg.get(s), 'y', `CONFIG_${s}`);
  }
});

test('guest kernel: boots as the harness boots it (initramfs init script, devtmpfs, COM1 console, ACPI poweroff)', () => {
  for (const s of ['BLK_DEV_INITRD', 'RD_XZ', 'BINFMT_SCRIPT', 'DEVTMPFS', 'SERIAL_8250_CONSOLE', 'ACPI', 'PCI', 'VT', 'VGA_CONSOLE']) {
    assert.equal(cfg.get(s), 'y', `CONFIG_${s}`);
  }
  // build_guest packs the initramfs with xz --check=crc32: the kernel's XZ decoder reads CRC32 (RD_XZ).
  assert.match(hostSh, /xz -9 --check=crc32/);
});
