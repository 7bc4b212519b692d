/**
 * A QMP client that can pass a file descriptor with a command, the way
 * libxl sends `add-fd` (SCM_RIGHTS on the command's first byte, the rest
 * with plain writes: libxl_qmp.c qmp_ev_callback_writable). Built on the
 * unixsock addon; replies are read by polling (tests only).
 */
import { loadUnixSock } from '../../src/qmp/unixsock.ts';

export interface FdQmpClient {
  /** Send `execute` (with `fd` attached to its first byte, if given) and resolve with the reply of that id. */
  cmd(execute: string, args?: object, fd?: number): Promise<Record<string, any>>;
  close(): void;
}

export async function connectFdQmp(path: string, timeoutMs = 10_000): Promise<FdQmpClient> {
  const us = loadUnixSock();
  const fd = us.connect(path);
  const buf = Buffer.alloc(64 * 1024);
  let text = '';
  let id = 0;
  const nextLine = async (): Promise<Record<string, any>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = text.indexOf('\r\n');
      if (nl >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 2);
        return JSON.parse(line);
      }
      const fds: number[] = [];
      const n = us.recv(fd, buf, fds);
      if (n === 0) throw new Error('QMP connection closed');
      if (n > 0) {
        text += buf.toString('utf8', 0, n);
        continue;
      }
      if (Date.now() > deadline) throw new Error('QMP reply timed out');
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const send = (line: string, pass?: number): void => {
    const b = Buffer.from(line + '\r\n');
    let off = 0;
    if (pass !== undefined) {
      if (us.send(fd, b, 0, 1, [pass]) !== 1) throw new Error('sendmsg with a descriptor failed');
      off = 1;
    }
    while (off < b.length) {
      const n = us.send(fd, b, off, b.length - off);
      if (n > 0) off += n;
    }
  };
  await nextLine(); // greeting
  const client: FdQmpClient = {
    async cmd(execute, args, pass) {
      const myId = ++id;
      send(JSON.stringify(args === undefined ? { execute, id: myId } : { execute, arguments: args, id: myId }), pass);
      for (;;) {
        const m = await nextLine();
        if (m.id === myId) return m;
        if (!('event' in m)) throw new Error(`reply with another id: ${JSON.stringify(m)}`);
      }
    },
    close: () => us.close(fd),
  };
  await client.cmd('qmp_capabilities');
  return client;
}
