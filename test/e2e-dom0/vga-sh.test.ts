/**
 * vga.sh's idle-window plumbing (vga_cpu_windows, vga_cpu_keys) with
 * driver.sh's own dm_cpu_window, run by bash here: a stand-in for vga-tool
 * asks for the two windows through the idle-*.go files as the tool does, a
 * busy process plays the device model (and, for a stub domain, the xenpv
 * QEMU whose pid xenstore gives), and a fake xentop plays Xen's account of
 * the stub domain. No Xen needed; the figures must land on the PASS keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

function run(dm: string, dir: string): { keys: Record<string, string>; out: string; err: string } {
  const out = path.join(dir, 'vga');
  fs.mkdirSync(out, { recursive: true });
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  // xentop -b -f -i 2 -d S: two frames, the second over the S-second window (CPU(%) is column 4).
  fs.writeFileSync(
    path.join(bin, 'xentop'),
    '#!/bin/sh\nfor f in 1 2; do echo "      NAME  STATE   CPU(sec) CPU(%)"; echo "  e2e-vga-stubdm-stubdom-dm --b--- 12 0.4"; done\n',
    { mode: 0o755 },
  );
  // xl qemu-monitor-command GUEST "info stats": stubdm's CPU lines in the stub domain, each call
  // 40 ms more of stubdm and 3000 more kernel ticks (30 s at USER_HZ 100), 30 of them busy.
  fs.writeFileSync(
    path.join(bin, 'xl'),
    [
      '#!/bin/sh',
      '[ "$1 $3" = "qemu-monitor-command info stats" ] || exit 1',
      `n=$(cat "${dir}/xl-n" 2>/dev/null || echo 0); echo $((n + 1)) >"${dir}/xl-n"`,
      'printf "/ioreq: events=1\\r\\n/cpu/process: user-us=%d system-us=0\\r\\n" $((1000000 + n * 40000))',
      'printf "/cpu/kernel: user-ticks=%d nice-ticks=0 system-ticks=0 idle-ticks=%d iowait-ticks=0 irq-ticks=0 softirq-ticks=0 steal-ticks=0\\r\\n" $((100 + n * 30)) $((10000 + n * 2970))',
      // 60 interrupts and 90 context switches a second: timer0 45, vfb 15 (xenbus never).
      'printf "/kernel/stat: intr=%d ctxt=%d\\r\\n" $((5000 + n * 1800)) $((7000 + n * 2700))',
      'printf "/kernel/interrupts: timer0=%d xenbus=4 vfb=%d evtchn:node=0\\r\\n" $((4000 + n * 1350)) $((900 + n * 450))',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const ref = path.join(dir, 'ref');
  fs.mkdirSync(ref, { recursive: true });
  fs.writeFileSync(path.join(ref, 'cpu-vnc.txt'), '0.010\n');
  const script = `
set -u
DM=$1 OUT=$2
is_stubdom() { case $DM in *-stubdom) return 0 ;; *) return 1 ;; esac; }
now() { date +%s.%N; }
# driver.sh's CPU helpers, as they are (the file itself runs the whole suite when sourced).
eval "$(sed -n '/^DM_CPU_ID="" CLK_TCK=/,/^# cpu_poll/p' test/e2e/dom0/driver.sh)"
. test/e2e/scenarios/vga.sh
VGA_IDLE_S=1
# The device model and the stub's VNC QEMU: busy loops, so their figures are far from 0.
(while :; do :; done) & BUSY=$!
xenstore-read() { [ "$1" = /local/domain/42/image/device-model-pid ] && echo "$BUSY"; }
# vga-tool's side: ask for each window, wait until it was measured.
(
  for w in $WINDOWS; do
    : >"$OUT/idle-$w.go"
    i=0; while [ ! -f "$OUT/idle-$w.done" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
  done
) & TOOL=$!
vga_cpu_windows "$OUT" "$TOOL" e2e-vga-$DM "$BUSY" 42
kill "$BUSY"
echo "KEYS$(vga_cpu_keys "$OUT")"
`;
  const r = spawnSync('bash', ['-c', script, 'vga-sh-test', dm, out], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, VGA_REF: ref, WINDOWS: dm === 'qemu-stubdom' ? 'novnc' : 'vnc novnc' },
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('KEYS')) ?? '';
  const keys = Object.fromEntries(line.slice(4).trim().split(/\s+/).filter(Boolean).map((kv) => kv.split('=') as [string, string]));
  return { keys, out, err: r.stderr };
}

test('vga.sh idle windows, dom0 DM: /proc CPU of the DM with and without the client, the ratio to qemu-xen', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vga-sh-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { keys, out, err } = run('stubdm-dom0', dir);
  assert.deepEqual(Object.keys(keys), ['dm_cpu_vnc_idle', 'dm_cpu_idle_novnc', 'vnc_idle_vs_qemu_xen'], err);
  // A busy loop on a loaded machine under nice: well above an idle DM, at most one CPU.
  for (const k of ['dm_cpu_vnc_idle', 'dm_cpu_idle_novnc']) assert.ok(Number(keys[k]) > 0.05 && Number(keys[k]) <= 1.2, `${k}=${keys[k]}`);
  assert.ok(Number(keys.vnc_idle_vs_qemu_xen) > 5, `ratio to the reference's 0.010: ${keys.vnc_idle_vs_qemu_xen}`);
  assert.ok(fs.existsSync(path.join(out, 'idle-vnc.done')) && fs.existsSync(path.join(out, 'idle-novnc.done')));
});

test('vga.sh idle windows, stub domain: xentop for the stub, /proc for the xenpv QEMU that serves its VNC, both in the ratio', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vga-sh-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { keys, err } = run('stubdm-stubdom', dir);
  assert.deepEqual(
    Object.keys(keys),
    [
      'dm_cpu_vnc_idle',
      'dm_cpu_idle_novnc',
      'vncd_cpu_vnc_idle',
      'vncd_cpu_idle_novnc',
      'stubdm_cpu_vnc_idle',
      'stub_busy_vnc_idle',
      'stub_irq_vnc_per_s',
      'stub_ctxt_vnc_per_s',
      'stubdm_cpu_novnc_idle',
      'stub_busy_novnc_idle',
      'stub_irq_novnc_per_s',
      'stub_ctxt_novnc_per_s',
      'vnc_idle_vs_qemu_xen',
    ],
    err,
  );
  assert.equal(keys.dm_cpu_vnc_idle, '0.004', "xentop's 0.4 % of one CPU");
  // stubdm's own share from its info stats before and after each window: 40 ms in 30 s; the stub kernel busy 30 of 3000 ticks.
  for (const w of ['vnc', 'novnc']) {
    assert.equal(keys[`stubdm_cpu_${w}_idle`], '0.0013');
    assert.equal(keys[`stub_busy_${w}_idle`], '0.0100');
    assert.equal(keys[`stub_irq_${w}_per_s`], '60.0');
    assert.equal(keys[`stub_ctxt_${w}_per_s`], '90.0');
    assert.equal(fs.readFileSync(path.join(dir, 'vga', `stubirq-${w}.txt`), 'utf8'), '45.00 timer0\n15.00 vfb\n', 'by source, most first; unchanged sources left out');
  }
  assert.equal(keys.dm_cpu_idle_novnc, '0.004');
  assert.ok(Number(keys.vncd_cpu_vnc_idle) > 0.05, `vncd_cpu_vnc_idle=${keys.vncd_cpu_vnc_idle}`);
  const sum = Number(keys.dm_cpu_vnc_idle) + Number(keys.vncd_cpu_vnc_idle);
  assert.ok(Math.abs(Number(keys.vnc_idle_vs_qemu_xen) - sum / 0.01) < 1, `ratio ${keys.vnc_idle_vs_qemu_xen} of ${sum} to 0.010`);
});

test('vga.sh idle windows without a VNC port (qemu-stubdom): only the window without a client', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vga-sh-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { keys, err } = run('qemu-stubdom', dir);
  assert.deepEqual(Object.keys(keys), ['dm_cpu_idle_novnc', 'vncd_cpu_idle_novnc'], err);
});
