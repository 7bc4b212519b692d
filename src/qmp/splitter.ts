/**
 * QMP input -> messages, split where QEMU's monitor splits them: a message
 * ends where its outermost `{ }` (or `[ ]`) closes, with or without a line
 * end after it (QEMU counts braces and brackets over the lexer's tokens and
 * hands the tokens on when both counts are back at zero:
 * qobject/json-streamer.c json_message_process_token). libxl ends each
 * command with "\r\n", but libxenstat (xentop's VBD columns) writes
 * `{ "execute": "qmp_capabilities" }` and its queries with no line end at
 * all, and waits 10 ms for the answer (docs/xen-contract.md §11c): a server
 * that waits for "\n" never answers it.
 *
 * Outside a message (nesting 0) anything else is junk up to the next line
 * end or the next `{`/`[`, and goes out as one message of its own, so that
 * the session answers it with one parse error (a stray `}` or `]` at once,
 * as QEMU's count going negative does). A line end inside a string ends the
 * message too (a control character in a string is a lexical error to
 * QEMU): the client gets a parse error, not a connection stuck mid-string.
 * Every scan is of new characters only: state carries across chunks.
 */

/** Nesting QEMU accepts in one message (json-streamer.c MAX_NESTING). */
export const MAX_NESTING = 1024;

const LBRACE = 0x7b, RBRACE = 0x7d, LBRACKET = 0x5b, RBRACKET = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c, NL = 0x0a, SP = 0x20, TAB = 0x09, CR = 0x0d;

export type SplitResult = 'ok' | 'too-long' | 'too-deep';

export class JsonSplitter {
  /** The message being read (from its first character), unscanned text after it. */
  private text = '';
  private scanned = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxMessage: number) {}

  /**
   * Take a chunk; complete messages (and junk, as its own message) are
   * appended to `out` (the caller bounds their length). 'too-long': the
   * unfinished message so far exceeds maxMessage; 'too-deep': nesting beyond
   * MAX_NESTING. After either the caller drops the connection.
   */
  push(chunk: string, out: string[]): SplitResult {
    const t = this.text + chunk;
    let start = 0;
    for (let i = this.scanned; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (this.depth === 0) {
        if (c === LBRACE || c === LBRACKET) {
          if (i > start) out.push(t.slice(start, i));
          start = i;
          this.depth = 1;
        } else if (c === RBRACE || c === RBRACKET) {
          out.push(t.slice(start, i + 1));
          start = i + 1;
        } else if (c === NL) {
          if (i > start) out.push(t.slice(start, i));
          start = i + 1;
        } else if (i === start && (c === SP || c === TAB || c === CR)) {
          start = i + 1; // between messages
        }
      } else if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
        else if (c === NL) {
          out.push(t.slice(start, i));
          start = i + 1;
          this.depth = 0;
          this.inString = false;
        }
      } else if (c === QUOTE) {
        this.inString = true;
      } else if (c === LBRACE || c === LBRACKET) {
        if (++this.depth > MAX_NESTING) return 'too-deep';
      } else if (c === RBRACE || c === RBRACKET) {
        if (--this.depth === 0) {
          out.push(t.slice(start, i + 1));
          start = i + 1;
        }
      }
    }
    this.text = start === 0 ? t : t.slice(start);
    this.scanned = this.text.length;
    return this.text.length > this.maxMessage ? 'too-long' : 'ok';
  }
}
