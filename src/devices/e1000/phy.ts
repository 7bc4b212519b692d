/**
 * The 82540EM's internal PHY (Marvell 88E1011-compatible), reached through
 * MDIC at PHY address 1 (SDM 13.4.7, 13.4.7.x PHY registers; IEEE 802.3
 * clause 22 for registers 0-10). Reset values are QEMU's
 * (hw/net/e1000.c phy_reg_init), which Linux e1000_detect_gig_phy accepts
 * (ID 0x01410C20 = M88E1011_I_PHY_ID).
 */
export const PHY_ADDR = 1;
export const PHY_REGS = 32;

export const PHY_CTRL = 0; // BMCR
export const PHY_STATUS = 1; // BMSR
export const PHY_ID1 = 2;
export const PHY_ID2 = 3;
export const PHY_AUTONEG_ADV = 4;
export const PHY_LP_ABILITY = 5;
export const PHY_AUTONEG_EXP = 6;
export const PHY_1000T_CTRL = 9;
export const PHY_1000T_STATUS = 10;
export const PHY_EXT_STATUS = 15;
export const M88_PHY_SPEC_CTRL = 16;
export const M88_PHY_SPEC_STATUS = 17;
export const M88_EXT_PHY_SPEC_CTRL = 20;
export const M88_RX_ERR_CNTR = 21;

// BMCR bits
export const MII_CR_SPEED_1000 = 0x0040;
export const MII_CR_FULL_DUPLEX = 0x0100;
export const MII_CR_RESTART_AUTONEG = 0x0200;
export const MII_CR_AUTONEG_EN = 0x1000;
export const MII_CR_LOOPBACK = 0x4000;
export const MII_CR_RESET = 0x8000;
// BMSR bits
export const MII_SR_LINK_STATUS = 0x0004;
export const MII_SR_AUTONEG_COMPLETE = 0x0020;
// ANLPAR acknowledge
export const NWAY_LPAR_ACK = 0x4000;
/** 88E1011 specific status: speed/duplex resolved (bit 11) and real-time link (bit 10). */
export const M88_PSSR_LINK = 0x0c00;

const R = 1;
const W = 2;
/** What MDIC may do with each register; anything else answers with MDIC.E. */
export const PHY_ACCESS: readonly number[] = (() => {
  const a = new Array<number>(PHY_REGS).fill(0);
  a[PHY_CTRL] = R | W;
  a[PHY_STATUS] = R;
  a[PHY_ID1] = R;
  a[PHY_ID2] = R;
  a[PHY_AUTONEG_ADV] = R | W;
  a[PHY_LP_ABILITY] = R;
  a[PHY_AUTONEG_EXP] = R;
  a[PHY_1000T_CTRL] = R | W;
  a[PHY_1000T_STATUS] = R;
  a[PHY_EXT_STATUS] = R;
  a[M88_PHY_SPEC_CTRL] = R | W;
  a[M88_PHY_SPEC_STATUS] = R;
  a[M88_EXT_PHY_SPEC_CTRL] = R | W;
  a[M88_RX_ERR_CNTR] = R;
  return a;
})();
export const PHY_READABLE = R;
export const PHY_WRITABLE = W;

/** Power-on values: 1000/full, autonegotiation enabled, link up but negotiation not yet complete. */
export function phyInit(): Uint16Array {
  const p = new Uint16Array(PHY_REGS);
  p[PHY_CTRL] = MII_CR_SPEED_1000 | MII_CR_FULL_DUPLEX | MII_CR_AUTONEG_EN; // 0x1140
  p[PHY_STATUS] = 0x794d; // 10/100 half+full, ext status, preamble suppression, autoneg able, link up, ext caps
  p[PHY_ID1] = 0x0141;
  p[PHY_ID2] = 0x0c20;
  p[PHY_AUTONEG_ADV] = 0x0de1; // 802.3, 10/100 half+full, pause, asym pause
  p[PHY_LP_ABILITY] = 0x01e0;
  p[PHY_1000T_CTRL] = 0x0e00;
  p[PHY_1000T_STATUS] = 0x3c00;
  p[PHY_EXT_STATUS] = 0x3000; // 1000BASE-T full and half duplex capable
  p[M88_PHY_SPEC_CTRL] = 0x0360;
  p[M88_PHY_SPEC_STATUS] = 0xac00;
  p[M88_EXT_PHY_SPEC_CTRL] = 0x0d60;
  return p;
}
