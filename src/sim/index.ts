/**
 * The simulated hypervisor (tests, benchmarks, the demo): a Host in process
 * plus a qtest-like driver. Everything the rest of the tree needs from
 * src/sim is exported here.
 *
 *   const sim = createSimHost({ ramBytes: 16 << 20, vcpus: 2 });
 *   const board = simBoard(sim);              // Board on the sim's memory/irqs/routing
 *   board.pio.add('uart', 0x3f8, 8, uart);    // devices as usual
 *   const server = new IoreqServer(sim, board);
 *   server.start();                           // watch + enable
 *   sim.outb(0x3f8, 0x41);                    // encoded like Xen, answered before it returns
 *   sim.vcpu = 1; sim.inb(0x3fd);             // or sim.withVcpu(1, () => ...)
 *   sim.insw(0x1f0, 0x10000, 256);            // REP INSW into guest RAM (sim.ram / memread)
 *   sim.bufferedWrite(0xa0000, 2, 0x0741);    // stdvga-style buffered write
 *   await sim.waitFor(() => sim.isaIrqLevel(14) === 1); // async completions, bounded ticks
 *
 * A DM that breaks the ioreq protocol makes the driver throw DmProtocolError.
 */
export {
  SimHost,
  SimRestriction,
  createSimHost,
  simBoard,
  simClock,
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
export { SimVram, SimVramProvider } from './vram.ts';
