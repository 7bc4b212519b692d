/**
 * The host's own screen and input devices, as the device model uses them
 * when it has some: in a stub domain with `vnc=1`, libxl gives the stub a
 * vfb and a vkb (xen-fbfront's /dev/fb0, xen-kbdfront's /dev/input/event*)
 * whose backend is dom0's QEMU, and what we draw and read there is what
 * `xl vncviewer` shows and sends. src/console implements these over Linux
 * fbdev/evdev (a regular file and a FIFO stand in for them in tests).
 */

/** What the framebuffer is: pixels, line length in bytes, bits per pixel. */
export interface FramebufferGeometry {
  readonly width: number;
  readonly height: number;
  /** Bytes from one line to the next (>= width * bpp / 8). */
  readonly stride: number;
  /** 16 (RGB565) or 32 (XRGB8888): fbdev's usual true-colour layouts. */
  readonly bpp: 16 | 32;
}

/** A host framebuffer: geometry and positioned writes. */
export interface HostFramebuffer {
  readonly geometry: FramebufferGeometry;
  /** Write `len` bytes of `data` at byte `offset`; false if the write failed (the implementation logs it, rate-limited). */
  write(data: Uint8Array, len: number, offset: number): boolean;
  close(): void;
}

/** Where host input goes: the guest's keyboard and mouse. */
export interface HostInputSink {
  /** Scan-code bytes (set 1, as the guest reads them at 0x60). */
  key(bytes: Uint8Array): void;
  /** A relative move: x right, y down, wheel detents (positive = towards the user), buttons held (PS/2 order: left, right, middle, side, extra). */
  pointer(dx: number, dy: number, dz: number, buttons: number): void;
}
