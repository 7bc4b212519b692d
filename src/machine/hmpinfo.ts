/**
 * The machine's half of HMP (`xl qemu-monitor-command`): `info pci`,
 * `info network` in QEMU's layout, and `sendkey` through the i8042
 * (docs/xen-contract.md §11b).
 */
import type { PcPlatform } from '../pci/platform.ts';
import type { StubdmConfig } from '../cli/config.ts';
import type { I8042 } from '../devices/i8042/index.ts';
import { HmpError } from '../qmp/hmp.ts';

/** PCI class codes -> the names QEMU's `info pci` prints (hw/pci/pci.c pci_class_descriptions, the ones on this machine). */
const CLASS_NAMES: Record<number, string> = {
  0x0101: 'IDE controller',
  0x0200: 'Ethernet controller',
  0x0300: 'VGA controller',
  0x0600: 'Host bridge',
  0x0601: 'ISA bridge',
  0x0680: 'Bridge',
  0xff80: 'Class ff80',
};

const hex = (v: number, n: number) => v.toString(16).padStart(n, '0');

/** `info pci`: every function on bus 0, its ids, IRQ and decoded BARs. */
export function hmpInfoPci(platform: PcPlatform): string {
  const out: string[] = [];
  for (let dev = 0; dev < 32; dev++) {
    for (let fn = 0; fn < 8; fn++) {
      const f = platform.bus.get(dev, fn);
      if (f === null) continue;
      const c = f.config;
      const cls = c.read(0x0a, 2);
      out.push(`  Bus  0, device ${String(dev).padStart(3)}, function ${fn}:`);
      out.push(`    ${CLASS_NAMES[cls] ?? `Class ${hex(cls, 4)}`}: PCI device ${hex(c.read(0, 2), 4)}:${hex(c.read(2, 2), 4)}`);
      const pin = c.read(0x3d, 1);
      if (pin !== 0) out.push(`      IRQ ${c.read(0x3c, 1)}, pin ${String.fromCharCode(0x40 + pin)}`);
      const regions = platform.bus.mappedRegions(dev, fn);
      for (let i = 0; i < 6; i++) {
        const r = regions[i];
        if (!r) continue;
        const io = (c.read(0x10 + i * 4, 4) & 1) === 1;
        out.push(io ? `      BAR${i}: I/O at 0x${hex(r.start, 4)} [0x${hex(r.start + r.length - 1, 4)}].` : `      BAR${i}: 32 bit memory at 0x${hex(r.start, 8)} [0x${hex(r.start + r.length - 1, 8)}].`);
      }
      out.push(`      id "${f.name}"`);
    }
  }
  return out.map((l) => `${l}\n`).join('');
}

/** `info network`: each NIC and the tap behind it (QEMU's hmp_info_network layout). */
export function hmpInfoNetwork(cfg: StubdmConfig): string {
  const out: string[] = [];
  let i = 0;
  for (const d of cfg.devices) {
    if (d.driver !== 'e1000') continue;
    out.push(`${d.id ?? `e1000.${i}`}: index=${i},type=nic,model=e1000,macaddr=${d.mac ?? '52:54:00:12:34:56'}`);
    const n = cfg.netdevs.find((x) => x.id === d.netdev);
    if (n) out.push(` \\ ${n.id}: index=0,type=${n.type},ifname=${n.ifname ?? ''},script=${n.script ?? 'no'},downscript=${n.downscript ?? 'no'}`);
    i++;
  }
  return out.map((l) => `${l}\n`).join('');
}

/**
 * QEMU key names (qapi QKeyCode) -> PC set-1 make codes (an 0xe0-prefixed
 * key as 0xe0xx). The keys `sendkey` is used for: modifiers, letters,
 * digits, function keys, editing and cursor keys.
 */
const QKEYS = new Map<string, number>([
  ['esc', 0x01], ['minus', 0x0c], ['equal', 0x0d], ['backspace', 0x0e], ['tab', 0x0f],
  ['bracket_left', 0x1a], ['bracket_right', 0x1b], ['ret', 0x1c], ['ctrl', 0x1d], ['semicolon', 0x27],
  ['apostrophe', 0x28], ['grave_accent', 0x29], ['shift', 0x2a], ['backslash', 0x2b], ['comma', 0x33],
  ['dot', 0x34], ['slash', 0x35], ['shift_r', 0x36], ['asterisk', 0x37], ['alt', 0x38], ['spc', 0x39],
  ['caps_lock', 0x3a], ['num_lock', 0x45], ['scroll_lock', 0x46], ['f11', 0x57], ['f12', 0x58],
  ['ctrl_r', 0xe01d], ['alt_r', 0xe038], ['home', 0xe047], ['up', 0xe048], ['pgup', 0xe049], ['left', 0xe04b],
  ['right', 0xe04d], ['end', 0xe04f], ['down', 0xe050], ['pgdn', 0xe051], ['insert', 0xe052], ['delete', 0xe053],
  ['meta_l', 0xe05b], ['meta_r', 0xe05c], ['menu', 0xe05d], ['sysrq', 0x54],
]);
'1234567890'.split('').forEach((k, i) => QKEYS.set(k, 0x02 + i));
'qwertyuiop'.split('').forEach((k, i) => QKEYS.set(k, 0x10 + i));
'asdfghjkl'.split('').forEach((k, i) => QKEYS.set(k, 0x1e + i));
'zxcvbnm'.split('').forEach((k, i) => QKEYS.set(k, 0x2c + i));
for (let i = 1; i <= 10; i++) QKEYS.set(`f${i}`, 0x3a + i);

/** Scan codes for `names` pressed in order, then released in reverse (QEMU's qmp_send_key). */
export function sendKeyBytes(names: readonly string[]): number[] {
  const codes = names.map((n) => {
    const c = QKEYS.get(n);
    if (c === undefined) throw new HmpError(`invalid parameter: ${n.slice(0, 32)}`);
    return c;
  });
  const bytes: number[] = [];
  const put = (c: number, up: boolean) => {
    if (c > 0xff) bytes.push(0xe0);
    bytes.push((c & 0xff) | (up ? 0x80 : 0));
  };
  for (const c of codes) put(c, false);
  for (let i = codes.length - 1; i >= 0; i--) put(codes[i], true);
  return bytes;
}

/** HMP sendkey into the keyboard: bytes past its queue are lost, as a real keyboard's would be. */
export function sendKey(i8042: I8042, names: readonly string[]): void {
  i8042.pressKey(sendKeyBytes(names));
}
