/** Serves QMP on fd 3 (an inherited listening socket, as libxl's fd=N), prints "ready"; exits 0 on quit. */
import { pino } from 'pino';
import { QmpCore, QmpServer } from '../../src/qmp/index.ts';

const core = new QmpCore({
  runState: () => 'prelaunch',
  cont() {},
  stop() {},
  quit: () => process.exit(0),
  chardevs: () => [],
  vcpus: 1,
  name: null,
  setGlobalDirtyLog() {},
});
await new QmpServer(core, pino({ level: 'silent' }), 'libxl-cmd').listenFd(3);
process.stdout.write('ready\n');
