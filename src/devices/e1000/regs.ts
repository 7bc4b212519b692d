/**
 * 82540EM register offsets and bits. Section numbers are from Intel's
 * "PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's
 * Manual" (8254x SDM, 317453006); offsets agree with Linux
 * drivers/net/ethernet/intel/e1000/e1000_hw.h and QEMU hw/net/e1000_regs.h.
 * docs/e1000.md lists which behaviour comes from where.
 */

// ---- Register offsets in the 128 KiB memory BAR (SDM 13.1, table 13-2) ----
// 13.4.x numbers follow the manual's order of general registers; 13.4.17 (ICR)
// and 13.4.20 (IMS) were checked against a public copy, the rest by that order.
export const CTRL = 0x0000; // 13.4.1 device control
export const STATUS = 0x0008; // 13.4.2 device status (read-only)
export const EECD = 0x0010; // 13.4.3 EEPROM/flash control (Microwire bit-banging)
export const EERD = 0x0014; // 13.4.4 EEPROM read (word at a time)
export const CTRL_EXT = 0x0018; // 13.4.6 extended device control
export const MDIC = 0x0020; // 13.4.7 MDI control (PHY access)
export const FCAL = 0x0028; // 13.4.8 flow control address low
export const FCAH = 0x002c; // 13.4.9 flow control address high
export const FCT = 0x0030; // 13.4.10 flow control type
export const VET = 0x0038; // 13.4.11 VLAN ether type
export const ICR = 0x00c0; // 13.4.17 interrupt cause read (clear on read)
export const ITR = 0x00c4; // 13.4.18 interrupt throttling
export const ICS = 0x00c8; // 13.4.19 interrupt cause set
export const IMS = 0x00d0; // 13.4.20 interrupt mask set/read
export const IMC = 0x00d8; // 13.4.21 interrupt mask clear
export const RCTL = 0x0100; // 13.4.22 receive control
export const FCTTV = 0x0170; // 13.4.12 flow control transmit timer value
export const TXCW = 0x0178; // 13.4.13 transmit configuration word
export const RXCW = 0x0180; // 13.4.14 receive configuration word
export const TCTL = 0x0400; // 13.4.33 transmit control
export const TIPG = 0x0410; // 13.4.34 transmit IPG
export const AIFS = 0x0458; // 13.4.35 adaptive IFS throttle
export const LEDCTL = 0x0e00; // 13.4.15 LED control
export const PBA = 0x1000; // 13.4.16 packet buffer allocation
export const FCRTL = 0x2160; // 13.4.23 flow control receive threshold low
export const FCRTH = 0x2168; // 13.4.24 flow control receive threshold high
export const RDFH = 0x2410; // receive data FIFO head (diagnostic, 13.5)
export const RDFT = 0x2418;
export const RDFHS = 0x2420;
export const RDFTS = 0x2428;
export const RDFPC = 0x2430;
export const RDBAL = 0x2800; // 13.4.25 receive descriptor base low
export const RDBAH = 0x2804; // 13.4.26 receive descriptor base high
export const RDLEN = 0x2808; // 13.4.27 receive descriptor ring length (bytes)
export const RDH = 0x2810; // 13.4.28 receive descriptor head
export const RDT = 0x2818; // 13.4.29 receive descriptor tail
export const RDTR = 0x2820; // 13.4.30 receive delay timer (packet timer)
export const RXDCTL = 0x2828; // 13.4.46 receive descriptor control
export const RADV = 0x282c; // 13.4.31 receive absolute delay timer
export const RSRPD = 0x2c00; // 13.4.32 receive small packet detect
export const TXDMAC = 0x3000; // 13.4.42 TX DMA control
export const TDFH = 0x3410; // transmit data FIFO head (diagnostic, 13.5)
export const TDFT = 0x3418;
export const TDFHS = 0x3420;
export const TDFTS = 0x3428;
export const TDFPC = 0x3430;
export const TDBAL = 0x3800; // 13.4.36 transmit descriptor base low
export const TDBAH = 0x3804; // 13.4.37 transmit descriptor base high
export const TDLEN = 0x3808; // 13.4.38 transmit descriptor ring length (bytes)
export const TDH = 0x3810; // 13.4.39 transmit descriptor head
export const TDT = 0x3818; // 13.4.40 transmit descriptor tail
export const TIDV = 0x3820; // 13.4.41 transmit interrupt delay value
export const TXDCTL = 0x3828; // 13.4.43 transmit descriptor control
export const TADV = 0x382c; // 13.4.44 transmit absolute interrupt delay
export const TSPMT = 0x3830; // 13.4.45 TCP segmentation pad and threshold
export const STATS = 0x4000; // 13.7 statistics, 0x4000-0x40FC, read to clear
export const STATS_COUNT = 64;
export const RXCSUM = 0x5000; // 13.4.47 receive checksum control
export const MTA = 0x5200; // 13.5.1 multicast table array, 128 dwords
export const RA = 0x5400; // 13.5.2/13.5.3 receive addresses RAL/RAH, 16 pairs
export const VFTA = 0x5600; // 13.5.4 VLAN filter table array, 128 dwords
export const WUC = 0x5800; // 13.6.1 wakeup control
export const WUFC = 0x5808; // 13.6.2 wakeup filter control
export const WUS = 0x5810; // 13.6.3 wakeup status
export const MANC = 0x5820; // management control (13.6 area; QEMU's reset value)
export const IPAV = 0x5838; // 13.6.4 IP address valid
export const IP4AT = 0x5840; // 13.6.5 IPv4 address table (7 dwords, as QEMU)
export const IP6AT = 0x5880; // 13.6.6 IPv6 address table (4 dwords)
export const WUPL = 0x5900; // 13.6.7 wakeup packet length
export const WUPM = 0x5a00; // 13.6.8 wakeup packet memory (32 dwords)
export const FFLT = 0x5f00; // 13.6.9 flexible filter length table (7 dwords, as QEMU)
export const MMIO_SIZE = 0x20000;

// Statistics (13.7), offsets from STATS. Counters saturate at all ones.
export const ST_MPC = 0x10 / 4; // missed packets
export const ST_PRC64 = 0x5c / 4; // packets received by size: 64, 65-127, ..., 1024-max
export const ST_GPRC = 0x74 / 4; // good packets received
export const ST_BPRC = 0x78 / 4; // broadcast packets received
export const ST_MPRC = 0x7c / 4; // multicast packets received
export const ST_GPTC = 0x80 / 4; // good packets transmitted
export const ST_GORCL = 0x88 / 4; // good octets received (64-bit: L then H)
export const ST_GOTCL = 0x90 / 4; // good octets transmitted
export const ST_RNBC = 0xa0 / 4; // receive no buffers
export const ST_ROC = 0xac / 4; // receive oversize
export const ST_TORL = 0xc0 / 4; // total octets received
export const ST_TOTL = 0xc8 / 4; // total octets transmitted
export const ST_TPR = 0xd0 / 4; // total packets received
export const ST_TPT = 0xd4 / 4; // total packets transmitted
export const ST_PTC64 = 0xd8 / 4; // packets transmitted by size
export const ST_MPTC = 0xf0 / 4; // multicast packets transmitted
export const ST_BPTC = 0xf4 / 4; // broadcast packets transmitted
export const ST_TSCTC = 0xf8 / 4; // TCP segmentation contexts transmitted
/** Low halves of the 64-bit counters: reading the high half clears both (as QEMU mac_read_clr8). */
export const STATS_PAIRS_LOW = [ST_GORCL, ST_GOTCL, ST_TORL, ST_TOTL] as const;

// ---- Bits ----
// CTRL 13.4.1
export const CTRL_FD = 1 << 0;
export const CTRL_SLU = 1 << 6;
export const CTRL_SPD_1000 = 2 << 8;
export const CTRL_SWDPIN0 = 1 << 18;
export const CTRL_SWDPIN2 = 1 << 20;
export const CTRL_RST = 1 << 26; // self-clearing software reset
export const CTRL_VME = 1 << 30; // VLAN mode enable
export const CTRL_PHY_RST = 1 << 31 >>> 0;

// STATUS 13.4.2
export const STATUS_FD = 1 << 0;
export const STATUS_LU = 1 << 1;
export const STATUS_SPEED_1000 = 2 << 6;
export const STATUS_ASDV_1000 = 3 << 8; // auto-speed detection value
export const STATUS_MTXCKOK = 1 << 10;
export const STATUS_GIO_MASTER = 1 << 19;
/** QEMU reports bit 31 set too; kept for driver-visible parity. */
export const STATUS_INIT =
  (0x80000000 | STATUS_GIO_MASTER | STATUS_ASDV_1000 | STATUS_MTXCKOK | STATUS_SPEED_1000 | STATUS_FD | STATUS_LU) >>> 0;

// EECD 13.4.3
export const EECD_SK = 1 << 0;
export const EECD_CS = 1 << 1;
export const EECD_DI = 1 << 2;
export const EECD_DO = 1 << 3;
export const EECD_FWE = 3 << 4;
export const EECD_REQ = 1 << 6;
export const EECD_GNT = 1 << 7;
export const EECD_PRES = 1 << 8;
/** Bits the guest drives and reads back. */
export const EECD_LATCHED = EECD_SK | EECD_CS | EECD_DI | EECD_FWE | EECD_REQ;

// EERD 13.4.4 (82540 layout: START bit 0, DONE bit 4, address 15:8, data 31:16)
export const EERD_START = 1 << 0;
export const EERD_DONE = 1 << 4;
export const EERD_ADDR_SHIFT = 8;
export const EERD_DATA_SHIFT = 16;

// MDIC 13.4.7
export const MDIC_DATA = 0xffff;
export const MDIC_REG_SHIFT = 16;
export const MDIC_PHY_SHIFT = 21;
export const MDIC_OP_WRITE = 1 << 26;
export const MDIC_OP_READ = 2 << 26;
export const MDIC_READY = 1 << 28;
export const MDIC_INT_EN = 1 << 29;
export const MDIC_ERROR = 1 << 30;

// ICR/ICS/IMS/IMC 13.4.17-13.4.21
export const ICR_TXDW = 1 << 0;
export const ICR_TXQE = 1 << 1;
export const ICR_LSC = 1 << 2;
export const ICR_RXSEQ = 1 << 3;
export const ICR_RXDMT0 = 1 << 4;
export const ICR_RXO = 1 << 6;
export const ICR_RXT0 = 1 << 7;
export const ICR_MDAC = 1 << 9;
export const ICR_RXCFG = 1 << 10;
export const ICR_TXD_LOW = 1 << 15;
export const ICR_SRPD = 1 << 16;
/** Causes the 82540 implements: bits 0-16 less the reserved 5 and 8 (table 13-63). */
export const ICR_VALID = 0x1fedf;

// RCTL 13.4.22
export const RCTL_EN = 1 << 1;
export const RCTL_SBP = 1 << 2;
export const RCTL_UPE = 1 << 3;
export const RCTL_MPE = 1 << 4;
export const RCTL_LPE = 1 << 5;
export const RCTL_RDMTS_SHIFT = 8;
export const RCTL_MO_SHIFT = 12;
export const RCTL_BAM = 1 << 15;
export const RCTL_BSIZE_SHIFT = 16;
export const RCTL_VFE = 1 << 18;
export const RCTL_BSEX = 1 << 25;
export const RCTL_SECRC = 1 << 26;

// TCTL 13.4.33
export const TCTL_EN = 1 << 1;
export const TCTL_PSP = 1 << 3;

/** RDTR bit 31: flush partial descriptor block (fire the RX timers now). */
export const RDTR_FPD = 0x80000000;

// RAH 13.5.3
export const RAH_AV = 0x80000000;

// ---- Descriptors (SDM 3.2.3, 3.3.3, 3.3.5-3.3.7) ----
export const DESC_SIZE = 16;
// Receive descriptor status (3.2.3.1)
export const RXD_STAT_DD = 1 << 0;
export const RXD_STAT_EOP = 1 << 1;
export const RXD_STAT_IXSM = 1 << 2; // ignore checksum indication
export const RXD_STAT_VP = 1 << 3; // 802.1Q packet, tag stripped into `special`
// Transmit descriptor lower dword (length, CSO or DTYP, command byte)
export const TXD_CMD_EOP = 1 << 24;
export const TXD_CMD_IFCS = 1 << 25;
export const TXD_CMD_IC = 1 << 26; // legacy: insert checksum
export const TXD_CMD_TSE = 1 << 26; // data/context: TCP segmentation enable
export const TXD_CMD_TCP = 1 << 24; // context: TCP (else UDP)
export const TXD_CMD_IP = 1 << 25; // context: IPv4 (else IPv6)
export const TXD_CMD_RS = 1 << 27; // report status
export const TXD_CMD_RPS = 1 << 28; // report packet sent (82544 only; treated as RS, as QEMU)
export const TXD_CMD_DEXT = 1 << 29; // extended (context or data) descriptor
export const TXD_CMD_VLE = 1 << 30; // VLAN insertion
export const TXD_CMD_IDE = 1 << 31 >>> 0; // interrupt delay enable
export const TXD_DTYP_D = 1 << 20; // data descriptor (with DEXT)
// Transmit descriptor upper dword
export const TXD_STAT_DD = 1 << 0;
export const TXD_STAT_EC = 1 << 1;
export const TXD_STAT_LC = 1 << 2;
export const TXD_STAT_TU = 1 << 3;
export const TXD_POPTS_IXSM = 1 << 0; // data descriptor POPTS (upper bits 15:8)
export const TXD_POPTS_TXSM = 1 << 1;

/** Delay timer units: RDTR/RADV/TIDV/TADV count 1.024 us, ITR 256 ns (13.4.18, 13.4.30). */
export const DELAY_UNIT_MS = 0.001024;
export const ITR_UNIT_MS = 0.000256;
/** Link comes up this long after autonegotiation restarts (as QEMU's autoneg_timer). */
export const AUTONEG_MS = 500;
