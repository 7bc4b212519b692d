/**
 * src/qmp/splitter.ts: QMP input split into messages where QEMU's monitor
 * splits it (the outermost braces close), line ends or not, in any chunking.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonSplitter, MAX_NESTING } from '../../src/qmp/splitter.ts';
import { prng } from '../helpers/prng.ts';

function split(chunks: string[], max = 1 << 16): { msgs: string[]; results: string[] } {
  const s = new JsonSplitter(max);
  const msgs: string[] = [];
  const results = chunks.map((c) => s.push(c, msgs));
  return { msgs, results };
}

test('messages end where their braces close: no line end needed (libxenstat), CRLF or LF (libxl) too', () => {
  assert.deepEqual(split(['{ "execute": "qmp_capabilities" }']).msgs, ['{ "execute": "qmp_capabilities" }']);
  assert.deepEqual(split(['{"execute":"a"}{"execute":"b"}\r\n{"execute":"c"}\n  {"execute":"d"}']).msgs, [
    '{"execute":"a"}',
    '{"execute":"b"}',
    '{"execute":"c"}',
    '{"execute":"d"}',
  ]);
  // Nothing before the object closes, and the object may span lines.
  assert.deepEqual(split(['{"execute":', '\r\n "x"']).msgs, []);
  assert.deepEqual(split(['{"execute":\n', '"x"}']).msgs, ['{"execute":\n"x"}']);
});

test('braces, brackets and quotes inside strings do not count; escapes are honoured', () => {
  const m = String.raw`{"execute":"human-monitor-command","arguments":{"command-line":"}]{[ \"}\\"},"id":[1,{"a":"\\\""}]}`;
  assert.doesNotThrow(() => JSON.parse(m));
  assert.deepEqual(split([m + m]).msgs, [m, m]);
});

test('any chunking of a stream gives the same messages', () => {
  const msgs = [
    '{"execute":"qmp_capabilities"}',
    '{ "execute": "query-blockstats" }',
    String.raw`{"execute":"x","arguments":{"s":"a\"}b\\"}}`,
    '[1,[2,{"k":[]}]]',
  ];
  const stream = msgs.join('') + '\r\n' + msgs.join('\r\n');
  const want = [...msgs, ...msgs];
  const rng = prng(14);
  for (let round = 0; round < 200; round++) {
    const chunks: string[] = [];
    for (let i = 0; i < stream.length; ) {
      const n = 1 + Math.floor(rng() * 12);
      chunks.push(stream.slice(i, i + n));
      i += n;
    }
    assert.deepEqual(split(chunks).msgs, want, `chunks ${JSON.stringify(chunks)}`);
  }
});

test('junk: one message per line (one parse error, not one per byte), a stray } at once, a line end in a string ends it', () => {
  assert.deepEqual(split(['\u0001\u0002 not json\r\n']).msgs, ['\u0001\u0002 not json\r']);
  assert.deepEqual(split(['junk{"execute":"a"}']).msgs, ['junk', '{"execute":"a"}']);
  assert.deepEqual(split(['}{"execute":"a"}']).msgs, ['}', '{"execute":"a"}']);
  assert.deepEqual(split(['{"execute":"qmp_cap\n{"execute":"a"}']).msgs, ['{"execute":"qmp_cap', '{"execute":"a"}']);
  // Whitespace alone between messages is no message.
  assert.deepEqual(split(['\r\n \t\r\n']).msgs, []);
});

test('bounds: an unfinished message over the limit, nesting beyond MAX_NESTING', () => {
  assert.deepEqual(split(['{"a":"' + 'x'.repeat(100)], 64).results, ['too-long']);
  assert.deepEqual(split(['x'.repeat(65)], 64).results, ['too-long']);
  assert.deepEqual(split(['['.repeat(MAX_NESTING)]).results, ['ok']);
  assert.deepEqual(split(['['.repeat(MAX_NESTING + 1)]).results, ['too-deep']);
});

test('hostile input: any bytes, any chunking, the same messages as in one piece; never more text out than in', () => {
  const rng = prng(0x5eed);
  const alphabet = '{}[]"\\\n\r a:,';
  for (let round = 0; round < 300; round++) {
    let input = '';
    for (let n = Math.floor(rng() * 80); n > 0; n--) input += alphabet[Math.floor(rng() * alphabet.length)];
    const whole = split([input]);
    const chunks: string[] = [];
    for (let i = 0; i < input.length; ) {
      const n = 1 + Math.floor(rng() * 6);
      chunks.push(input.slice(i, i + n));
      i += n;
    }
    const parts = split(chunks);
    assert.deepEqual(parts.msgs, whole.msgs, JSON.stringify(input));
    assert.ok(whole.msgs.join('').length <= input.length);
  }
});
