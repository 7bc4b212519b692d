/*
 * e2e-abuse: the hostile guest of the e2e `abuse` scenario (test/e2e/scenarios/abuse.sh).
 * Runs as root in the guest's busybox initramfs, with ata_piix and the i8042 driver unbound,
 * and for SECONDS drives random, seeded accesses at what the device model serves:
 *   ports  IDE 0x1F0-7/0x3F6, 0x170-7/0x376; the BMDMA BAR; COM1 0x3F8, COM2 0x2F8; CMOS
 *          0x70/0x71; i8042 0x60/0x64; PCI 0xCF8/0xCFC (random config writes to our functions,
 *          BARs and command registers included); the Xen platform ports 0x10-0x1F; every other
 *          I/O BAR (Xen platform BAR0, e1000 IOADDR/IODATA); VGA 0x3C0-0x3DF and VBE 0x1CE/0x1CF
 *   MMIO   every memory BAR in /sys/bus/pci/devices/<dev>/resource it can map through /dev/mem
 *          (e1000 registers, the VGA frame buffer) and the legacy VGA window 0xA0000
 *   DMA    random PRD tables and e1000 descriptor rings in pages it owns (physical addresses
 *          from /proc/self/pagemap), then starts the engines; REP INS/OUTS into its buffers
 * Every 0.5 s it writes the PCI headers back (BARs, command with bus master on), so the ranges
 * it hits stay where it found them. Progress and the result go straight to COM1 (polled, after
 * putting COM1 back to 115200 8N1): the kernel's serial driver may be confused by then.
 *
 * What it never does (each would only reset or power off the machine, or break the guest's own
 * kernel, which ends the run without testing the device model any further):
 *   - byte writes to 0xCF9 (PIIX3 reset control): 0xCF8 is only ever written as a dword
 *   - port 0x92 (fast reset), PM1a_CNT (0xB004: SLP_EN powers off), APM 0xB2 (never touched)
 *   - config writes to the PIIX4 PM function's PMBA (0x40) and PMREGMISC (0x80): they would
 *     move PM1a_CNT onto a port it does write
 *   - i8042 commands 0xD1 (write output port: bit 0 is the reset line) and 0xF0-0xFF with bit 0
 *     clear (pulse the reset line)
 *   - the Xen platform device's unplug bits (IDE disks, NICs) before the last tenth of the run
 *     (they would take the IDE and e1000 away from the rest of it)
 *   - MMIO of the Xen platform device's BAR1: the guest's shared-info and grant pages live there
 *   - DMA or descriptor addresses in guest RAM it does not own: PRD and ring base addresses are
 *     its own pages or unpopulated guest-physical space (1-3.25 GiB; the guest has 256 MiB), PRD
 *     entries and descriptors name its own pages with lengths inside them, partial writes to
 *     the PRD/ring base registers are not done, and the e1000 IOADDR never selects those.
 * Hand-written C: it must run alone in a busybox initramfs (static, no runtime) and uses iopl
 * and /dev/mem, which no library wraps.
 *
 * Usage: e2e-abuse SECONDS SEED [--dry-run]. SEED 0 = pick one (printed either way); a seed
 * gives the same random choices again (restores and the unplug permission are timed, and
 * consume none, so only where they fall among them differs). --dry-run
 * touches no hardware: a fake PCI layout, every write printed as "W port size value" (ports) on
 * stdout, for the unit test of the exclusions.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define ARENA_PAGES 512u         /* our DMA pages (2 MiB): buffers, PRD tables, rings */
#define PRD_PAGE 0u              /* arena page holding the PRD table */
#define TXRING_PAGE 1u
#define RXRING_PAGE 2u
#define FIRST_BUF_PAGE 3u
#define UNPOP_LO 0x40000000u     /* unpopulated guest-physical space for "bad" DMA addresses */
#define UNPOP_HI 0xd0000000u
#define MAX_FUNCS 32
#define MAX_RANGES 64
#define RESTORE_NS 500000000ull  /* PCI headers written back this often */
#define PROGRESS_NS 30000000000ull

static int dry;

/* ---------------------------------------------------------------- random (xorshift64*) */
static uint64_t rs;
static uint64_t rnd(void) {
  rs ^= rs >> 12;
  rs ^= rs << 25;
  rs ^= rs >> 27;
  return rs * 2685821657736338717ull;
}
static uint32_t rn(uint32_t n) { return n ? (uint32_t)((rnd() >> 32) % n) : 0; }
static int chance(uint32_t one_in) { return rn(one_in) == 0; }

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---------------------------------------------------------------- counters */
static uint64_t n_pio, n_mmio, n_cfg, n_dma, n_rep, n_ring, n_skipped;

/* ---------------------------------------------------------------- port I/O (or its dry trace) */
static uint32_t in_(uint16_t port, int size) {
  n_pio++;
  if (dry) return 0xffffffffu >> (32 - 8 * size);
  return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}
static void out_(uint16_t port, int size, uint32_t v) {
  n_pio++;
  v &= 0xffffffffu >> (32 - 8 * size);
  if (dry) { printf("W %#x %d %#x\n", port, size, v); return; }
  if (size == 1) outb((uint8_t)v, port);
  else if (size == 2) outw((uint16_t)v, port);
  else outl(v, port);
}

/* ---------------------------------------------------------------- the PCI functions we found */
struct func {
  unsigned bdf;        /* bus << 8 | dev << 3 | fn */
  uint32_t vendev;     /* vendor | device << 16 */
  uint32_t cls;        /* class << 8 | prog-if (config 0x09-0x0b) */
  uint32_t hdr[64];    /* config space (256 bytes) as found */
  int is_pm, is_xenp, is_ide, is_e1000, is_vga;
};
static struct func funcs[MAX_FUNCS];
static int nfuncs;

struct range {        /* a port range or a mapped MMIO range we hit */
  uint32_t base, len;
  volatile uint8_t *map; /* MMIO: the mapping; ports: NULL */
  int kind;
};
enum { K_PLAIN, K_BMDMA, K_PCI_ADDR, K_PCI_DATA, K_I8042_CMD, K_XENP_FIXED, K_E1000_IO, K_E1000_MMIO };
static struct range ranges[MAX_RANGES];
static int nranges, n_mmio_ranges, n_mmio_denied;
static uint32_t bmdma = 0; /* BMDMA BAR (I/O), 0 = none */
static volatile uint32_t *e1000; /* e1000 register BAR, mapped, or NULL */
static uint32_t cf8;   /* the last CONFADD value we wrote */
static int late;       /* last tenth of the run: unplug allowed */

static void add_range(uint32_t base, uint32_t len, volatile uint8_t *map, int kind) {
  if (nranges < MAX_RANGES) ranges[nranges++] = (struct range){base, len, map, kind};
}

/* ---------------------------------------------------------------- our pages */
static uint8_t *arena;
static uint64_t phys[ARENA_PAGES];
static uint32_t run_left[ARENA_PAGES]; /* bytes from this page's start to the end of its physically contiguous run */

/* 2 MiB, 2 MiB-aligned and MADV_HUGEPAGE: with a transparent huge page it is physically
 * contiguous, so DMA lengths up to 2 MiB (and e1000 receive buffers of 16 KiB) can land in it;
 * without one, run_left keeps each target inside the pages that happen to be contiguous. */
static int arena_init(void) {
  size_t sz = ARENA_PAGES * PAGE;
  uint8_t *m = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  arena = (uint8_t *)(((uintptr_t)m + sz - 1) & ~(uintptr_t)(sz - 1));
  madvise(arena, sz, MADV_HUGEPAGE); /* best effort */
  memset(arena, 0x5a, sz);
  if (dry) {
    for (unsigned i = 0; i < ARENA_PAGES; i++) phys[i] = 0x1000000ull + i * PAGE;
  } else {
    if (mlock(arena, ARENA_PAGES * PAGE)) return -2;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0) return -3;
    for (unsigned i = 0; i < ARENA_PAGES; i++) {
      uint64_t e = 0;
      if (pread(fd, &e, 8, (off_t)(((uintptr_t)arena / PAGE + i) * 8)) != 8) { close(fd); return -4; }
      /* bit 63 present, bits 0-54 the frame (0 without CAP_SYS_ADMIN) */
      if (!(e >> 63) || !(e & ((1ull << 55) - 1))) { close(fd); return -5; }
      phys[i] = (e & ((1ull << 55) - 1)) * PAGE;
      if (phys[i] >= 0x100000000ull) { close(fd); return -6; } /* PRDs hold 32-bit addresses */
    }
    close(fd);
  }
  for (int i = ARENA_PAGES - 1; i >= 0; i--)
    run_left[i] = PAGE + ((unsigned)i + 1 < ARENA_PAGES && phys[i + 1] == phys[i] + PAGE ? run_left[i + 1] : 0);
  return 0;
}

/* A DMA target for LEN bytes: inside our buffer pages, or (1 in 8, or when LEN does not fit)
 * unpopulated guest-physical space. Even address (PIIX ignores bit 0). */
static uint32_t dma_target(uint32_t len) {
  if (!chance(8)) {
    for (int tries = 0; tries < 4; tries++) {
      unsigned p = FIRST_BUF_PAGE + rn(ARENA_PAGES - FIRST_BUF_PAGE);
      if (run_left[p] < len) continue;
      uint32_t off = rn((run_left[p] - len) / 2 + 1) * 2;
      return (uint32_t)phys[p] + off;
    }
  }
  return UNPOP_LO + (rn((UNPOP_HI - UNPOP_LO) / 2) * 2);
}
/* A base for a table of LEN bytes: our page P, or unpopulated space (1 in 8). */
static uint32_t table_base(unsigned p, uint32_t align) {
  if (chance(8)) return (UNPOP_LO + rn(UNPOP_HI - UNPOP_LO)) & ~(align - 1);
  return (uint32_t)phys[p];
}

/* ---------------------------------------------------------------- the exclusions */
/* Config offset a CFC access of SIZE at port P reaches through CF8, and whether it is forbidden:
 * the PIIX4 PM function's PMBA (0x40-0x43) and PMREGMISC (0x80-0x83). */
static int cfg_forbidden(uint32_t addr, uint16_t port, int size) {
  if (!(addr & 0x80000000u)) return 0;
  unsigned bdf = (addr >> 8) & 0xffff;
  unsigned off = ((addr & 0xfc) | ((addr >> 16) & 0xf00)) + (port & 3u);
  for (int i = 0; i < nfuncs; i++) {
    if (funcs[i].bdf != bdf || !funcs[i].is_pm) continue;
    if (off < 0x44 && off + (unsigned)size > 0x40) return 1;
    if (off < 0x84 && off + (unsigned)size > 0x80) return 1;
  }
  return 0;
}

/* An OUT the abuse wants: filtered, and recorded as skipped when it may not be done. */
static void hostile_out(const struct range *r, uint32_t off, int size, uint32_t v) {
  uint16_t port = (uint16_t)(r->base + off);
  switch (r->kind) {
  case K_PCI_ADDR: /* dword only: a byte at 0xCF9 is the reset control register */
    if (off != 0 || size != 4) { n_skipped++; return; }
    cf8 = v;
    break;
  case K_PCI_DATA:
    if (cfg_forbidden(cf8, port, size)) { n_skipped++; return; }
    n_cfg++;
    break;
  case K_I8042_CMD:
    v &= 0xff;
    if (v == 0xd1 || (v >= 0xf0 && !(v & 1))) { n_skipped++; return; }
    break;
  case K_XENP_FIXED:
    if (off == 0 && size == 2 && !late) v &= ~0xfu; /* no unplug yet */
    break;
  case K_BMDMA:
    if ((off & 7) >= 4) { /* PRD table address: whole dword writes of a safe base only */
      if ((off & 3) || size != 4) { n_skipped++; return; }
      v = table_base(PRD_PAGE, 4) + (chance(2) ? 0 : rn(PAGE / 8) * 8);
    }
    break;
  case K_E1000_IO:
    if (off < 4) { /* IOADDR: never the ring base/length registers */
      if (off || size != 4) { n_skipped++; return; }
      if ((v & 0x1fff0) == 0x2800 || (v & 0x1fff0) == 0x3800) v = 0x8;
    }
    break;
  }
  out_(port, size, v);
}

static uint32_t e1000_ring_value(uint32_t reg, uint32_t v) {
  switch (reg & 0xf) {
  case 0x0: return table_base((reg & ~0xfu) == 0x2800 ? RXRING_PAGE : TXRING_PAGE, 16); /* xDBAL */
  case 0x4: return chance(4) ? v : 0;       /* xDBAH: >= 4 GiB is unpopulated */
  case 0x8: return (1 + rn(PAGE / 128)) * 128; /* xDLEN: inside our page */
  default: return v;
  }
}

/* A ring base register of the e1000 set to our ring page (a device reset zeroes it: base 0
 * with a length would put the ring on the real-mode IVT, so every length write sets it first). */
static void e1000_safe_base(uint32_t ring) {
  if (dry || !e1000) return;
  e1000[ring / 4] = (uint32_t)phys[ring == 0x2800 ? RXRING_PAGE : TXRING_PAGE];
  e1000[ring / 4 + 1] = 0;
  n_mmio += 2;
}

static void mmio_write(const struct range *r, uint32_t off, int size, uint32_t v) {
  n_mmio++;
  if (r->kind == K_E1000_MMIO) {
    uint32_t reg = off & ~3u;
    if (reg == 0x2800 || reg == 0x2804 || reg == 0x2808 || reg == 0x3800 || reg == 0x3804 || reg == 0x3808) {
      if (size != 4 || (off & 3)) { n_skipped++; return; }
      v = e1000_ring_value(reg, v);
      if ((reg & 0xf) == 0x8) e1000_safe_base(reg & ~0xfu);
    }
  }
  if (dry) return;
  volatile uint8_t *p = r->map + off;
  if (size == 1) *p = (uint8_t)v;
  else if (size == 2) *(volatile uint16_t *)p = (uint16_t)v;
  else *(volatile uint32_t *)p = v;
}
static void mmio_read(const struct range *r, uint32_t off, int size) {
  n_mmio++;
  if (dry) return;
  volatile uint8_t *p = r->map + off;
  if (size == 1) (void)*p;
  else if (size == 2) (void)*(volatile uint16_t *)p;
  else (void)*(volatile uint32_t *)p;
}

/* ---------------------------------------------------------------- PCI config (ours) */
static void cfg_write(unsigned bdf, unsigned off, int size, uint32_t v) {
  uint32_t a = 0x80000000u | (bdf << 8) | (off & 0xfc);
  if (cfg_forbidden(a, (uint16_t)(0xcfc + (off & 3)), size)) { n_skipped++; return; }
  out_(0xcf8, 4, a);
  cf8 = a;
  out_((uint16_t)(0xcfc + (off & 3)), size, v);
  n_cfg++;
}

/* Put every header back as found (command: + I/O, memory, bus master for IDE and e1000), so
 * the BARs sit where the ranges above expect them. */
static void restore_headers(void) {
  for (int i = 0; i < nfuncs; i++) {
    struct func *f = &funcs[i];
    for (unsigned d = 4; d < 10; d++) cfg_write(f->bdf, d * 4, 4, f->hdr[d]); /* BAR0-5 */
    cfg_write(f->bdf, 0x3c, 1, f->hdr[15] & 0xff);                            /* interrupt line */
    if (f->is_ide) { cfg_write(f->bdf, 0x40, 4, f->hdr[16]); cfg_write(f->bdf, 0x44, 4, f->hdr[17]); } /* IDETIM: decode */
    if (f->bdf == 0x08) cfg_write(f->bdf, 0x60, 4, f->hdr[24]);               /* PIIX3 PIRQ routes */
    uint32_t cmd = f->hdr[1] & 0xffff;
    if (f->is_ide || f->is_e1000) cmd |= 0x7;
    cfg_write(f->bdf, 0x04, 2, cmd);
  }
}

/* ---------------------------------------------------------------- episodes */
static void single_access(void) {
  const struct range *r = &ranges[rn(nranges)];
  int size = 1 << rn(3);
  uint32_t off = rn(r->len);
  if (off + (uint32_t)size > r->len) size = 1;
  int write = rn(10) < 6;
  uint32_t v = (uint32_t)rnd();
  if (r->map) {
    off &= ~(uint32_t)(size - 1);
    if (write) mmio_write(r, off, size, v); else mmio_read(r, off, size);
  } else if (write) {
    hostile_out(r, off, size, v);
  } else {
    (void)in_((uint16_t)(r->base + off), size);
  }
}

static void random_cfg_write(void) {
  if (!nfuncs) return;
  const struct func *f = &funcs[rn(nfuncs)];
  int size = 1 << rn(3);
  /* half of them at the header (command, BARs, interrupt line), half anywhere */
  unsigned off = chance(2) ? rn(0x40) : rn(0x100);
  off &= ~(unsigned)(size - 1);
  cfg_write(f->bdf, off, size, (uint32_t)rnd());
}

static const uint8_t ata_cmds[] = {0xc8, 0xca, 0x25, 0x35, 0x20, 0x24, 0x30, 0x34, 0xec, 0xa1, 0xa0,
                                   0xe7, 0xea, 0xef, 0x91, 0x08, 0xc4, 0xc5, 0x29, 0x39, 0xe0, 0xe5};
static const uint8_t atapi_ops[] = {0x28, 0xa8, 0x43, 0x12, 0x5a, 0x46, 0x4a, 0x1b, 0x00, 0x03, 0x25,
                                    0x51, 0xbd, 0x1e, 0xbe, 0xb9, 0x55, 0xad};

/* A fresh PRD table in our PRD page: N entries up to EOT (1 in 8 without it), every entry of
 * the page naming our pages (or unpopulated space) and the page's last entry always EOT, so a
 * walk starting anywhere in it stays in it. */
static void ide_prd_table(unsigned n) {
  uint32_t *prd = (uint32_t *)(arena + PRD_PAGE * PAGE);
  for (unsigned i = 0; i < PAGE / 8; i++) {
    uint32_t len = (2 + rn(chance(4) ? 65534 : 8192)) & ~1u;
    uint32_t eot = (i + 1 == n && !chance(8)) || i == PAGE / 8 - 1 ? 0x80000000u : 0;
    prd[2 * i] = dma_target(len);
    prd[2 * i + 1] = eot | (len & 0xffff); /* 0 = 64 KiB */
  }
  __sync_synchronize();
}

/* One ATA/ATAPI command on a random channel, by PIO or through BMDMA with a fresh PRD table. */
static void ide_episode(void) {
  unsigned ch = rn(2);
  uint16_t cmd = ch ? 0x170 : 0x1f0, ctl = ch ? 0x376 : 0x3f6;
  uint16_t bm = (uint16_t)(bmdma + ch * 8);
  int use_dma = bmdma && !chance(3);
  if (use_dma) {
    ide_prd_table(1 + rn(chance(4) ? 511 : 8));
    out_((uint16_t)(bm + 4), 4, table_base(PRD_PAGE, 4) + (chance(2) ? 0 : rn(PAGE / 8) * 8));
    out_((uint16_t)(bm + 2), 1, 0x06 | (rn(4) << 5)); /* clear interrupt/error, drive DMA-capable bits */
  }
  out_((uint16_t)(cmd + 6), 1, 0xa0 | 0x40 * rn(2) | 0x10 * rn(2) | rn(16));
  out_((uint16_t)(cmd + 1), 1, rn(256));
  out_((uint16_t)(cmd + 2), 1, chance(4) ? 0 : rn(256));
  for (int i = 3; i < 6; i++) out_((uint16_t)(cmd + i), 1, chance(2) ? 0 : rn(256));
  uint8_t op = chance(6) ? (uint8_t)rn(256) : ata_cmds[rn(sizeof ata_cmds)];
  if (op == 0xa0) out_((uint16_t)(cmd + 1), 1, use_dma ? 1 : 0);
  out_((uint16_t)(cmd + 7), 1, op);
  if (op == 0xa0) { /* PACKET: the CDB once DRQ shows (bounded wait) */
    for (int i = 0; i < 1000 && !(in_((uint16_t)(cmd + 7), 1) & 0x08); i++) {}
    uint8_t cdb[12];
    for (int i = 0; i < 12; i++) cdb[i] = (uint8_t)rnd();
    if (!chance(6)) cdb[0] = atapi_ops[rn(sizeof atapi_ops)];
    if (!chance(3)) { cdb[2] = cdb[3] = cdb[4] = 0; cdb[5] = (uint8_t)rn(64); }
    for (int i = 0; i < 12; i += 2) out_(cmd, 2, cdb[i] | cdb[i + 1] << 8);
  }
  if (use_dma) out_(bm, 1, 0x01 | (rn(2) << 3)); /* start, either direction */
  /* status and data for a while (bounded), writes some of the time */
  unsigned k = rn(256);
  for (unsigned i = 0; i < k; i++) {
    if (use_dma && chance(8)) (void)in_((uint16_t)(bm + 2), 1);
    else if (chance(2)) (void)in_(cmd, 2);
    else if (chance(8)) out_(cmd, 2, rn(65536));
    else (void)in_((uint16_t)(cmd + 7), 1);
  }
  if (chance(8)) { out_(ctl, 1, 0x04 | 0x02 * rn(2)); out_(ctl, 1, 0x02 * rn(2)); } /* SRST */
  if (use_dma && !chance(4)) out_(bm, 1, 0);
  n_dma += use_dma;
}

/* REP INS/OUTS of random length between a random served port and our buffers: the ioreq
 * data-is-pointer path, the device model reading or writing guest pages per element. */
static void rep_episode(void) {
  const struct range *r;
  int tries = 0;
  do r = &ranges[rn(nranges)]; while ((r->map || r->kind != K_PLAIN) && ++tries < 8);
  if (r->map || r->kind != K_PLAIN) r = &ranges[0]; /* IDE0 command block */
  int size = 1 << rn(3);
  uint32_t count = 1 + rn(chance(8) ? 8192 : 256);
  if (count * (uint32_t)size > (ARENA_PAGES - FIRST_BUF_PAGE) * PAGE) count = 1;
  uint16_t port = (uint16_t)(r->base + (chance(2) ? 0 : rn(r->len)));
  void *buf = arena + FIRST_BUF_PAGE * PAGE;
  n_rep++;
  n_pio++;
  if (dry) return;
  if (chance(2)) {
    if (size == 1) insb(port, buf, count); else if (size == 2) insw(port, buf, count); else insl(port, buf, count);
  } else {
    if (size == 1) outsb(port, buf, count); else if (size == 2) outsw(port, buf, count); else outsl(port, buf, count);
  }
}

/* e1000: rings in our pages with descriptors naming our pages, then transmit and receive on. */
static void ring_episode(void) {
  if (!e1000) return;
  uint32_t *tx = (uint32_t *)(arena + TXRING_PAGE * PAGE), *rx = (uint32_t *)(arena + RXRING_PAGE * PAGE);
  for (unsigned i = 0; i < PAGE / 16; i++) {
    uint32_t len = 1 + rn(chance(4) ? 16384 : 1514);
    tx[4 * i] = dma_target(len);
    tx[4 * i + 1] = chance(16) ? (uint32_t)rnd() : 0;
    tx[4 * i + 2] = (len & 0xffff) | (uint32_t)rnd() << 16; /* length, CSO, CMD (EOP, RS, DEXT, TSE...) */
    tx[4 * i + 3] = (uint32_t)rnd();
    rx[4 * i] = dma_target(16384); /* the largest buffer RCTL can pick */
    rx[4 * i + 1] = 0;
    rx[4 * i + 2] = rx[4 * i + 3] = 0;
  }
  __sync_synchronize();
  n_ring++;
  if (dry) return;
  uint32_t tdl = (1 + rn(PAGE / 128)) * 128, rdl = (1 + rn(PAGE / 128)) * 128;
  e1000[0x3800 / 4] = table_base(TXRING_PAGE, 16);
  e1000[0x3804 / 4] = 0;
  e1000[0x3808 / 4] = tdl;
  e1000[0x3810 / 4] = rn(tdl / 16);
  e1000[0x2800 / 4] = table_base(RXRING_PAGE, 16);
  e1000[0x2804 / 4] = 0;
  e1000[0x2808 / 4] = rdl;
  e1000[0x2810 / 4] = rn(rdl / 16);
  e1000[0x2818 / 4] = rn(rdl / 16);
  e1000[0x0100 / 4] = (uint32_t)rnd() | 0x2;  /* RCTL: EN and random filter/size bits */
  e1000[0x0400 / 4] = (uint32_t)rnd() | 0x2;  /* TCTL: EN */
  e1000[0x00d0 / 4] = (uint32_t)rnd();        /* IMS */
  e1000[0x3818 / 4] = rn(tdl / 16);           /* TDT: transmit now */
  n_mmio += 13;
}

/* ---------------------------------------------------------------- COM1 output (polled) */
static void com1_puts(const char *s) {
  if (dry) { fputs(s, stdout); fflush(stdout); return; }
  outb(0x80, 0x3fb); outb(1, 0x3f8); outb(0, 0x3f9); /* DLAB, 115200 */
  outb(0x03, 0x3fb);                                  /* 8N1 */
  outb(0x00, 0x3f9);                                  /* IER off: polled */
  outb(0x07, 0x3fa);                                  /* FIFO on and cleared */
  outb(0x0b, 0x3fc);                                  /* DTR RTS OUT2, no loopback */
  /* THRE polling, bounded per line (each poll is a round trip to the device model): a UART
   * that never says empty costs at most 20000 polls, then the rest goes out unpaced. */
  int budget = 20000;
  for (; *s; s++) {
    while (budget > 0 && !(inb(0x3fd) & 0x20)) budget--;
    outb((uint8_t)*s, 0x3f8);
  }
}
static void say(const char *fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  com1_puts(b);
}

/* ---------------------------------------------------------------- discovery */
static volatile uint8_t *map_mem(const char *dev, uint64_t base, uint64_t len, int bar) {
  int fd = open("/dev/mem", O_RDWR | O_SYNC);
  void *m = MAP_FAILED;
  if (fd >= 0) { m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base); close(fd); }
  if (m == MAP_FAILED) { /* IO_STRICT_DEVMEM: the sysfs resource file may still map it */
    char p[300];
    snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/resource%d", dev, bar);
    fd = open(p, O_RDWR | O_SYNC);
    if (fd >= 0) { m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); close(fd); }
  }
  return m == MAP_FAILED ? NULL : (volatile uint8_t *)m;
}

static void discover_fake(void) {
  /* dry run: the xenfv layout with a made-up BMDMA, e1000 and PM */
  static const struct { unsigned bdf; uint32_t vd, cls; } f[] = {
    {0x00, 0x12378086, 0x060000}, {0x08, 0x70008086, 0x060100}, {0x09, 0x70108086, 0x010180},
    {0x0b, 0x71138086, 0x068000}, {0x10, 0x00015853, 0xff8000}, {0x18, 0x100e8086, 0x020000}};
  for (unsigned i = 0; i < sizeof f / sizeof f[0]; i++) {
    struct func *x = &funcs[nfuncs++];
    memset(x, 0, sizeof *x);
    x->bdf = f[i].bdf, x->vendev = f[i].vd, x->cls = f[i].cls;
    x->hdr[0] = f[i].vd;
    x->is_ide = f[i].cls >> 8 == 0x0101;
    x->is_pm = f[i].vd == 0x71138086;
    x->is_xenp = f[i].vd == 0x00015853;
    x->is_e1000 = f[i].cls >> 8 == 0x0200;
  }
  funcs[2].hdr[8] = 0xc001;
  bmdma = 0xc000;
  add_range(0xc000, 16, NULL, K_BMDMA);
  add_range(0xc100, 256, NULL, K_PLAIN);
  add_range(0xc200, 64, NULL, K_E1000_IO);
  static uint8_t fake_mmio[0x20000];
  add_range(0xf0000000u, sizeof fake_mmio, fake_mmio, K_E1000_MMIO);
  n_mmio_ranges = 1;
}

static void discover(void) {
  DIR *d = opendir("/sys/bus/pci/devices");
  struct dirent *e;
  while (d && (e = readdir(d)) && nfuncs < MAX_FUNCS) {
    unsigned dom, bus, dev, fn;
    if (sscanf(e->d_name, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4 || dom) continue;
    char p[300];
    snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/config", e->d_name);
    int fd = open(p, O_RDONLY);
    struct func *f = &funcs[nfuncs];
    memset(f, 0, sizeof *f);
    if (fd < 0 || read(fd, f->hdr, sizeof f->hdr) < 64) { if (fd >= 0) close(fd); continue; }
    close(fd);
    nfuncs++;
    f->bdf = bus << 8 | dev << 3 | fn;
    f->vendev = f->hdr[0];
    f->cls = f->hdr[2] >> 8;
    f->is_ide = f->cls >> 8 == 0x0101;
    f->is_pm = f->vendev == 0x71138086;
    f->is_xenp = (f->vendev & 0xffff) == 0x5853;
    f->is_e1000 = f->cls >> 8 == 0x0200 && (f->vendev & 0xffff) == 0x8086;
    f->is_vga = f->cls >> 8 == 0x0300;
    snprintf(p, sizeof p, "/sys/bus/pci/devices/%s/resource", e->d_name);
    FILE *rf = fopen(p, "r");
    for (int bar = 0; rf && bar < 6; bar++) {
      unsigned long long s, end, fl;
      if (fscanf(rf, "%llx %llx %llx", &s, &end, &fl) != 3) break;
      if (!s || end <= s) continue;
      uint64_t len = end - s + 1;
      if (fl & 0x100) { /* I/O */
        int kind = f->is_ide && bar == 4 ? K_BMDMA : f->is_e1000 ? K_E1000_IO : K_PLAIN;
        if (kind == K_BMDMA) bmdma = (uint32_t)s;
        add_range((uint32_t)s, (uint32_t)len, NULL, kind);
      } else if (fl & 0x200) { /* memory */
        if (f->is_xenp) continue; /* shared info and grant pages: the guest's own, not the DM's */
        if (len > 0x1000000) len = 0x1000000;
        volatile uint8_t *m = map_mem(e->d_name, s, len, bar);
        if (!m) { n_mmio_denied++; continue; }
        add_range((uint32_t)s, (uint32_t)len, m, f->is_e1000 && bar == 0 ? K_E1000_MMIO : K_PLAIN);
        if (f->is_e1000 && bar == 0) e1000 = (volatile uint32_t *)m;
        n_mmio_ranges++;
      }
    }
    if (rf) fclose(rf);
    if (f->is_vga) {
      add_range(0x3c0, 32, NULL, K_PLAIN);
      add_range(0x1ce, 2, NULL, K_PLAIN);
      volatile uint8_t *m = map_mem(e->d_name, 0xa0000, 0x20000, -1);
      if (m) { add_range(0xa0000, 0x20000, m, K_PLAIN); n_mmio_ranges++; } else n_mmio_denied++;
    }
  }
  if (d) closedir(d);
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: e2e-abuse SECONDS SEED [--dry-run]\n"); return 2; }
  double secs = atof(argv[1]);
  uint64_t seed = strtoull(argv[2], NULL, 0);
  dry = argc > 3 && !strcmp(argv[3], "--dry-run");
  if (!(secs > 0 && secs < 86400)) { fprintf(stderr, "e2e-abuse: SECONDS must be in (0, 86400)\n"); return 2; }
  if (!seed) seed = now_ns() ^ ((uint64_t)getpid() << 32);
  rs = seed;
  if (!dry && iopl(3)) { perror("e2e-abuse: iopl(3)"); return 1; }
  /* fixed ranges first: ranges[0] is IDE0's command block (rep_episode's fallback) */
  add_range(0x1f0, 8, NULL, K_PLAIN);
  add_range(0x3f6, 1, NULL, K_PLAIN);
  add_range(0x170, 8, NULL, K_PLAIN);
  add_range(0x376, 1, NULL, K_PLAIN);
  add_range(0x3f8, 8, NULL, K_PLAIN);
  add_range(0x2f8, 8, NULL, K_PLAIN);
  add_range(0x70, 2, NULL, K_PLAIN);
  add_range(0x60, 1, NULL, K_PLAIN);
  add_range(0x64, 1, NULL, K_I8042_CMD);
  add_range(0xcf8, 4, NULL, K_PCI_ADDR);
  add_range(0xcfc, 4, NULL, K_PCI_DATA);
  add_range(0x10, 16, NULL, K_XENP_FIXED);
  if (dry) discover_fake(); else discover();
  int a = arena_init();
  if (a) { say("E2E abuse error=arena-%d\n", -a); return 1; }
  /* Before any random access: the PRD pointers and e1000 ring bases the drivers (ata_piix,
   * iPXE's option ROM) left name kernel memory, or 0. Decoding on first (headers as found,
   * I/O + memory + bus master), then point them at our pages, whose tables name only ours. */
  restore_headers();
  ide_prd_table(1);
  if (bmdma) { out_((uint16_t)(bmdma + 4), 4, (uint32_t)phys[PRD_PAGE]); out_((uint16_t)(bmdma + 12), 4, (uint32_t)phys[PRD_PAGE]); }
  e1000_safe_base(0x2800);
  e1000_safe_base(0x3800);
  uint32_t longest = 0;
  for (unsigned i = 0; i < ARENA_PAGES; i++) if (run_left[i] > longest) longest = run_left[i];
  say("E2E abuse-start seed=%#" PRIx64 " secs=%.0f funcs=%d bmdma=%#x mmio_bars=%d mmio_denied=%d e1000=%d arena_run_kib=%u\n",
      seed, secs, nfuncs, bmdma, n_mmio_ranges, n_mmio_denied, e1000 != NULL, longest / 1024);
  uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), next_restore = 0, next_progress = t0 + PROGRESS_NS;
  uint64_t iter = 0;
  for (;;) {
    if ((iter++ & 255) == 0) {
      uint64_t t = now_ns();
      if (t >= end) break;
      late = t >= end - (end - t0) / 10;
      if (t >= next_restore) { restore_headers(); next_restore = t + RESTORE_NS; }
      if (t >= next_progress) {
        say("E2E abuse-progress t=%.0f accesses=%" PRIu64 "\n", (t - t0) / 1e9, n_pio + n_mmio);
        next_progress = t + PROGRESS_NS;
      }
    }
    unsigned k = rn(100);
    if (k < 80) single_access();
    else if (k < 90) random_cfg_write();
    else if (k < 96) ide_episode();
    else if (k < 99) rep_episode();
    else ring_episode();
  }
  restore_headers();
  if (bmdma) { out_((uint16_t)bmdma, 1, 0); out_((uint16_t)(bmdma + 8), 1, 0); }
  say("E2E abuse done=1 seed=%#" PRIx64 " abuse_s=%.1f accesses=%" PRIu64 " pio=%" PRIu64 " mmio=%" PRIu64
      " cfg=%" PRIu64 " dma=%" PRIu64 " rep=%" PRIu64 " rings=%" PRIu64 " skipped=%" PRIu64 "\n",
      seed, (now_ns() - t0) / 1e9, n_pio + n_mmio, n_pio, n_mmio, n_cfg, n_dma, n_rep, n_ring, n_skipped);
  return 0;
}
