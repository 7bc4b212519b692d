import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPattern, comparePictures, parsePpm, patternPixel, PpmError, type FbPattern, type Picture } from './screen.ts';
import { encodePpm } from '../../src/devices/vga/image.ts';

function pic(width: number, height: number, fill = 0): Picture {
  return { width, height, rgb: new Uint8Array(width * height * 3).fill(fill) };
}

test('parsePpm reads what our screendump writes, and says how many bytes it took', () => {
  const fb = new Uint32Array(3 * 2);
  fb[1 * 3 + 1] = 0x112233; // pixel (1,1), 0x00RRGGBB
  const ppm = Buffer.concat([encodePpm(fb, 3, 2), Buffer.from('next')]);
  const r = parsePpm(ppm);
  assert.ok(r);
  assert.equal(r.pic.width, 3);
  assert.equal(r.pic.height, 2);
  assert.deepEqual([...r.pic.rgb.subarray((1 * 3 + 1) * 3, (1 * 3 + 1) * 3 + 3)], [0x11, 0x22, 0x33]);
  assert.equal(ppm.subarray(r.bytes).toString(), 'next');
});

test('parsePpm takes header comments and any whitespace, as ppm(5) allows', () => {
  const body = Buffer.from([1, 2, 3, 4, 5, 6]);
  const r = parsePpm(Buffer.concat([Buffer.from('P6 # made by hand\n2\t1\r\n255\n'), body]));
  assert.ok(r);
  assert.deepEqual([...r.pic.rgb], [...body]);
});

test('parsePpm: an unfinished prefix is null (the stub domain console is still writing)', () => {
  const full = Buffer.concat([Buffer.from('P6\n2 2\n255\n'), Buffer.alloc(12, 7)]);
  for (const n of [0, 1, 5, 11, 15, 22]) assert.equal(parsePpm(full.subarray(0, n)), null, `prefix ${n}`);
  assert.ok(parsePpm(full));
});

test('parsePpm refuses what is not an 8-bit P6 screen', () => {
  assert.throws(() => parsePpm(Buffer.from('P5\n1 1\n255\n\0')), PpmError);
  assert.throws(() => parsePpm(Buffer.from('P6\n1 1\n65535\n\0\0\0\0\0\0')), /maxval 65535/);
  assert.throws(() => parsePpm(Buffer.from('P6\n0 1\n255\n')), /not a screen/);
  assert.throws(() => parsePpm(Buffer.from('P6\n99999 1\n255\n')), /not a screen/);
  assert.throws(() => parsePpm(Buffer.from('P6\n1x1\n255\n')), /bad PPM header byte 0x78/);
  assert.throws(() => parsePpm(Buffer.from('P6\n1234567 1\n255\n')), /too long/);
});

test('comparePictures counts differing pixels and the text cells they fall in', () => {
  const a = pic(720, 400);
  const b = pic(720, 400);
  assert.deepEqual(comparePictures(a, b), { matchPercent: 100, diffPixels: 0, diffCells: 0, cells: [] });
  // Two pixels in cell (0,0), one in cell (79,24): the last cell of an 80x25 screen.
  b.rgb[0] = 1;
  b.rgb[(15 * 720 + 8) * 3 + 2] = 1;
  b.rgb[(399 * 720 + 719) * 3 + 1] = 1;
  const c = comparePictures(a, b);
  assert.equal(c.diffPixels, 3);
  assert.equal(c.diffCells, 2);
  assert.deepEqual(c.cells, ['0,0', '79,24']);
  assert.equal(c.matchPercent, (100 * (720 * 400 - 3)) / (720 * 400));
});

test('comparePictures: different sizes match nothing', () => {
  const c = comparePictures(pic(720, 400), pic(640, 480));
  assert.equal(c.matchPercent, 0);
  assert.equal(c.diffCells, -1);
});

const TEXT = Buffer.from('E2E-VGA-pattern-0123456789x\n');

test('patternPixel follows the byte stream across lines of any stride', () => {
  const p: FbPattern = { width: 3, height: 2, stride: 16, text: TEXT };
  // pixel (0,0) = bytes 0..3 "E2E-": blue 'E', green '2', red 'E'
  assert.deepEqual(patternPixel(p, 0, 0), [0x45, 0x32, 0x45]);
  // pixel (1,1) starts at byte 16 + 4 = 20: "4567" -> red '6', green '5', blue '4'
  assert.deepEqual(patternPixel(p, 1, 1), [0x36, 0x35, 0x34]);
  // byte 28 wraps to the start of the text
  assert.deepEqual(patternPixel({ ...p, stride: 28 }, 0, 1), [0x45, 0x32, 0x45]);
});

test('checkPattern finds a wrong pixel and a wrong stride', () => {
  const p: FbPattern = { width: 8, height: 4, stride: 32, text: TEXT };
  const good = pic(8, 4);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 8; x++) good.rgb.set(patternPixel(p, x, y), (y * 8 + x) * 3);
  assert.deepEqual(checkPattern(good, p), { bad: 0, first: '' });
  const one = { ...good, rgb: good.rgb.slice() };
  one.rgb[(2 * 8 + 5) * 3 + 1] ^= 0xff;
  assert.deepEqual(checkPattern(one, p), { bad: 1, first: '5,2' });
  // The same bytes shown with a 36-byte line (a renderer using the wrong line length) are wrong from row 1 on.
  const shifted = checkPattern(good, { ...p, stride: 36 });
  assert.ok(shifted.bad > 0);
  assert.match(shifted.first, /^\d+,[1-3]$/);
  assert.equal(checkPattern(pic(4, 4), p).first, 'size 4x4');
});
