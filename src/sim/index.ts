/**
 * The simulated hypervisor (tests, benchmarks, the demo): a Host in process
 * plus a qtest-like driver. Everything the rest of the tree needs from
 * src/sim is exported here.
 */
export {
  SimHost,
  createSimHost,
  simBoard,
  DmProtocolError,
  type SimHostOptions,
  type RepOptions,
  type RawIoreq,
  type BufferedWriteOptions,
} from './host.ts';
export { SimChannel, SIM_BUF_PORT, simVcpuPort, simRemotePort } from './channel.ts';
export { SimMemory } from './memory.ts';
export { SimInterrupts, SimPower, SimRouting, SimStore, type Msi, type ShutdownRequest, type IoRange } from './platform.ts';
export { waitFor, WaitTimeoutError, type WaitOptions } from './wait.ts';
