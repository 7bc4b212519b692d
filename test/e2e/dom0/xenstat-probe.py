#!/usr/bin/env python3
"""libxenstat's QMP exchange, timed (e2e xlops scenario, issue #14).

Usage: xenstat-probe.py SOCKET [QUIET_MS]

Does what xentop's library does with a dom0 device model's
/var/run/xen/qmp-libxenstat-<domid> (Xen 4.17 tools/libs/stat/xenstat_qmp.c,
read_attributes_qdisk_dom, qmp_query, qmp_read; docs/xen-contract.md §11c):
connect, write `{ "execute": "qmp_capabilities" }` at once (no line end, the
greeting not read), read until QUIET_MS (libxenstat: 10) pass with no data;
then `{ "execute": "query-blockstats" }` read the same way, the whole buffer
parsed as one JSON document; then one `query-block` per device for its
`inserted.file`. Every chunk is timestamped. Afterwards it waits a while
longer for bytes that came too late for libxenstat.

Prints one line of keys (times in ms):
  xenstat_first_ms  connect -> first byte (the greeting)
  xenstat_caps_ms   connect -> end of the capabilities reply, wherever it landed
  xenstat_stats_ms  query-blockstats written -> end of its reply
  xenstat_parse     ok: the blockstats buffer is one JSON document whose
                    "return" has a device with rd_bytes > 0; zero: one such
                    document, all rd_bytes 0; bad: anything else; none: a read
                    came back empty (libxenstat gives up)
  xenstat_block     ok: each device's query-block buffer is one document
                    giving it an inserted.file; bad; n/a (no stats to match)
("none" for a time that never came), then the buffers and the late bytes.
"""
import json
import select
import socket
import sys
import time

LATE_S = 2.0


def ms(t):
    return "none" if t is None else "%.1f" % (t * 1000)


class Probe:
    def __init__(self, path, quiet_ms):
        self.quiet_ms = quiet_ms
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.t0 = time.monotonic()
        self.poll = select.poll()
        self.poll.register(self.sock, select.POLLIN)
        self.chunks = []  # (seconds since connect, bytes): every byte received, in order
        self.closed = False

    def now(self):
        return time.monotonic() - self.t0

    def read_until_quiet(self, quiet_ms):
        """libxenstat's qmp_read: poll(quiet_ms) and read until a poll times out."""
        buf = b""
        while not self.closed and self.poll.poll(quiet_ms):
            d = self.sock.recv(1024)
            if not d:
                self.closed = True
                break
            self.chunks.append((self.now(), d))
            buf += d
        return buf

    def query(self, cmd):
        """libxenstat's qmp_query: the command (no line end), then one read. Returns (sent_at, buffer)."""
        sent = self.now()
        self.sock.sendall(('{ "execute": "%s" }' % cmd).encode())
        return sent, self.read_until_quiet(self.quiet_ms)

    def messages(self):
        """Every message received (one per line, as QEMU and stubdm send them) with the time its end arrived."""
        out, cur = [], b""
        for t, d in self.chunks:
            for piece in d.splitlines(keepends=True):
                cur += piece
                if cur.endswith(b"\n"):
                    if cur.strip():
                        out.append((t, cur.strip()))
                    cur = b""
        return out


def one_doc(buf):
    """yajl_tree_parse of the whole buffer: one JSON document (whitespace around it allowed), or None."""
    try:
        return json.loads(buf.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def replies(msgs):
    """The messages that are replies (not the greeting, not events), in order."""
    out = []
    for t, m in msgs:
        try:
            o = json.loads(m)
        except ValueError:
            continue
        if isinstance(o, dict) and ("return" in o or "error" in o):
            out.append((t, o))
    return out


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    path = sys.argv[1]
    quiet_ms = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    try:
        p = Probe(path, quiet_ms)
    except OSError as e:
        print("xenstat_first_ms=none xenstat_caps_ms=none xenstat_stats_ms=none xenstat_parse=none xenstat_block=n/a connect=%s"
              % str(e.strerror or e).replace(" ", "-"))
        return 1
    _, caps_buf = p.query("qmp_capabilities")
    stats_sent, stats_buf = p.query("query-blockstats")
    parse, block, doc = "none", "n/a", None
    if caps_buf and stats_buf:
        doc = one_doc(stats_buf)
        rets = doc.get("return") if isinstance(doc, dict) else None
        if not isinstance(rets, list):
            parse = "bad"
        else:
            stats = [e.get("stats") for e in rets if isinstance(e, dict)]
            rd = [s.get("rd_bytes") for s in stats if isinstance(s, dict)]
            parse = "ok" if any(isinstance(v, int) and v > 0 for v in rd) else "zero"
    block_bufs = []
    if parse in ("ok", "zero"):
        block = "ok"
        for e in doc["return"]:
            dev = e.get("device") if isinstance(e, dict) else None
            if not isinstance(dev, str):
                continue
            _, b = p.query("query-block")
            block_bufs.append((dev, b))
            bd = one_doc(b) if b else None
            infos = bd.get("return") if isinstance(bd, dict) else None
            found = [i for i in infos if isinstance(i, dict) and i.get("device") == dev] if isinstance(infos, list) else []
            f = found[0].get("inserted", {}).get("file") if found and isinstance(found[0].get("inserted"), dict) else None
            if not isinstance(f, str):
                block = "bad"
    end = p.now()
    late = p.read_until_quiet(int(LATE_S * 1000))
    msgs = p.messages()
    reps = replies(msgs)
    first = p.chunks[0][0] if p.chunks else None
    caps_t = reps[0][0] if reps and reps[0][1] == {"return": {}} else None
    stats_t = reps[1][0] - stats_sent if len(reps) > 1 else None
    print("xenstat_first_ms=%s xenstat_caps_ms=%s xenstat_stats_ms=%s xenstat_parse=%s xenstat_block=%s"
          % (ms(first), ms(caps_t), ms(stats_t), parse, block))
    print("quiet_ms=%d exchange_ms=%s" % (quiet_ms, ms(end)))
    print("caps buffer: %r" % caps_buf)
    print("blockstats buffer: %r" % stats_buf)
    for dev, b in block_bufs:
        print("query-block buffer (%s): %r" % (dev, b))
    if late:
        print("late bytes (after libxenstat stopped reading): %r" % late)
    for t, m in msgs:
        print("  %8s ms  %s" % (ms(t), m[:200].decode("utf-8", "replace")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
