/**
 * ATA registers, bits and opcodes. Section numbers are ATA8-ACS (commands),
 * ATA/ATAPI-6 / ATA8-APT (register block), SFF-8038i "Bus Master IDE" (BMI-1)
 * and MMC-3/SPC-3 (packet commands).
 */

// Command block registers, offsets from 0x1F0 / 0x170 (ATA8-APT 5.2).
export const REG_DATA = 0; // 16/32-bit PIO data port
export const REG_ERROR = 1; // read: Error (ATA8-ACS 6.3)
export const REG_FEATURE = 1; // write: Features
export const REG_NSECTOR = 2; // Sector Count; ATAPI: Interrupt Reason
export const REG_LBA_LOW = 3; // Sector Number / LBA 7:0
export const REG_LBA_MID = 4; // Cylinder Low / LBA 15:8; ATAPI: byte count 7:0
export const REG_LBA_HIGH = 5; // Cylinder High / LBA 23:16; ATAPI: byte count 15:8
export const REG_DEVICE = 6; // Device/Head
export const REG_STATUS = 7; // read: Status (ATA8-ACS 6.2); reading it clears INTRQ
export const REG_COMMAND = 7; // write: Command
// Control block (0x3F6 / 0x376), one register.
export const CTRL_ALT_STATUS = 0; // read: Alternate Status (does not clear INTRQ)
export const CTRL_DEVICE_CONTROL = 0; // write: Device Control

// Status register bits (ATA8-ACS 6.2).
export const ST_ERR = 0x01; // error (ATAPI: CHECK)
export const ST_DRQ = 0x08; // data request
export const ST_DSC = 0x10; // seek complete (obsolete, still reported)
export const ST_DF = 0x20; // device fault
export const ST_DRDY = 0x40; // device ready
export const ST_BSY = 0x80; // busy

// Error register bits (ATA8-ACS 6.3).
export const ER_AMNF = 0x01; // after EXECUTE DEVICE DIAGNOSTIC: 0x01 = device 0 passed
export const ER_ABRT = 0x04; // command aborted
export const ER_IDNF = 0x10; // ID (address) not found
export const ER_UNC = 0x40; // uncorrectable data error
export const ER_ICRC = 0x80;

// Device register bits (ATA8-ACS 6.2.x "Device").
export const DEV_OBS = 0xa0; // bits 7 and 5, always read as one (QEMU ATA_DEV_ALWAYS_ON)
export const DEV_SEL = 0x10; // DEV: device 1 selected
export const DEV_LBA = 0x40; // LBA addressing

// Device Control bits (ATA8-APT 5.2.5).
export const DC_NIEN = 0x02; // interrupts disabled
export const DC_SRST = 0x04; // software reset
export const DC_HOB = 0x80; // high order byte: register reads return the previous (LBA48) value

// ATAPI interrupt reason, in the Sector Count register (ATA8-ACS 7.x PACKET, table "Interrupt Reason").
export const IR_COD = 0x01; // command (1) or data (0)
export const IR_IO = 0x02; // to host (1)
export const IR_REL = 0x04;

// Command opcodes (ATA8-ACS chapter 7).
export const CMD_NOP = 0x00; // 7.17 (not supported: ABRT)
export const CMD_DEVICE_RESET = 0x08; // 7.10, ATAPI only
export const CMD_RECALIBRATE = 0x10; // obsolete, accepted
export const CMD_READ_SECTORS = 0x20; // 7.36
export const CMD_READ_SECTORS_NORETRY = 0x21; // obsolete alias
export const CMD_READ_SECTORS_EXT = 0x24; // 7.37
export const CMD_READ_DMA_EXT = 0x25; // 7.26
export const CMD_READ_MULTIPLE_EXT = 0x29; // 7.31
export const CMD_WRITE_SECTORS = 0x30; // 7.67
export const CMD_WRITE_SECTORS_NORETRY = 0x31;
export const CMD_WRITE_SECTORS_EXT = 0x34; // 7.68
export const CMD_WRITE_DMA_EXT = 0x35; // 7.59
export const CMD_WRITE_MULTIPLE_EXT = 0x39; // 7.64
export const CMD_READ_VERIFY = 0x40; // 7.39
export const CMD_READ_VERIFY_NORETRY = 0x41;
export const CMD_READ_VERIFY_EXT = 0x42; // 7.40
export const CMD_SEEK = 0x70; // obsolete, accepted
export const CMD_EXECUTE_DEVICE_DIAGNOSTIC = 0x90; // 7.11
export const CMD_INITIALIZE_DEVICE_PARAMETERS = 0x91; // ATA-5 8.16 (obsolete in ATA8)
export const CMD_PACKET = 0xa0; // 7.18
export const CMD_IDENTIFY_PACKET_DEVICE = 0xa1; // 7.17
export const CMD_READ_MULTIPLE = 0xc4; // 7.30
export const CMD_WRITE_MULTIPLE = 0xc5; // 7.63
export const CMD_SET_MULTIPLE_MODE = 0xc6; // 7.46
export const CMD_READ_DMA = 0xc8; // 7.25
export const CMD_READ_DMA_NORETRY = 0xc9;
export const CMD_WRITE_DMA = 0xca; // 7.58
export const CMD_WRITE_DMA_NORETRY = 0xcb;
export const CMD_STANDBY_IMMEDIATE = 0xe0; // 7.54
export const CMD_IDLE_IMMEDIATE = 0xe1; // 7.15
export const CMD_STANDBY = 0xe2; // 7.53
export const CMD_IDLE = 0xe3; // 7.14
export const CMD_CHECK_POWER_MODE = 0xe5; // 7.6
export const CMD_SLEEP = 0xe6; // 7.50
export const CMD_FLUSH_CACHE = 0xe7; // 7.12
export const CMD_FLUSH_CACHE_EXT = 0xea; // 7.13
export const CMD_IDENTIFY_DEVICE = 0xec; // 7.16
export const CMD_SET_FEATURES = 0xef; // 7.48

// SET FEATURES subcommands (ATA8-ACS 7.48, table "SET FEATURES").
export const SF_ENABLE_WCACHE = 0x02;
export const SF_SET_TRANSFER_MODE = 0x03;
export const SF_DISABLE_RLA = 0x55; // read look-ahead off (accepted)
export const SF_DISABLE_REVERT = 0x66;
export const SF_DISABLE_WCACHE = 0x82;
export const SF_ENABLE_RLA = 0xaa;
export const SF_ENABLE_REVERT = 0xcc;

// Bus-master IDE registers, per channel (SFF-8038i / BMI-1 section 2).
export const BM_COMMAND = 0;
export const BM_STATUS = 2;
export const BM_PRDT = 4; // 32-bit, dword aligned
export const BMC_START = 0x01; // start/stop bus master
export const BMC_READ = 0x08; // 1 = bus master writes memory (device -> memory)
export const BMS_ACTIVE = 0x01;
export const BMS_ERROR = 0x02; // write 1 to clear
export const BMS_INTR = 0x04; // write 1 to clear
export const BMS_DMA0 = 0x20; // drive 0 DMA capable (r/w)
export const BMS_DMA1 = 0x40; // drive 1 DMA capable (r/w)
export const BMS_SIMPLEX = 0x80; // read only, 0 on PIIX
export const PRD_EOT = 0x80000000;
/** PRD walk bound: one page of 8-byte entries (QEMU; CVE-2014-9718). */
export const PRD_MAX_ENTRIES = 512;

// Signatures after reset / diagnostics (ATA8-ACS table "Device signatures").
export const SIG_ATAPI_MID = 0x14;
export const SIG_ATAPI_HIGH = 0xeb;
