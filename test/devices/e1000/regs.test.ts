/**
 * e1000 register level: PCI identity and BARs, reset values, the EEPROM
 * through EERD (as iPXE reads it) and through EECD Microwire bit-banging
 * (as Linux e1000_read_eeprom does on 82540), MDIC PHY access, the
 * autonegotiation timing on the VirtualClock, ICR/ICS/IMS/IMC and INTx,
 * ITR, the IOADDR/IODATA window and CTRL.RST through it, statistics and
 * the expansion ROM BAR.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import * as R from '../../../src/devices/e1000/regs.ts';
import { EEPROM_SUM } from '../../../src/devices/e1000/index.ts';
import { IO_BASE, MAC, makeNic, MMIO_BASE, ROM_BASE, setupTx, txDesc, legacy, TX_BUF, type Nic } from './harness.ts';

test('PCI identity as QEMU e1000: 8086:100e rev 3, class 0200, subsystem 1af4:1100, INTA, BAR sizes', () => {
  const n = makeNic();
  assert.equal(n.cfgRead(0x00, 4), 0x100e8086);
  assert.equal(n.cfgRead(0x08, 4), 0x02000003);
  assert.equal(n.cfgRead(0x2c, 4), 0x11001af4);
  assert.equal(n.cfgRead(0x3d, 1), 1);
  assert.equal(n.cfgRead(0x0c, 1), 0x10);
  n.cfgWrite(0x10, 4, 0xffffffff);
  assert.equal(n.cfgRead(0x10, 4), 0xfffe0000, '128 KiB memory BAR');
  n.cfgWrite(0x14, 4, 0xffffffff);
  assert.equal(n.cfgRead(0x14, 4), 0xffffffc1, '64-byte I/O BAR');
  assert.equal(n.cfgRead(0x30, 4), 0, 'no ROM BAR without an image');
  assert.equal(n.nic.id, 'e1000.0');
  n.cfgWrite(0x10, 4, 0xfebc0000);
  n.cfgWrite(0x14, 4, 0xc000);
  assert.ok(n.host.ranges.has('mmio:0xfebc0000-0xfebdffff'), 'BAR0 claimed on the ioreq server');
  assert.ok(n.host.ranges.has('pio:0xc000-0xc03f'), 'BAR1 claimed');
});

test('iPXE intel_reset and intel_fetch_mac: CTRL.RST through MMIO, SLU|ASDE, link up, RAL0/RAH0 valid', () => {
  const n = makeNic();
  n.w32(R.RCTL, R.RCTL_EN);
  const ctrl = n.r32(R.CTRL);
  n.w32(R.CTRL, ctrl | R.CTRL_RST);
  assert.equal(n.r32(R.RCTL), 0);
  n.w32(R.CTRL, (ctrl | R.CTRL_SLU | 0x20) & ~(0x8 | 0x800 | 0x1000));
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, R.STATUS_LU, 'link up: iPXE skips the PHY reset');
  const lo = n.r32(R.RA);
  const hi = n.r32(R.RA + 4);
  assert.deepEqual([lo & 0xff, (lo >>> 8) & 0xff, (lo >>> 16) & 0xff, lo >>> 24, hi & 0xff, (hi >>> 8) & 0xff], [...MAC]);
});

test('Linux e1000_phy_hw_reset (CTRL.PHY_RST pulse) puts PHY registers back, keeping the link', () => {
  const n = makeNic();
  assert.ok(mdicWrite(n, 4, 0x0001));
  const ctrl = n.r32(R.CTRL);
  n.w32(R.CTRL, ctrl | R.CTRL_PHY_RST);
  n.w32(R.CTRL, ctrl);
  assert.equal(mdicRead(n, 4), 0x0de1);
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, R.STATUS_LU);
  assert.equal(mdicRead(n, 1) & 0x4, 0x4);
});

test('partial and unaligned accesses: bytes of a register, the I/O window at byte granularity', () => {
  const n = makeNic();
  n.w32(R.RDTR, 0x1234);
  assert.equal(n.board.mmio.read(MMIO_BASE + R.RDTR + 1, 1), 0x12);
  n.board.mmio.write(MMIO_BASE + R.RDTR, 1, 0xff);
  assert.equal(n.r32(R.RDTR), 0x12ff);
  n.board.pio.write(IO_BASE, 2, R.RDTR);
  n.board.pio.write(IO_BASE + 2, 2, 0);
  assert.equal(n.board.pio.read(IO_BASE, 4), R.RDTR);
  assert.equal(n.board.pio.read(IO_BASE + 5, 1), 0x12, 'IODATA byte 1 = register byte 1');
});

test('reset values of the registers drivers look at', () => {
  const n = makeNic();
  assert.equal(n.r32(R.CTRL), 0x00140240);
  assert.equal(n.r32(R.STATUS), 0x80080783, 'LU, FD, 1000 Mb/s');
  assert.equal(n.r32(R.EECD) & (R.EECD_PRES | R.EECD_GNT), R.EECD_PRES | R.EECD_GNT);
  assert.equal(n.r32(R.MDIC), 0, 'MDIC reads 0 before the first command');
  assert.equal(n.r32(R.VET), 0x8100);
  assert.equal(n.r32(R.PBA), 0x00100030);
  assert.equal(n.r32(R.LEDCTL), 0x602);
  assert.equal(n.r32(R.MANC), 0x00222300);
  assert.equal(n.r32(R.RCTL), 0);
  assert.equal(n.r32(R.TCTL), 0);
  assert.equal(n.r32(R.IMS), 0);
  // RAL0/RAH0 autoloaded from the EEPROM (iPXE intel_fetch_mac reads them first).
  assert.equal(n.r32(R.RA), 0x12005452);
  assert.equal(n.r32(R.RA + 4), 0x80005634);
  assert.equal(n.r32(0x1fffc), 0, 'unclaimed offsets read 0');
  assert.equal(n.intx(), 0);
});

/** iPXE intel_init_eeprom + intel_read_eeprom: START | address << 8, poll DONE (bit 4), data in 31:16. */
function eerdWord(n: Nic, addr: number): number {
  n.w32(R.EERD, R.EERD_START | (addr << 8));
  for (let i = 0; i < 100; i++) {
    const v = n.r32(R.EERD);
    if (v & 0x2) throw new Error('large-format DONE bit set: iPXE would pick the wrong layout');
    if (v & R.EERD_DONE) return v >>> 16;
  }
  throw new Error('EERD never completed');
}

test('EEPROM through EERD: MAC in words 0-2, device ID, words 0x00-0x3F sum to 0xBABA', () => {
  const n = makeNic();
  const words = Array.from({ length: 64 }, (_, i) => eerdWord(n, i));
  assert.deepEqual(words.slice(0, 3), [0x5452, 0x1200, 0x5634]);
  assert.equal(words[0x0b], 0x100e);
  assert.equal(words[0x0d], 0x100e);
  assert.equal(words.reduce((a, b) => (a + b) & 0xffff, 0), EEPROM_SUM);
  // Past the 64-word part: DONE without data (as QEMU).
  n.w32(R.EERD, R.EERD_START | (0x80 << 8));
  assert.equal(n.r32(R.EERD), 0x8010);
});

/**
 * Linux e1000_read_eeprom on an 82540 (Microwire): e1000_acquire_eeprom
 * (REQ, wait for GNT, clear DI/SK, raise CS), then per word
 * e1000_shift_out_ee_bits(READ opcode 110b, 3 bits), the address (6 bits),
 * e1000_shift_in_ee_bits(16), e1000_standby_eeprom; e1000_release_eeprom.
 */
function linuxReadEeprom(n: Nic, offset: number, words: number): number[] {
  const rd = (): number => n.r32(R.EECD);
  const wr = (v: number): void => n.w32(R.EECD, v);
  let eecd = rd();
  eecd |= R.EECD_REQ;
  wr(eecd);
  eecd = rd();
  let tries = 0;
  while (!(eecd & R.EECD_GNT) && tries++ < 1000) eecd = rd();
  if (!(eecd & R.EECD_GNT)) throw new Error('no EEPROM grant');
  eecd &= ~(R.EECD_DI | R.EECD_SK);
  wr(eecd);
  eecd |= R.EECD_CS;
  wr(eecd);
  const raise = (): void => {
    eecd |= R.EECD_SK;
    wr(eecd);
  };
  const lower = (): void => {
    eecd &= ~R.EECD_SK;
    wr(eecd);
  };
  const shiftOut = (data: number, count: number): void => {
    eecd = rd();
    eecd &= ~R.EECD_DO;
    for (let mask = 1 << (count - 1); mask; mask >>= 1) {
      eecd &= ~R.EECD_DI;
      if (data & mask) eecd |= R.EECD_DI;
      wr(eecd);
      raise();
      lower();
    }
    eecd &= ~R.EECD_DI;
    wr(eecd);
  };
  const shiftIn = (count: number): number => {
    eecd = rd();
    eecd &= ~(R.EECD_DO | R.EECD_DI);
    let data = 0;
    for (let i = 0; i < count; i++) {
      data <<= 1;
      raise();
      eecd = rd();
      eecd &= ~R.EECD_DI;
      if (eecd & R.EECD_DO) data |= 1;
      lower();
    }
    return data;
  };
  const standby = (): void => {
    eecd = rd();
    eecd &= ~(R.EECD_CS | R.EECD_SK);
    wr(eecd);
    eecd |= R.EECD_SK;
    wr(eecd);
    eecd |= R.EECD_CS;
    wr(eecd);
    eecd &= ~R.EECD_SK;
    wr(eecd);
  };
  const out: number[] = [];
  for (let i = 0; i < words; i++) {
    shiftOut(0x6, 3);
    shiftOut(offset + i, 6);
    out.push(shiftIn(16));
    standby();
  }
  // e1000_release_eeprom
  eecd = rd();
  eecd &= ~(R.EECD_CS | R.EECD_DI);
  wr(eecd);
  raise();
  lower();
  eecd &= ~R.EECD_REQ;
  wr(eecd);
  return out;
}

test('EEPROM through Microwire bit-banging exactly as Linux e1000_read_eeprom: checksum 0xBABA, MAC', () => {
  const n = makeNic();
  const words = linuxReadEeprom(n, 0, 64);
  assert.equal(words.reduce((a, b) => (a + b) & 0xffff, 0), EEPROM_SUM, 'e1000_validate_eeprom_checksum');
  assert.deepEqual(words.slice(0, 3), [0x5452, 0x1200, 0x5634]);
  assert.deepEqual(linuxReadEeprom(n, 0x0b, 1), [0x100e]);
  assert.equal(n.r32(R.EECD) & R.EECD_DO, R.EECD_DO, 'DO idles high');
});

/** Linux e1000_read_phy_reg_ex (MDIC): returns data, or -1 on MDIC.E. */
function mdicRead(n: Nic, reg: number, phy = 1): number {
  n.w32(R.MDIC, (reg << 16) | (phy << 21) | R.MDIC_OP_READ);
  const v = n.r32(R.MDIC);
  assert.ok(v & R.MDIC_READY);
  return v & R.MDIC_ERROR ? -1 : v & 0xffff;
}
function mdicWrite(n: Nic, reg: number, data: number, phy = 1): boolean {
  n.w32(R.MDIC, data | (reg << 16) | (phy << 21) | R.MDIC_OP_WRITE);
  return !(n.r32(R.MDIC) & R.MDIC_ERROR);
}

test('MDIC: PHY 1 is an M88E1011 (ID 0x01410C20), other addresses and unimplemented registers answer MDIC.E', () => {
  const n = makeNic();
  assert.equal(mdicRead(n, 2), 0x0141);
  assert.equal(mdicRead(n, 3), 0x0c20);
  assert.equal(mdicRead(n, 0), 0x1140);
  assert.equal(mdicRead(n, 1), 0x794d, 'link up, negotiation not complete yet');
  assert.equal(mdicRead(n, 17), 0xac00);
  assert.equal(mdicRead(n, 2, 2), -1, 'PHY address 2');
  assert.equal(mdicRead(n, 7), -1, 'register 7 not implemented');
  assert.equal(mdicWrite(n, 1, 0), false, 'BMSR is read-only');
  assert.ok(mdicWrite(n, 4, 0x01e1));
  assert.equal(mdicRead(n, 4), 0x01e1);
  // MDIC.I raises MDAC.
  n.w32(R.IMS, R.ICR_MDAC);
  n.w32(R.MDIC, (2 << 16) | (1 << 21) | R.MDIC_OP_READ | R.MDIC_INT_EN);
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.ICR), R.ICR_MDAC);
  assert.equal(n.intx(), 0);
});

test('autonegotiation restart drops the link and brings it up with LSC 500 ms later on the clock', () => {
  const n = makeNic();
  n.w32(R.IMS, R.ICR_LSC);
  assert.ok(mdicWrite(n, 0, 0x1140 | 0x0200)); // AUTOEN | RESTART (Linux e1000_copper_link_autoneg)
  assert.equal(mdicRead(n, 0), 0x1140, 'restart self-clears');
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, 0);
  assert.equal(mdicRead(n, 1) & 0x24, 0, 'BMSR: no link, negotiation incomplete');
  n.clock.advance(499);
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, 0);
  assert.equal(n.intx(), 0);
  n.clock.advance(1);
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, R.STATUS_LU);
  assert.equal(mdicRead(n, 1) & 0x24, 0x24);
  assert.equal(mdicRead(n, 5) & 0x4000, 0x4000, 'link partner acknowledged');
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.ICR), R.ICR_LSC, 'read-to-clear');
  assert.equal(n.intx(), 0);
  assert.equal(n.r32(R.ICR), 0);
  // Cable pulled and reconnected (QMP set_link): LSC both ways, renegotiation only if it had not completed.
  n.nic.setLinkUp(false);
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, 0);
  assert.equal(n.r32(R.ICR), R.ICR_LSC);
  n.nic.setLinkUp(true);
  n.clock.advance(500);
  assert.equal(n.r32(R.STATUS) & R.STATUS_LU, R.STATUS_LU);
});

test('ICR/ICS/IMS/IMC drive INTx: level follows ICR & IMS, ICR clears on read and by writing 1s', () => {
  const n = makeNic();
  n.w32(R.ICS, R.ICR_RXT0 | R.ICR_TXDW);
  assert.equal(n.intx(), 0, 'masked');
  assert.equal(n.r32(R.ICS), R.ICR_RXT0 | R.ICR_TXDW, 'ICS reads as ICR');
  n.w32(R.IMS, R.ICR_RXT0);
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.IMS), R.ICR_RXT0);
  n.w32(R.IMS, R.ICR_LSC);
  assert.equal(n.r32(R.IMS), R.ICR_RXT0 | R.ICR_LSC, 'IMS only sets');
  n.w32(R.IMC, R.ICR_RXT0);
  assert.equal(n.r32(R.IMS), R.ICR_LSC);
  assert.equal(n.intx(), 0);
  assert.equal(n.r32(R.IMC), 0, 'IMC is write-only');
  n.w32(R.ICR, R.ICR_TXDW); // write 1 to clear
  assert.equal(n.r32(R.ICS), R.ICR_RXT0);
  n.w32(R.IMS, R.ICR_RXT0);
  assert.equal(n.intx(), 1);
  assert.equal(n.r32(R.ICR), R.ICR_RXT0);
  assert.equal(n.intx(), 0);
  assert.equal(n.nic.irqAsserted, false);
  // Reserved cause bits cannot be set.
  n.w32(R.ICS, 0xffffffff);
  assert.equal(n.r32(R.ICR), R.ICR_VALID);
  // INTx disable in the command register keeps the line low.
  n.w32(R.ICS, R.ICR_RXT0);
  assert.equal(n.intx(), 1);
  n.cfgWrite(0x04, 2, 0x0407);
  assert.equal(n.intx(), 0);
  assert.equal(n.cfgRead(0x06, 2) & 0x08, 0x08, 'status.INTx still reports the pending interrupt');
});

test('ITR spaces interrupt assertions at least ITR x 256 ns apart', () => {
  const n = makeNic();
  n.w32(R.ITR, 1000); // 256 us
  n.w32(R.IMS, R.ICR_RXT0);
  n.w32(R.ICS, R.ICR_RXT0);
  assert.equal(n.intx(), 1, 'the first assertion is immediate');
  n.r32(R.ICR);
  n.w32(R.ICS, R.ICR_RXT0);
  assert.equal(n.intx(), 0, 'inside the interval: held back');
  n.clock.advance(0.2);
  assert.equal(n.intx(), 0);
  n.clock.advance(0.06);
  assert.equal(n.intx(), 1, 'released when the interval ends');
  // An edge after the interval is asserted at once, and no timer runs for it: on the
  // real clock every sub-millisecond timer is a 1 ms DM wake-up.
  n.r32(R.ICR);
  n.clock.advance(0.3);
  const timers = n.clock.pending;
  n.w32(R.ICS, R.ICR_RXT0);
  assert.equal(n.intx(), 1);
  assert.equal(n.clock.pending, timers, 'no timer armed by an assertion');
});

test('IOADDR/IODATA reach the registers, and Linux resets the 82540 by CTRL.RST through them', () => {
  const n = makeNic();
  const io = (off: number) => n.board.pio.read(IO_BASE + off, 4);
  const iow = (off: number, v: number) => n.board.pio.write(IO_BASE + off, 4, v);
  iow(0, R.STATUS);
  assert.equal(io(0), R.STATUS);
  assert.equal(io(4), 0x80080783);
  n.w32(R.RCTL, R.RCTL_EN | R.RCTL_BAM);
  n.w32(R.IMS, R.ICR_RXT0);
  n.w32(R.RA + 8, 0x11223344);
  iow(0, R.CTRL); // e1000_write_reg_io(hw, CTRL, ctrl | E1000_CTRL_RST)
  iow(4, n.r32(R.CTRL) | R.CTRL_RST);
  assert.equal(n.r32(R.RCTL), 0);
  assert.equal(n.r32(R.IMS), 0);
  assert.equal(n.r32(R.RA + 8), 0);
  assert.equal(n.r32(R.CTRL) & R.CTRL_RST, 0, 'RST self-clears');
  assert.equal(n.r32(R.RA), 0x12005452, 'RAL0 reloaded from the EEPROM');
  assert.equal(io(0), R.CTRL, 'the window survives the reset it carried');
  assert.equal(n.board.pio.read(IO_BASE + 0x10, 4), 0, 'reserved part of the window');
});

test('statistics are read-to-clear; the 64-bit octet counters clear as a pair on the high read', () => {
  const n = makeNic();
  setupTx(n, 8);
  const frame = new Uint8Array(100).fill(0xff, 0, 6);
  n.ram.set(frame, TX_BUF);
  const [lo, up] = legacy(100, R.TXD_CMD_EOP | R.TXD_CMD_RS);
  txDesc(n, 0, TX_BUF, lo, up);
  n.w32(R.TDT, 1);
  assert.equal(n.be.sent.length, 1);
  assert.equal(n.r32(R.STATS + R.ST_TPT * 4), 1);
  assert.equal(n.r32(R.STATS + R.ST_TPT * 4), 0);
  assert.equal(n.r32(R.STATS + R.ST_BPTC * 4), 1);
  assert.equal(n.r32(R.STATS + (R.ST_PTC64 + 1) * 4), 1, '104 bytes with FCS: 65-127 bucket');
  assert.equal(n.r32(R.STATS + R.ST_GOTCL * 4), 104);
  assert.equal(n.r32(R.STATS + R.ST_GOTCL * 4), 104, 'low half alone does not clear');
  assert.equal(n.r32(R.STATS + (R.ST_GOTCL + 1) * 4), 0);
  assert.equal(n.r32(R.STATS + R.ST_GOTCL * 4), 0, 'high read cleared both');
});

test('expansion ROM BAR serves the option ROM image (iPXE from ipxe-qemu when installed)', () => {
  const path = '/usr/lib/ipxe/qemu/efi-e1000.rom';
  const rom = existsSync(path) ? new Uint8Array(readFileSync(path)) : Uint8Array.from([0x55, 0xaa, 0x40, ...new Array(3000).fill(7)]);
  const n = makeNic({ rom });
  n.cfgWrite(0x30, 4, 0xfffff800);
  let size = 2048;
  while (size < rom.length) size *= 2;
  assert.equal(n.cfgRead(0x30, 4), (~(size - 1) & 0xfffff800) >>> 0);
  n.cfgWrite(0x30, 4, ROM_BASE | 1);
  assert.equal(n.board.mmio.read(ROM_BASE, 2), 0xaa55, 'option ROM signature');
  assert.equal(n.board.mmio.read(ROM_BASE + 2, 1), rom[2]);
  n.board.mmio.write(ROM_BASE, 4, 0);
  assert.equal(n.board.mmio.read(ROM_BASE, 2), 0xaa55, 'read-only');
  if (rom.length <= size - 4) assert.equal(n.board.mmio.read(ROM_BASE + size - 4, 4), 0xffffffff, 'padding past the image');
  n.cfgWrite(0x30, 4, ROM_BASE); // enable bit off: unmapped
  assert.equal(n.board.mmio.read(ROM_BASE, 2), 0xffff);
});

test('ROM BAR decodes only while enabled with memory space on: claimed on the ioreq server then, released otherwise', () => {
  const rom = Uint8Array.from([0x55, 0xaa, 0x04, ...new Array(2045).fill(0x33)]); // exactly 2 KiB: the smallest ROM BAR
  const n = makeNic({ rom });
  const range = `mmio:0x${ROM_BASE.toString(16)}-0x${(ROM_BASE + 2047).toString(16)}`;
  // hvmloader pci_setup sizes it with the enable bit clear and programs the base, still disabled.
  n.cfgWrite(0x30, 4, 0xfffff800);
  assert.equal(n.cfgRead(0x30, 4), 0xfffff800, '2 KiB ROM');
  n.cfgWrite(0x30, 4, ROM_BASE);
  assert.equal(n.host.ranges.has(range), false, 'not decoded with the enable bit clear');
  // SeaBIOS map_pcirom sets the enable bit, copies the image, writes the base back without it.
  n.cfgWrite(0x30, 4, ROM_BASE | 1);
  assert.ok(n.host.ranges.has(range), 'claimed while enabled');
  assert.equal(n.board.mmio.read(ROM_BASE, 4), 0x3304aa55);
  n.cfgWrite(0x04, 2, 0x0005); // memory space off: the ROM goes with the BARs
  assert.equal(n.host.ranges.has(range), false, 'released with memory decoding off');
  assert.equal(n.board.mmio.read(ROM_BASE, 2), 0xffff);
  n.cfgWrite(0x04, 2, 0x0007);
  assert.ok(n.host.ranges.has(range), 'back with memory decoding');
  n.cfgWrite(0x30, 4, ROM_BASE);
  assert.equal(n.host.ranges.has(range), false, 'released when disabled');
  assert.equal(n.cfgRead(0x30, 4), ROM_BASE, 'the base stays programmed');
});

test('removed from the bus (PV unplug): pending timers die, INTx stays low, frames are dropped', () => {
  const n = makeNic();
  n.w32(R.IMS, R.ICR_LSC);
  assert.ok(mdicWrite(n, 0, 0x1340)); // autonegotiation restart: LSC due in 500 ms
  n.bus.remove(4, 0);
  n.clock.advance(1000);
  assert.equal(n.intx(), 0);
  assert.equal(n.clock.pending, 0, 'no timer left armed');
  n.be.inject(new Uint8Array(60));
  assert.equal(n.be.queued, 0);
});
