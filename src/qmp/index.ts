export { QmpCore, QmpSession, QEMU_VERSION, type ChardevInfo, type QmpMachine, type RunState } from './core.ts';
export { MAX_LINE, QmpServer, QmpServerError, serveQmpStream } from './server.ts';
