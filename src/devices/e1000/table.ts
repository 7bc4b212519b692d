/**
 * The memory BAR's register file as a RegisterTable (docs/architecture.md §6).
 * Plain registers just store (with the writable mask QEMU applies); the ones
 * with side effects call a hook on the device. Slot numbers (S_*) index the
 * device's storage array for the registers the device touches itself.
 */
import { RegisterTable, RO, W1C, WO, type RegDef } from '../../core/regs.ts';
import * as R from './regs.ts';

/** What the table's handlers call on the device. */
export interface E1000Hooks {
  ctrlWritten(v: number, old: number): void;
  eecdRead(): number;
  eecdWritten(v: number): void;
  eerdRead(): number;
  mdicWritten(v: number): void;
  icrRead(): number;
  icrWritten(): void;
  icsRead(): number;
  icsWritten(v: number): void;
  imsWritten(v: number, old: number): void;
  imcWritten(v: number): void;
  rctlWritten(v: number, old: number): void;
  tctlWritten(): void;
  rdtWritten(): void;
  rdtrWritten(v: number): void;
  tdtWritten(): void;
  statRead(i: number): number;
}

type D = E1000Hooks;
const M16 = 0xffff;

const DEFS: readonly RegDef<D>[] = [
  { name: 'CTRL', off: R.CTRL, width: 4, init: R.CTRL_SWDPIN2 | R.CTRL_SWDPIN0 | R.CTRL_SPD_1000 | R.CTRL_SLU, write: (d, v, o) => d.ctrlWritten(v, o) },
  { name: 'STATUS', off: R.STATUS, width: 4, flags: RO, init: R.STATUS_INIT },
  { name: 'EECD', off: R.EECD, width: 4, read: (d) => d.eecdRead(), write: (d, v) => d.eecdWritten(v) },
  // EERD: the guest writes START and an address; DONE and data are computed on read.
  { name: 'EERD', off: R.EERD, width: 4, mask: 0xff01, read: (d) => d.eerdRead() },
  { name: 'CTRL_EXT', off: R.CTRL_EXT, width: 4 },
  // Reads 0 until the first command (as QEMU); every command completes at once with READY.
  { name: 'MDIC', off: R.MDIC, width: 4, write: (d, v) => d.mdicWritten(v) },
  { name: 'FCAL', off: R.FCAL, width: 4 },
  { name: 'FCAH', off: R.FCAH, width: 4, mask: M16 },
  { name: 'FCT', off: R.FCT, width: 4, mask: M16 },
  { name: 'VET', off: R.VET, width: 4, mask: M16, init: 0x8100 },
  { name: 'ICR', off: R.ICR, width: 4, flags: W1C, mask: R.ICR_VALID, read: (d) => d.icrRead(), write: (d) => d.icrWritten() },
  { name: 'ITR', off: R.ITR, width: 4, mask: M16 },
  // ICS reads as ICR without clearing it (QEMU; VxWorks relies on it).
  { name: 'ICS', off: R.ICS, width: 4, mask: R.ICR_VALID, read: (d) => d.icsRead(), write: (d, v) => d.icsWritten(v) },
  { name: 'IMS', off: R.IMS, width: 4, mask: R.ICR_VALID, write: (d, v, o) => d.imsWritten(v, o) },
  { name: 'IMC', off: R.IMC, width: 4, flags: WO, mask: R.ICR_VALID, write: (d, v) => d.imcWritten(v) },
  { name: 'RCTL', off: R.RCTL, width: 4, mask: 0x07ffeffe, write: (d, v, o) => d.rctlWritten(v, o) },
  { name: 'FCTTV', off: R.FCTTV, width: 4, mask: M16 },
  { name: 'TXCW', off: R.TXCW, width: 4 },
  { name: 'RXCW', off: R.RXCW, width: 4, flags: RO },
  { name: 'TCTL', off: R.TCTL, width: 4, write: (d) => d.tctlWritten() },
  { name: 'TIPG', off: R.TIPG, width: 4 },
  { name: 'AIFS', off: R.AIFS, width: 4, mask: M16 },
  { name: 'LEDCTL', off: R.LEDCTL, width: 4, init: 0x602 },
  { name: 'PBA', off: R.PBA, width: 4, init: 0x00100030 },
  { name: 'FCRTL', off: R.FCRTL, width: 4 },
  { name: 'FCRTH', off: R.FCRTH, width: 4 },
  { name: 'RDFH', off: R.RDFH, width: 4, mask: 0x1fff },
  { name: 'RDFT', off: R.RDFT, width: 4, mask: 0x1fff },
  { name: 'RDFHS', off: R.RDFHS, width: 4, mask: 0x1fff },
  { name: 'RDFTS', off: R.RDFTS, width: 4, mask: 0x1fff },
  { name: 'RDFPC', off: R.RDFPC, width: 4, mask: 0x1fff },
  { name: 'RDBAL', off: R.RDBAL, width: 4, mask: 0xfffffff0 },
  { name: 'RDBAH', off: R.RDBAH, width: 4 },
  { name: 'RDLEN', off: R.RDLEN, width: 4, mask: 0xfff80 },
  { name: 'RDH', off: R.RDH, width: 4, mask: M16 },
  { name: 'RDT', off: R.RDT, width: 4, mask: M16, write: (d) => d.rdtWritten() },
  { name: 'RDTR', off: R.RDTR, width: 4, mask: M16 | R.RDTR_FPD, write: (d, v) => d.rdtrWritten(v) },
  { name: 'RXDCTL', off: R.RXDCTL, width: 4 },
  { name: 'RADV', off: R.RADV, width: 4, mask: M16 },
  { name: 'RSRPD', off: R.RSRPD, width: 4, mask: 0xfff },
  { name: 'TXDMAC', off: R.TXDMAC, width: 4, mask: 1 },
  { name: 'TDFH', off: R.TDFH, width: 4, mask: 0x7ff },
  { name: 'TDFT', off: R.TDFT, width: 4, mask: 0x7ff },
  { name: 'TDFHS', off: R.TDFHS, width: 4, mask: 0x1fff },
  { name: 'TDFTS', off: R.TDFTS, width: 4, mask: 0x1fff },
  { name: 'TDFPC', off: R.TDFPC, width: 4, mask: 0x1fff },
  { name: 'TDBAL', off: R.TDBAL, width: 4, mask: 0xfffffff0 },
  { name: 'TDBAH', off: R.TDBAH, width: 4 },
  { name: 'TDLEN', off: R.TDLEN, width: 4, mask: 0xfff80 },
  { name: 'TDH', off: R.TDH, width: 4, mask: M16 },
  { name: 'TDT', off: R.TDT, width: 4, mask: M16, write: (d) => d.tdtWritten() },
  { name: 'TIDV', off: R.TIDV, width: 4, mask: M16 },
  { name: 'TXDCTL', off: R.TXDCTL, width: 4 },
  { name: 'TADV', off: R.TADV, width: 4, mask: M16 },
  { name: 'TSPMT', off: R.TSPMT, width: 4 },
  { name: 'STATS', off: R.STATS, width: 4, count: R.STATS_COUNT, flags: RO, read: (d, i) => d.statRead(i) },
  { name: 'RXCSUM', off: R.RXCSUM, width: 4, mask: 0x3ff },
  { name: 'MTA', off: R.MTA, width: 4, count: 128 },
  { name: 'RA', off: R.RA, width: 4, count: 32 },
  { name: 'VFTA', off: R.VFTA, width: 4, count: 128 },
  { name: 'WUC', off: R.WUC, width: 4 },
  { name: 'WUFC', off: R.WUFC, width: 4 },
  { name: 'WUS', off: R.WUS, width: 4 },
  // QEMU's reset value: MNG2HOST, RCV_TCO_EN, ARP_EN, 0298_EN, RMCP_EN.
  { name: 'MANC', off: R.MANC, width: 4, init: 0x00222300 },
  { name: 'IPAV', off: R.IPAV, width: 4 },
  { name: 'IP4AT', off: R.IP4AT, width: 4, count: 7 },
  { name: 'IP6AT', off: R.IP6AT, width: 4, count: 4 },
  { name: 'WUPL', off: R.WUPL, width: 4, mask: 0xfff },
  { name: 'WUPM', off: R.WUPM, width: 4, count: 32 },
  { name: 'FFLT', off: R.FFLT, width: 4, count: 7, mask: 0x7ff },
];

export const E1000_TABLE = new RegisterTable<D>('e1000', R.MMIO_SIZE, DEFS, 0);

/** Writable mask of every storage slot (for restore's range checks); RO slots hold what the device put there. */
export const SLOT_MASKS: Uint32Array = (() => {
  const m = new Uint32Array(E1000_TABLE.slots);
  let slot = 0;
  for (const d of DEFS) {
    const n = d.count ?? 1;
    for (let i = 0; i < n; i++) m[slot++] = d.flags && d.flags & RO ? 0xffffffff : (d.mask ?? 0xffffffff) >>> 0;
  }
  return m;
})();

const s = (n: string, i = 0): number => E1000_TABLE.slot(n, i);
export const S_CTRL = s('CTRL');
export const S_STATUS = s('STATUS');
export const S_EERD = s('EERD');
export const S_MDIC = s('MDIC');
export const S_VET = s('VET');
export const S_ICR = s('ICR');
export const S_ITR = s('ITR');
export const S_ICS = s('ICS');
export const S_IMS = s('IMS');
export const S_RCTL = s('RCTL');
export const S_TCTL = s('TCTL');
export const S_RDBAL = s('RDBAL');
export const S_RDBAH = s('RDBAH');
export const S_RDLEN = s('RDLEN');
export const S_RDH = s('RDH');
export const S_RDT = s('RDT');
export const S_RDTR = s('RDTR');
export const S_RADV = s('RADV');
export const S_TDBAL = s('TDBAL');
export const S_TDBAH = s('TDBAH');
export const S_TDLEN = s('TDLEN');
export const S_TDH = s('TDH');
export const S_TDT = s('TDT');
export const S_TIDV = s('TIDV');
export const S_TADV = s('TADV');
export const S_STATS = s('STATS');
export const S_MTA = s('MTA');
export const S_RA = s('RA');
export const S_VFTA = s('VFTA');
