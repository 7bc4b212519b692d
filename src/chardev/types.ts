/**
 * A character backend: where a serial port's bytes go and come from.
 *
 * Output is never blocking: backends batch bytes and write them
 * asynchronously; flush() resolves once everything written so far is on the
 * backend (fsync for files). Input is pushed to the receiver on the Node
 * event loop, never from inside an ioreq.
 */
export type Receiver = (data: Uint8Array) => void;

export interface CharBackend {
  /** Chardev id (`serial0`, or the id of a -chardev). */
  readonly id: string;
  /** QEMU's `filename` in query-chardev: `file:/path`, `pty:/dev/pts/3`, `/dev/hvc3`, `stdio`, `null`. */
  readonly filename: string;
  /** One byte the guest transmitted. Hot path: no allocation, never throws. */
  writeByte(b: number): void;
  /** Bytes from the host side (tests, demo). */
  write(data: Uint8Array): void;
  /** Where received bytes go (the UART); null detaches. */
  setReceiver(r: Receiver | null): void;
  /** Resolves once every byte written so far is on the backend. */
  flush(): Promise<void>;
  /** Flush, then release the fd/stream. Idempotent. */
  close(): Promise<void>;
}
