/** A parsed chardev description (from -serial or -chardev), before anything is opened. */
export type ChardevSpec =
  | { backend: 'file'; path: string; append: boolean }
  | { backend: 'pty' }
  | { backend: 'stdio' }
  | { backend: 'null' }
  /** A host device path opened read+write (`-serial /dev/hvc3`, `-chardev serial,path=`). */
  | { backend: 'tty'; path: string }
  | { backend: 'ringbuf'; size: number }
  /** Unix socket: a path to listen on, or an inherited listening fd (`fd=N`). */
  | { backend: 'socket'; path: string | null; fd: number | null; server: boolean; wait: boolean };
