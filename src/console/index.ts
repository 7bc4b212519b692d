/**
 * The stub domain's own console: with `vnc=1` libxl gives the stub domain
 * a vfb and a vkb whose backend is dom0's QEMU (its VNC server is what
 * `xl vncviewer` reaches). stubdm draws the guest's screen into the vfb
 * (/dev/fb0) and reads the vkb (/dev/input/event*) into the i8042. Started
 * only when the framebuffer exists: without `vnc=1` there is none.
 */
import fs from 'node:fs';
import type { HostInputSink } from '../core/console.ts';
import type { Logger } from '../core/log.ts';
import type { DisplayHub } from '../devices/vga/index.ts';
import { EvdevInput, type EvdevIo } from './evdev.ts';
import { FbdevError, openFbdev } from './fbdev.ts';
import { FramebufferConsole } from './fbsink.ts';

export { FbdevError, openFbdev, readFbGeometry } from './fbdev.ts';
export { FramebufferConsole } from './fbsink.ts';
export { EvdevDecoder, EvdevInput, keycodeToScancodes, INPUT_EVENT_SIZE, type EvdevIo } from './evdev.ts';

export interface StubConsolePaths {
  /** The framebuffer device (/dev/fb0). */
  fbdev: string;
  /** Its sysfs directory (/sys/class/graphics/fb0). */
  sysfs: string;
  /** Where the event devices are (/dev/input). */
  inputDir: string;
}

export const STUB_CONSOLE_PATHS: StubConsolePaths = { fbdev: '/dev/fb0', sysfs: '/sys/class/graphics/fb0', inputDir: '/dev/input' };

export interface StubConsole {
  readonly fb: FramebufferConsole;
  readonly input: EvdevInput | null;
  close(): void;
}

/**
 * Start drawing into the framebuffer and reading the input devices; null
 * when there is no framebuffer (no `vnc=1`). A framebuffer that exists but
 * cannot be used is logged and skipped: the guest runs without a screen
 * rather than not at all.
 */
export function startStubConsole(
  display: DisplayHub,
  sink: HostInputSink,
  io: EvdevIo | null,
  log: Logger,
  paths: StubConsolePaths = STUB_CONSOLE_PATHS,
  manual = false,
): StubConsole | null {
  if (!fs.existsSync(paths.fbdev)) return null;
  let fb;
  try {
    fb = openFbdev(paths.fbdev, paths.sysfs, log);
  } catch (e) {
    if (e instanceof FbdevError) {
      log.error(e.message + ': the guest screen is not shown');
      return null;
    }
    throw e;
  }
  const con = new FramebufferConsole(display, fb, { log, manual });
  con.start();
  // Input makes the guest answer on screen (an echo, a pointer): the framebuffer refreshes fast again.
  const poking: HostInputSink = {
    key: (b) => {
      sink.key(b);
      con.poke();
    },
    pointer: (dx, dy, dz, buttons) => {
      sink.pointer(dx, dy, dz, buttons);
      con.poke();
    },
  };
  let input: EvdevInput | null = null;
  if (io !== null) {
    input = new EvdevInput(io, poking, log);
    const opened = input.openAll(paths.inputDir);
    log.info({ devices: opened }, 'reading input devices into the keyboard and mouse');
  } else {
    log.warn('no fdwatch addon: input devices are not read');
  }
  return {
    fb: con,
    input,
    close() {
      con.stop();
      input?.close();
      fb.close();
    },
  };
}
