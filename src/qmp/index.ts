export { QmpCore, QmpSession, QEMU_VERSION, type ChardevInfo, type QmpMachine, type RunState } from './core.ts';
export { MAX_LINE, MAX_OUTPUT, QmpServer, QmpServerError, serveQmpStream } from './server.ts';
