/** A level-triggered interrupt line as a device drives it. */
export interface IrqLine {
  set(level: boolean): void;
}

/** A line that goes nowhere (a device whose interrupt is not wired). */
export const NO_IRQ: IrqLine = { set() {} };
