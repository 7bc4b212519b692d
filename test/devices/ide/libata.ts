/**
 * A model of what Linux's ata_piix (libata's BMDMA helpers, drivers/ata/
 * libata-sff.c, 6.x) does at the ports for one READ/WRITE DMA EXT, and of
 * SeaBIOS's READ SECTORS, for the disk trace's tests: every access is an
 * ioreq through the simulator, and the virtual clock moves EXIT_MS before
 * each one (the guest's exit), so the trace's phases and counts can be
 * checked against numbers known in advance.
 *
 * One DMA command, in libata's order:
 *   issue (ata_bmdma_qc_issue):
 *     ata_dev_select(wait): ata_wait_idle (Status), Device, ata_sff_pause (Alternate Status), ata_wait_idle (Status)
 *     ata_sff_tf_load: the five HOB bytes, the five low bytes, Device, ata_wait_idle (Status)
 *     ata_bmdma_setup: PRD table address, BM command read, BM command written (direction, Start clear),
 *                      ata_sff_exec_command: Command, ata_sff_pause (Alternate Status)
 *     ata_bmdma_start: BM command read, written with Start
 *   interrupt (ata_bmdma_port_intr):
 *     ata_bmdma_status (BM status), ata_bmdma_stop: BM command read and written without Start,
 *     ata_sff_dma_pause (Alternate Status); __ata_sff_port_intr: ata_sff_irq_status (Alternate
 *     Status, then Status: INTRQ falls), ata_bmdma_irq_clear (BM status read and written back)
 * 23 ioreqs to issue, 8 in the interrupt: 31, of which 20 come before the Command write.
 */
import { simClock, type SimHost } from '../../../src/sim/index.ts';

export const BMIBA = 0xc040;
export const IDE_DEVFN = (1 << 3) | 1;
/** Ioreqs per DMA command (see the file comment), before its Command write, from it to Start, after the interrupt. */
export const DMA_IOREQS = 31;
export const ISSUE_BEFORE_CMD = 20;
export const CMD_TO_START = 3;
export const IRQ_ACCESSES = 8;

export interface ModelTimes {
  /** Virtual ms of one exit (before each access). */
  exitMs: number;
  /** Virtual ms from INTRQ up to the guest's handler (interrupt delivery). */
  irqMs: number;
  /** Virtual ms the guest spends between one request's completion and the next one's issue. */
  thinkMs: number;
}

export class LibataModel {
  ioreqs = 0;
  constructor(
    private readonly sim: SimHost,
    private readonly t: ModelTimes,
  ) {}

  private exit(): void {
    simClock(this.sim).advance(this.t.exitMs);
    this.ioreqs++;
  }
  outb(port: number, v: number): void {
    this.exit();
    this.sim.outb(port, v);
  }
  outl(port: number, v: number): void {
    this.exit();
    this.sim.outl(port, v);
  }
  inb(port: number): number {
    this.exit();
    return this.sim.inb(port);
  }
  insw(port: number, gpa: number, count: number): void {
    this.exit();
    this.sim.insw(port, gpa, count);
  }

  /** ata_bmdma_qc_issue of READ/WRITE DMA EXT of `sectors` at `lba` (device 0), PRD table at `prdt`. */
  issueDma(lba: number, sectors: number, write: boolean, prdt: number): void {
    // ata_dev_select(ap, 0, wait=1)
    this.inb(0x1f7);
    this.outb(0x1f6, 0xa0);
    this.inb(0x3f6);
    this.inb(0x1f7);
    // ata_sff_tf_load, LBA48
    this.outb(0x1f1, 0);
    this.outb(0x1f2, (sectors >> 8) & 0xff);
    this.outb(0x1f3, (lba >>> 24) & 0xff);
    this.outb(0x1f4, 0);
    this.outb(0x1f5, 0);
    this.outb(0x1f1, 0);
    this.outb(0x1f2, sectors & 0xff);
    this.outb(0x1f3, lba & 0xff);
    this.outb(0x1f4, (lba >> 8) & 0xff);
    this.outb(0x1f5, (lba >> 16) & 0xff);
    this.outb(0x1f6, 0x40);
    this.inb(0x1f7);
    // ata_bmdma_setup
    this.outl(BMIBA + 4, prdt);
    const c = this.inb(BMIBA) & ~0x09;
    this.outb(BMIBA, write ? c : c | 0x08);
    this.outb(0x1f7, write ? 0x35 : 0x25);
    this.inb(0x3f6);
    // ata_bmdma_start
    this.outb(BMIBA, this.inb(BMIBA) | 0x01);
  }

  /** The interrupt handler after a DMA command (ata_bmdma_port_intr); returns the Status it read. */
  dmaInterrupt(): number {
    simClock(this.sim).advance(this.t.irqMs);
    this.inb(BMIBA + 2);
    this.outb(BMIBA, this.inb(BMIBA) & ~0x01);
    this.inb(0x3f6);
    this.inb(0x3f6);
    const st = this.inb(0x1f7);
    this.outb(BMIBA + 2, this.inb(BMIBA + 2));
    return st;
  }

  /** The guest's own work between requests (block layer, dd). */
  think(): void {
    simClock(this.sim).advance(this.t.thinkMs);
  }

  /**
   * SeaBIOS-style READ SECTORS of `sectors` at `lba` (LBA28, device 0), one
   * DRQ block per sector: the task file and the command, then per sector a
   * Status read and a REP INSW of 256 words into `gpa`. `ready()` waits for
   * the drive (the backend's read-ahead may complete on a later turn).
   */
  async readSectors(lba: number, sectors: number, gpa: number, ready: () => Promise<void>): Promise<void> {
    this.outb(0x1f2, sectors);
    this.outb(0x1f3, lba & 0xff);
    this.outb(0x1f4, (lba >> 8) & 0xff);
    this.outb(0x1f5, (lba >> 16) & 0xff);
    this.outb(0x1f6, 0xe0 | ((lba >> 24) & 0x0f));
    this.outb(0x1f7, 0x20);
    for (let i = 0; i < sectors; i++) {
      await ready();
      this.inb(0x1f7);
      this.insw(0x1f0, gpa + i * 512, 256);
    }
  }
}

/**
 * Ioreqs from a READ SECTORS' Command write to the next command's (what the
 * trace counts for it): the Command write, a Status read and a REP INSW per
 * sector, then the next command's five task-file writes.
 */
export const pioIoreqs = (n: number): number => 1 + 2 * n + 5;
