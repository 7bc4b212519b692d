/** Standard VGA with Bochs VBE (QEMU's `-device VGA`): see pci.ts and vga.ts. */
export * from './pci.ts';
export { VgaCore, vramBytes, VRAM_PAGE_SHIFT } from './vga.ts';
export { buildEdid } from './edid.ts';
export { VgaRenderer, c6to8, type Rect, type DisplayMode, type RenderWork } from './render.ts';
export { encodePng, encodePpm } from './image.ts';
export { AdaptiveRefresh, DisplayHub, REFRESH_BASE_MS, REFRESH_INC_MS, REFRESH_MAX_MS, type DisplaySink, type RefreshTimer, type RefreshTimers } from './display.ts';
