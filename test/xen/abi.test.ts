// Checks every number in src/ioreq/abi.ts and every constant and type width
// the Xen bindings rely on against the installed Xen headers, by compiling
// and running a small C program (cc -D__XEN_TOOLS__). Bitfield positions are
// probed by setting each field in a zeroed struct and looking at the bytes.
// Fails (never skips) when cc or the headers are missing: run
// scripts/install-deps.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as abi from '../../src/ioreq/abi.ts';
import * as xc from '../../src/xen/consts.ts';
import * as core from '../../src/core/host.ts';
import { TYPEDEFS, typedefSizes } from '../../src/xen/ffi.ts';
import { BUCKET_SIZE, PAGE_SIZE as MC_PAGE_SIZE } from '../../src/xen/mapcache.ts';

const PROGRAM = String.raw`
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <errno.h>
#include <xen/xen.h>
#include <xen/sched.h>
#include <xen/memory.h>
#include <xen/hvm/ioreq.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/e820.h>
#include <xen/hvm/hvm_info_table.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#define V(name, expr) printf("%s %llu\n", name, (unsigned long long)(expr))
#define OFF(t, f) V(#t "." #f, offsetof(t, f))

/* Which byte a bitfield lives in and its mask there: set the field to all ones in a zeroed struct. */
#define BITS(t, f, allones) do { t s_; unsigned char b_[sizeof(t)]; memset(&s_, 0, sizeof s_); \
    s_.f = (allones); memcpy(b_, &s_, sizeof s_); int n_ = 0; \
    for (size_t i_ = 0; i_ < sizeof s_; i_++) if (b_[i_]) { printf("%s.%s.byte %zu\n%s.%s.mask %u\n", #t, #f, i_, #t, #f, b_[i_]); n_++; } \
    if (n_ != 1) printf("%s.%s.bytes %d\n", #t, #f, n_); } while (0)
/* The same as a little-endian 32-bit word at offset 0 (buf_ioreq_t word 0). */
#define WORD0(t, f, allones) do { t s_; unsigned int w_; memset(&s_, 0, sizeof s_); s_.f = (allones); \
    memcpy(&w_, &s_, 4); printf("%s.%s.word0 %u\n", #t, #f, w_); } while (0)

int main(void)
{
    V("sizeof.ioreq_t", sizeof(ioreq_t));
    V("alignof.ioreq_t", _Alignof(ioreq_t));
    OFF(ioreq_t, addr); OFF(ioreq_t, data); OFF(ioreq_t, count); OFF(ioreq_t, size);
    OFF(ioreq_t, vp_eport); OFF(ioreq_t, type);
    V("sizeof.ioreq_t.addr", sizeof(((ioreq_t *)0)->addr));
    V("sizeof.ioreq_t.data", sizeof(((ioreq_t *)0)->data));
    V("sizeof.ioreq_t.count", sizeof(((ioreq_t *)0)->count));
    V("sizeof.ioreq_t.size", sizeof(((ioreq_t *)0)->size));
    V("sizeof.ioreq_t.vp_eport", sizeof(((ioreq_t *)0)->vp_eport));
    V("sizeof.ioreq_t.type", sizeof(((ioreq_t *)0)->type));
    BITS(ioreq_t, state, 0xf); BITS(ioreq_t, data_is_ptr, 1); BITS(ioreq_t, dir, 1); BITS(ioreq_t, df, 1);
    BITS(ioreq_t, type, 0xff);
    V("sizeof.shared_iopage_t", sizeof(shared_iopage_t));
    OFF(shared_iopage_t, vcpu_ioreq);

    V("IOREQ_READ", IOREQ_READ); V("IOREQ_WRITE", IOREQ_WRITE);
    V("STATE_IOREQ_NONE", STATE_IOREQ_NONE); V("STATE_IOREQ_READY", STATE_IOREQ_READY);
    V("STATE_IOREQ_INPROCESS", STATE_IOREQ_INPROCESS); V("STATE_IORESP_READY", STATE_IORESP_READY);
    V("IOREQ_TYPE_PIO", IOREQ_TYPE_PIO); V("IOREQ_TYPE_COPY", IOREQ_TYPE_COPY);
    V("IOREQ_TYPE_PCI_CONFIG", IOREQ_TYPE_PCI_CONFIG); V("IOREQ_TYPE_TIMEOFFSET", IOREQ_TYPE_TIMEOFFSET);
    V("IOREQ_TYPE_INVALIDATE", IOREQ_TYPE_INVALIDATE);
    V("IOREQ_BUFFER_SLOT_NUM", IOREQ_BUFFER_SLOT_NUM);

    V("sizeof.buf_ioreq_t", sizeof(buf_ioreq_t));
    OFF(buf_ioreq_t, data);
    WORD0(buf_ioreq_t, type, 0xff); WORD0(buf_ioreq_t, pad, 1); WORD0(buf_ioreq_t, dir, 1);
    WORD0(buf_ioreq_t, size, 3); WORD0(buf_ioreq_t, addr, 0xfffff);
    V("sizeof.buffered_iopage_t", sizeof(buffered_iopage_t));
    OFF(buffered_iopage_t, read_pointer); OFF(buffered_iopage_t, write_pointer); OFF(buffered_iopage_t, buf_ioreq);
    V("sizeof.buffered_iopage_t.read_pointer", sizeof(((buffered_iopage_t *)0)->read_pointer));
    V("sizeof.buffered_iopage_t.write_pointer", sizeof(((buffered_iopage_t *)0)->write_pointer));

    V("HVM_IOREQSRV_BUFIOREQ_OFF", HVM_IOREQSRV_BUFIOREQ_OFF);
    V("HVM_IOREQSRV_BUFIOREQ_LEGACY", HVM_IOREQSRV_BUFIOREQ_LEGACY);
    V("HVM_IOREQSRV_BUFIOREQ_ATOMIC", HVM_IOREQSRV_BUFIOREQ_ATOMIC);
    V("XENMEM_resource_ioreq_server", XENMEM_resource_ioreq_server);
    V("XENMEM_resource_ioreq_server_frame_bufioreq", XENMEM_resource_ioreq_server_frame_bufioreq);
    V("XENMEM_resource_ioreq_server_frame_ioreq(0)", XENMEM_resource_ioreq_server_frame_ioreq(0));
    V("XENMEM_resource_ioreq_server_frame_ioreq(1)", XENMEM_resource_ioreq_server_frame_ioreq(1));
    V("XEN_PAGE_SIZE", 1u << 12);

    V("XEN_DMOP_IO_RANGE_PORT", XEN_DMOP_IO_RANGE_PORT);
    V("XEN_DMOP_IO_RANGE_MEMORY", XEN_DMOP_IO_RANGE_MEMORY);
    V("XEN_DMOP_IO_RANGE_PCI", XEN_DMOP_IO_RANGE_PCI);
    V("XEN_DMOP_MEM_CACHEATTR_UC", XEN_DMOP_MEM_CACHEATTR_UC);
    V("XEN_DMOP_MEM_CACHEATTR_WB", XEN_DMOP_MEM_CACHEATTR_WB);
    V("HVMMEM_ram_rw", HVMMEM_ram_rw); V("HVMMEM_ram_ro", HVMMEM_ram_ro); V("HVMMEM_mmio_dm", HVMMEM_mmio_dm);
    V("SHUTDOWN_poweroff", SHUTDOWN_poweroff); V("SHUTDOWN_reboot", SHUTDOWN_reboot);
    V("HVM_MAX_VCPUS", HVM_MAX_VCPUS);
    V("DOMID_FIRST_RESERVED", DOMID_FIRST_RESERVED);
    V("HVM_BELOW_4G_RAM_END", HVM_BELOW_4G_RAM_END);
    V("XBT_NULL", XBT_NULL);
    V("PROT_READ", PROT_READ); V("PROT_WRITE", PROT_WRITE); V("EAGAIN", EAGAIN);

    V("width.domid_t", sizeof(domid_t));
    V("width.ioservid_t", sizeof(ioservid_t));
    V("width.evtchn_port_t", sizeof(evtchn_port_t));
    V("width.xenevtchn_port_or_error_t", sizeof(xenevtchn_port_or_error_t));
    V("width.xen_pfn_t", sizeof(xen_pfn_t));
    V("width.xs_transaction_t", sizeof(xs_transaction_t));
    V("width.hvmmem_type_t", sizeof(hvmmem_type_t));
    V("width.unsigned long", sizeof(unsigned long));
    V("width.unsigned int", sizeof(unsigned int));
    V("width.size_t", sizeof(size_t));
    V("width.int", sizeof(int));
    V("width.bool", sizeof(bool));
    V("width.void *", sizeof(void *));
    /* signedness of the typedefs koffi declares unsigned / signed */
    V("signed.domid_t", (domid_t)-1 < 0); V("signed.ioservid_t", (ioservid_t)-1 < 0);
    V("signed.evtchn_port_t", (evtchn_port_t)-1 < 0); V("signed.xen_pfn_t", (xen_pfn_t)-1 < 0);
    V("signed.xs_transaction_t", (xs_transaction_t)-1 < 0);
    V("signed.xenevtchn_port_or_error_t", (xenevtchn_port_or_error_t)-1 < 0);
    return 0;
}
`;

let dir: string;
let v: Map<string, number>;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'stubdm-abi-'));
  writeFileSync(join(dir, 'abi.c'), PROGRAM);
  // Throws (test fails) when cc or a header is missing.
  execFileSync('cc', ['-std=gnu11', '-D__XEN_TOOLS__', '-Wall', '-Werror', '-o', join(dir, 'abi'), join(dir, 'abi.c')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const out = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
  v = new Map(
    out
      .trim()
      .split('\n')
      .map((l) => {
        const i = l.lastIndexOf(' ');
        return [l.slice(0, i), Number(l.slice(i + 1))] as [string, number];
      }),
  );
});

after(() => rmSync(dir, { recursive: true, force: true }));

function c(name: string): number {
  const x = v.get(name);
  assert.notEqual(x, undefined, `C probe printed no ${name}`);
  return x!;
}

test('ioreq_t layout and field widths', () => {
  assert.equal(abi.IOREQ_SIZE, c('sizeof.ioreq_t'));
  assert.equal(c('alignof.ioreq_t'), 8);
  assert.equal(abi.IOREQ_OFF_ADDR, c('ioreq_t.addr'));
  assert.equal(abi.IOREQ_OFF_DATA, c('ioreq_t.data'));
  assert.equal(abi.IOREQ_OFF_COUNT, c('ioreq_t.count'));
  assert.equal(abi.IOREQ_OFF_SIZE, c('ioreq_t.size'));
  assert.equal(abi.IOREQ_OFF_VP_EPORT, c('ioreq_t.vp_eport'));
  assert.equal(abi.IOREQ_OFF_TYPE, c('ioreq_t.type'));
  assert.deepEqual(
    ['addr', 'data', 'count', 'size', 'vp_eport', 'type'].map((f) => c(`sizeof.ioreq_t.${f}`)),
    [8, 8, 4, 4, 4, 1],
  );
  assert.equal(c('sizeof.shared_iopage_t') % abi.IOREQ_SIZE, 0);
  assert.equal(c('shared_iopage_t.vcpu_ioreq'), 0);
});

test('ioreq_t bitfields: state, data_is_ptr, dir, df share the flags byte', () => {
  for (const [f, mask] of [
    ['state', abi.IOREQ_STATE_MASK],
    ['data_is_ptr', abi.IOREQ_DATA_IS_PTR],
    ['dir', abi.IOREQ_DIR],
    ['df', abi.IOREQ_DF],
  ] as const) {
    assert.equal(v.get(`ioreq_t.${f}.bytes`), undefined, `${f} spans one byte`);
    assert.equal(c(`ioreq_t.${f}.byte`), abi.IOREQ_OFF_FLAGS, `${f} byte`);
    assert.equal(c(`ioreq_t.${f}.mask`), mask, `${f} mask`);
  }
  assert.equal(c('ioreq_t.type.byte'), abi.IOREQ_OFF_TYPE);
  assert.equal(c('ioreq_t.type.mask'), 0xff);
  // dir=1 is IOREQ_READ: the DIR bit set means read.
  assert.equal(c('IOREQ_READ'), 1);
});

test('ioreq constants', () => {
  for (const name of [
    'IOREQ_READ',
    'IOREQ_WRITE',
    'STATE_IOREQ_NONE',
    'STATE_IOREQ_READY',
    'STATE_IOREQ_INPROCESS',
    'STATE_IORESP_READY',
    'IOREQ_TYPE_PIO',
    'IOREQ_TYPE_COPY',
    'IOREQ_TYPE_PCI_CONFIG',
    'IOREQ_TYPE_TIMEOFFSET',
    'IOREQ_TYPE_INVALIDATE',
    'IOREQ_BUFFER_SLOT_NUM',
    'HVM_IOREQSRV_BUFIOREQ_OFF',
    'HVM_IOREQSRV_BUFIOREQ_LEGACY',
    'HVM_IOREQSRV_BUFIOREQ_ATOMIC',
  ] as const) {
    assert.equal((abi as Record<string, unknown>)[name], c(name), name);
  }
});

test('buffered page and buf_ioreq_t word 0', () => {
  assert.equal(abi.BUF_SLOT_SIZE, c('sizeof.buf_ioreq_t'));
  assert.equal(c('buf_ioreq_t.data'), 4);
  assert.equal(c('buf_ioreq_t.type.word0'), abi.BUF_TYPE_MASK);
  assert.equal(c('buf_ioreq_t.pad.word0'), abi.BUF_PAD_BIT);
  assert.equal(c('buf_ioreq_t.dir.word0'), abi.BUF_DIR_BIT);
  assert.equal(c('buf_ioreq_t.size.word0'), abi.BUF_SIZE_MASK << abi.BUF_SIZE_SHIFT);
  assert.equal(c('buf_ioreq_t.addr.word0'), (abi.BUF_ADDR_MASK * 2 ** abi.BUF_ADDR_SHIFT) >>> 0);
  assert.equal(abi.PAGE_SIZE, c('sizeof.buffered_iopage_t'));
  assert.equal(abi.BUF_OFF_READ_POINTER, c('buffered_iopage_t.read_pointer'));
  assert.equal(abi.BUF_OFF_WRITE_POINTER, c('buffered_iopage_t.write_pointer'));
  assert.equal(abi.BUF_OFF_SLOTS, c('buffered_iopage_t.buf_ioreq'));
  assert.equal(c('sizeof.buffered_iopage_t.read_pointer'), 4);
  assert.equal(c('sizeof.buffered_iopage_t.write_pointer'), 4);
  // The two pointers are adjacent and 8-aligned: one 64-bit atomic covers both.
  assert.equal(abi.BUF_OFF_WRITE_POINTER - abi.BUF_OFF_READ_POINTER, 4);
  assert.equal(abi.BUF_OFF_READ_POINTER % 8, 0);
  assert.ok(abi.BUF_OFF_SLOTS + abi.IOREQ_BUFFER_SLOT_NUM * abi.BUF_SLOT_SIZE <= abi.PAGE_SIZE);
});

test('resource mapping: XENMEM_resource_ioreq_server frames', () => {
  assert.equal(abi.XENMEM_RESOURCE_IOREQ_SERVER, c('XENMEM_resource_ioreq_server'));
  assert.equal(abi.XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ, c('XENMEM_resource_ioreq_server_frame_bufioreq'));
  assert.equal(abi.XENMEM_RESOURCE_IOREQ_SERVER_FRAME_IOREQ0, c('XENMEM_resource_ioreq_server_frame_ioreq(0)'));
  // host.ts maps frame 0 with 2 frames and takes the ioreq page at +4096: the frames must be consecutive.
  assert.equal(c('XENMEM_resource_ioreq_server_frame_ioreq(0)'), c('XENMEM_resource_ioreq_server_frame_bufioreq') + 1);
  assert.equal(c('XENMEM_resource_ioreq_server_frame_ioreq(1)'), c('XENMEM_resource_ioreq_server_frame_ioreq(0)') + 1);
  assert.equal(abi.PAGE_SIZE, c('XEN_PAGE_SIZE'));
  assert.equal(MC_PAGE_SIZE, c('XEN_PAGE_SIZE'));
  assert.equal(BUCKET_SIZE % MC_PAGE_SIZE, 0);
});

test('constants used by the bindings and the core interfaces', () => {
  assert.equal(xc.XEN_DMOP_IO_RANGE_PORT, c('XEN_DMOP_IO_RANGE_PORT'));
  assert.equal(xc.XEN_DMOP_IO_RANGE_MEMORY, c('XEN_DMOP_IO_RANGE_MEMORY'));
  assert.equal(xc.XEN_DMOP_IO_RANGE_PCI, c('XEN_DMOP_IO_RANGE_PCI'));
  // core/host.ts passes these straight through as is_mmio.
  assert.equal(core.RANGE_PORT, c('XEN_DMOP_IO_RANGE_PORT'));
  assert.equal(core.RANGE_MMIO, c('XEN_DMOP_IO_RANGE_MEMORY'));
  assert.equal(core.SHUTDOWN_POWEROFF, c('SHUTDOWN_poweroff'));
  assert.equal(core.SHUTDOWN_REBOOT, c('SHUTDOWN_reboot'));
  assert.equal(xc.SHUTDOWN_poweroff, c('SHUTDOWN_poweroff'));
  assert.equal(xc.SHUTDOWN_reboot, c('SHUTDOWN_reboot'));
  assert.equal(xc.XEN_DMOP_MEM_CACHEATTR_UC, c('XEN_DMOP_MEM_CACHEATTR_UC'));
  assert.equal(xc.XEN_DMOP_MEM_CACHEATTR_WB, c('XEN_DMOP_MEM_CACHEATTR_WB'));
  assert.equal(xc.HVMMEM_ram_rw, c('HVMMEM_ram_rw'));
  assert.equal(xc.HVMMEM_ram_ro, c('HVMMEM_ram_ro'));
  assert.equal(xc.HVMMEM_mmio_dm, c('HVMMEM_mmio_dm'));
  assert.equal(xc.HVM_MAX_VCPUS, c('HVM_MAX_VCPUS'));
  assert.equal(xc.HVM_MAX_VCPUS * abi.IOREQ_SIZE, abi.PAGE_SIZE, 'every vCPU slot fits the ioreq page');
  assert.equal(xc.DOMID_FIRST_RESERVED, c('DOMID_FIRST_RESERVED'));
  assert.equal(xc.HVM_BELOW_4G_RAM_END, c('HVM_BELOW_4G_RAM_END'));
  assert.equal(xc.XBT_NULL, c('XBT_NULL'));
  assert.equal(xc.PROT_READ, c('PROT_READ'));
  assert.equal(xc.PROT_WRITE, c('PROT_WRITE'));
  assert.equal(xc.EAGAIN, c('EAGAIN'));
});

test('koffi widths of every C typedef the prototypes use match the headers', () => {
  const k = typedefSizes();
  for (const name of Object.keys(TYPEDEFS)) assert.equal(k[name], c(`width.${name}`), name);
  for (const name of ['unsigned long', 'unsigned int', 'size_t', 'int', 'bool']) assert.equal(k[name], c(`width.${name}`), name);
  for (const [name, size] of Object.entries(k)) if (name.endsWith(' *')) assert.equal(size, c('width.void *'), name);
  // Signedness: koffi's base type must agree (uintN vs int).
  for (const name of Object.keys(TYPEDEFS)) {
    const signedInC = v.get(`signed.${name}`);
    if (signedInC === undefined) continue;
    assert.equal(TYPEDEFS[name].startsWith('u') || TYPEDEFS[name].startsWith('unsigned') ? 0 : 1, signedInC, `${name} signedness`);
  }
});
