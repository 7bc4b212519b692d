/** Standard VGA with Bochs VBE (QEMU's `-device VGA`): see pci.ts and vga.ts. */
export * from './pci.ts';
export { VgaCore, vramBytes, VRAM_PAGE_SHIFT } from './vga.ts';
export { buildEdid } from './edid.ts';
export { VgaRenderer, c6to8, type Rect, type DisplayMode } from './render.ts';
export { encodePng, encodePpm } from './image.ts';
export { DisplayHub, type DisplaySink } from './display.ts';
