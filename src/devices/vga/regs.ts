/**
 * Standard VGA and Bochs DISPI register numbers. Sources (public): IBM
 * "VGA and XGA Technical Reference Manual" (1992) chapter 2 "Video
 * Subsystem", and the FreeVGA register pages (osdever.net/FreeVGA/vga/
 * portidx.htm, seqreg.htm, graphreg.htm, attrreg.htm, crtcreg.htm,
 * colorreg.htm, extreg.htm); the Bochs DISPI interface as QEMU 7.2 and
 * SeaBIOS vgasrc/bochsvga.h define it (facts: docs/vga.md).
 */

// ---- Ports (FreeVGA portidx.htm). Offsets are from VGA_PORT_BASE.
export const VGA_PORT_BASE = 0x3b0;
export const VGA_PORT_LEN = 0x30;
export const PORT_CRT_IM = 0x3b4; // CRTC index, monochrome decode
export const PORT_CRT_DM = 0x3b5; // CRTC data, monochrome decode
export const PORT_IS1_RM = 0x3ba; // input status 1 (read) / feature control (write), monochrome
export const PORT_ATT_W = 0x3c0; // attribute index/data flip-flop (write), index (read)
export const PORT_ATT_R = 0x3c1; // attribute data read
export const PORT_MIS_W = 0x3c2; // misc output (write) / input status 0 (read)
export const PORT_SEQ_I = 0x3c4;
export const PORT_SEQ_D = 0x3c5;
export const PORT_PEL_MSK = 0x3c6; // DAC pixel mask: not modelled (reads 0, as QEMU)
export const PORT_PEL_IR = 0x3c7; // DAC read index (write) / DAC state (read)
export const PORT_PEL_IW = 0x3c8; // DAC write index
export const PORT_PEL_D = 0x3c9; // DAC data, three reads/writes per entry
export const PORT_FTC_R = 0x3ca; // feature control read
export const PORT_MIS_R = 0x3cc; // misc output read
export const PORT_GFX_I = 0x3ce;
export const PORT_GFX_D = 0x3cf;
export const PORT_CRT_IC = 0x3d4; // CRTC index, colour decode
export const PORT_CRT_DC = 0x3d5;
export const PORT_IS1_RC = 0x3da;

/** Misc output bit 0 (extreg.htm "I/OAS"): 1 = CRTC at 0x3Dx, 0 = at 0x3Bx. */
export const MIS_COLOR = 0x01;
/** Input status 1 (extreg.htm): bit 3 vertical retrace, bit 0 display disabled. */
export const ST01_V_RETRACE = 0x08;
export const ST01_DISP_ENABLE = 0x01;

// ---- Sequencer (seqreg.htm), indices 0-4 (5-7 kept as storage, masked to 0 but SR7).
export const SR_RESET = 0x00;
export const SR_CLOCK_MODE = 0x01; // bit0 8-dot chars, bit3 dot clock /2
export const SR_PLANE_WRITE = 0x02; // map mask
export const SR_CHARACTER_MAP = 0x03; // font select A/B
export const SR_MEMORY_MODE = 0x04; // bit2 odd/even disable, bit3 chain 4
export const SR01_CHAR_CLK_8DOTS = 0x01;
export const SR02_ALL_PLANES = 0x0f;
export const SR04_CHN_4M = 0x08;
/** Bits each sequencer register keeps (the rest read back 0); the same masks as QEMU 7.2 sr_mask. */
export const SR_MASK: readonly number[] = [0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0xff];

// ---- Graphics controller (graphreg.htm).
export const GR_SR_VALUE = 0x00; // set/reset
export const GR_SR_ENABLE = 0x01; // enable set/reset
export const GR_COMPARE_VALUE = 0x02; // colour compare
export const GR_DATA_ROTATE = 0x03; // bits 0-2 rotate, 3-4 logical op
export const GR_PLANE_READ = 0x04; // read map select
export const GR_MODE = 0x05; // bits 0-1 write mode, 3 read mode, 4 odd/even (host), 5-6 shift
export const GR_MISC = 0x06; // bit0 graphics, bits 2-3 memory map
export const GR_COMPARE_MASK = 0x07; // colour don't care
export const GR_BIT_MASK = 0x08;
export const GR06_GRAPHICS_MODE = 0x01;
export const GR05_ODD_EVEN = 0x10;
export const GR05_READ_MODE1 = 0x08;
export const GR_MASK: readonly number[] = [0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0];

// ---- Attribute controller (attrreg.htm).
export const AR_PALETTE0 = 0x00; // 16 palette registers, 6 bits each
export const AR_MODE = 0x10; // bit0 graphics, bit3 blink, bit6 8-bit colour, bit7 P54S
export const AR_OVERSCAN = 0x11;
export const AR_PLANE_ENABLE = 0x12;
export const AR_PEL = 0x13; // horizontal pel panning
export const AR_COLOR_PAGE = 0x14;
export const AR_COUNT = 0x15;
/** Index register bit 5 (PAS): 1 = the palette is in use by the display. */
export const AR_INDEX_MASK = 0x3f;
/** What each attribute register keeps (QEMU 7.2 vga_ioport_write). */
export const AR_MASK: readonly number[] = [
  ...new Array<number>(16).fill(0x3f),
  0xef, // mode: bit 4 reserved
  0xff, // overscan
  0x3f, // colour plane enable
  0x0f, // pel panning
  0x0f, // colour select
];

// ---- CRT controller (crtcreg.htm): 0x00-0x18 defined; QEMU keeps all 256 indices as storage.
export const CR_H_TOTAL = 0x00;
export const CR_H_DISP = 0x01;
export const CR_H_SYNC_START = 0x04;
export const CR_H_SYNC_END = 0x05;
export const CR_V_TOTAL = 0x06;
export const CR_OVERFLOW = 0x07;
export const CR_PRESET_ROW = 0x08;
export const CR_MAX_SCAN = 0x09;
export const CR_CURSOR_START = 0x0a;
export const CR_CURSOR_END = 0x0b;
export const CR_START_HI = 0x0c;
export const CR_START_LO = 0x0d;
export const CR_CURSOR_HI = 0x0e;
export const CR_CURSOR_LO = 0x0f;
export const CR_V_SYNC_START = 0x10;
export const CR_V_SYNC_END = 0x11; // bit 7 protects CR0-CR7
export const CR_V_DISP_END = 0x12;
export const CR_OFFSET = 0x13;
export const CR_UNDERLINE = 0x14;
export const CR_MODE = 0x17;
export const CR_LINE_COMPARE = 0x18;
export const CR11_LOCK_CR0_CR7 = 0x80;

// ---- Bochs DISPI (SeaBIOS vgasrc/bochsvga.h; QEMU include/hw/display/bochs-vbe.h).
export const DISPI_PORT_BASE = 0x1ce; // 0x1ce index, 0x1cf and 0x1d0 data
/** 0x1CE-0x1D1: a word at 0x1D0 is a data access too (QEMU's 2-byte portio entries). */
export const DISPI_PORT_LEN = 4;
export const DISPI_ID = 0x0;
export const DISPI_XRES = 0x1;
export const DISPI_YRES = 0x2;
export const DISPI_BPP = 0x3;
export const DISPI_ENABLE = 0x4;
export const DISPI_BANK = 0x5;
export const DISPI_VIRT_WIDTH = 0x6;
export const DISPI_VIRT_HEIGHT = 0x7;
export const DISPI_X_OFFSET = 0x8;
export const DISPI_Y_OFFSET = 0x9;
/** Read-only: VRAM size in 64 KiB units; also the count of stored registers. */
export const DISPI_VIDEO_MEMORY_64K = 0xa;
export const DISPI_NB = 0xa;
export const DISPI_ID0 = 0xb0c0;
export const DISPI_ID5 = 0xb0c5;
export const DISPI_ENABLED = 0x01;
export const DISPI_GETCAPS = 0x02;
export const DISPI_8BIT_DAC = 0x20;
export const DISPI_LFB_ENABLED = 0x40;
export const DISPI_NOCLEARMEM = 0x80;
export const DISPI_MAX_XRES = 16000;
export const DISPI_MAX_YRES = 12000;
export const DISPI_MAX_BPP = 32;

// ---- The legacy memory window (IBM TRM "Memory Map"; graphreg.htm GR6 bits 2-3).
export const VGA_WINDOW_BASE = 0xa0000;
export const VGA_WINDOW_LEN = 0x20000;

// ---- The PCI function's MMIO BAR (QEMU hw/display/vga-pci.c layout, which bochs-drm and SeaBIOS use).
export const MMIO_SIZE = 0x1000;
export const MMIO_EDID = 0x000;
export const MMIO_EDID_LEN = 0x400;
export const MMIO_VGA_PORTS = 0x400; // 0x3c0-0x3df at 0x400-0x41f
export const MMIO_VGA_PORTS_LEN = 0x20;
export const MMIO_DISPI = 0x500; // DISPI register i at 0x500 + 2*i
export const MMIO_DISPI_LEN = 0x16;
export const MMIO_QEXT = 0x600; // QEMU extended registers: size, framebuffer byte order
export const MMIO_QEXT_LEN = 8;
export const QEXT_REG_SIZE = 0x0;
export const QEXT_REG_BYTEORDER = 0x4;
export const QEXT_LITTLE_ENDIAN = 0x1e1e1e1e;
export const QEXT_BIG_ENDIAN = 0xbebebebe;
