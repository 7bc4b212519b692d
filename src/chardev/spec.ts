/** A parsed chardev description (from -serial or -chardev), before anything is opened. */
export type ChardevSpec =
  | { backend: 'file'; path: string; append: boolean }
  | { backend: 'pty' }
  | { backend: 'stdio' }
  | { backend: 'null' }
  /** A host device path opened read+write (`-serial /dev/hvc3`, `-chardev serial,path=`). */
  | { backend: 'tty'; path: string }
  | { backend: 'ringbuf'; size: number }
  /** QEMU's pipe: `PATH.in` (input) and `PATH.out` (output), or `PATH` both ways when those two are not there. */
  | { backend: 'pipe'; path: string }
  | SocketSpec;

/**
 * A stream socket: unix (`path`, or an inherited listening `fd`) or TCP
 * (`host` + `port`), listening (`server`) or connecting. Only unix servers
 * can carry a QMP monitor; any of them can carry a serial port.
 */
export interface SocketSpec {
  backend: 'socket';
  path: string | null;
  fd: number | null;
  /** TCP: the address to listen on or connect to ('' listens on every address), or null for unix. */
  host: string | null;
  port: number | null;
  server: boolean;
  /** Server: block start-up until the first client connects (QEMU's default). */
  wait: boolean;
  /** TCP_NODELAY on every connection. */
  nodelay: boolean;
  /** Client: seconds between connection attempts after a failure or a hang-up; 0 = connect once, at start. */
  reconnect: number;
}
