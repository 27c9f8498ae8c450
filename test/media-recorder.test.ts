// The recorder sees every store (with a private copy of the bytes stored) and
// every barrier, exactly and in order; nothing when unset.
import t from 'tap';
import path from 'node:path';
import { Pool, WINDOW_SIZE } from '../src/media/pool.js';
import { MemoryRecorder, type MediaEvent } from '../src/media/recorder.js';

function plain(events: MediaEvent[]): unknown[] {
  return events.map((e) => (e.kind === 'write' ? { kind: e.kind, offset: e.offset, bytes: [...e.bytes] } : { ...e }));
}

t.test('exact events in order', (t) => {
  const dir = t.testdir();
  const pool = Pool.create(path.join(dir, 'a.pool'), 1 << 20);
  pool.write(0, Buffer.from([9, 9, 9, 9])); // before the recorder: not seen
  const rec = new MemoryRecorder();
  pool.setRecorder(rec);

  const src = Buffer.from([1, 2, 3]);
  pool.write(100, src);
  src[0] = 42; // the recorded bytes are a copy, not the caller's buffer
  pool.write(200, new Uint8Array([4, 5]));
  pool.persist(100, 3);
  pool.fill(300, 3, 7);
  pool.fill(400, 2);
  pool.copyWithin(101, 100, 3); // overlapping move: recorded as the bytes now at dst
  pool.read(0, 4096); // reads are not events
  pool.persistAll();
  pool.write(50, Buffer.alloc(0));

  t.same(plain(rec.events), [
    { kind: 'write', offset: 100, bytes: [1, 2, 3] },
    { kind: 'write', offset: 200, bytes: [4, 5] },
    { kind: 'persist', offset: 100, length: 3 },
    { kind: 'write', offset: 300, bytes: [7, 7, 7] },
    { kind: 'write', offset: 400, bytes: [0, 0] },
    { kind: 'write', offset: 101, bytes: [1, 2, 3] },
    { kind: 'persist', offset: 0, length: 1 << 20 },
    { kind: 'write', offset: 50, bytes: [] },
  ]);
  t.ok(rec.events.every((e) => e.kind !== 'write' || Buffer.isBuffer(e.bytes)));
  t.same([...pool.read(100, 4)], [1, 1, 2, 3], 'and the pool agrees');

  // replaying the writes on zeros rebuilds the recorded region exactly
  const image = Buffer.alloc(1 << 20);
  image.set([9, 9, 9, 9], 0);
  for (const e of rec.events) if (e.kind === 'write') e.bytes.copy(image, e.offset);
  t.ok(pool.read(0, 1 << 20).equals(image), 'replay matches the pool');

  rec.clear();
  t.equal(rec.events.length, 0);
  pool.setRecorder(null);
  pool.write(0, Buffer.from([1]));
  pool.persist(0, 1);
  t.equal(rec.events.length, 0, 'nothing recorded once unset');
  pool.close();
  t.end();
});

t.test('a store split across windows is still one event', (t) => {
  const dir = t.testdir();
  const pool = Pool.create(path.join(dir, 'b.pool'), WINDOW_SIZE + (1 << 20));
  const rec = new MemoryRecorder();
  pool.setRecorder(rec);
  const data = Buffer.from('across the window line');
  pool.write(WINDOW_SIZE - 5, data);
  pool.copyWithin(WINDOW_SIZE + 100, WINDOW_SIZE - 5, data.length);
  t.same(plain(rec.events), [
    { kind: 'write', offset: WINDOW_SIZE - 5, bytes: [...data] },
    { kind: 'write', offset: WINDOW_SIZE + 100, bytes: [...data] },
  ]);
  pool.close();
  t.end();
});

t.test('a default recorder is given to every pool opened or created after it is set', (t) => {
  const dir = t.testdir();
  const rec = new MemoryRecorder();
  Pool.setDefaultRecorder(rec);
  let created: Pool;
  let opened: Pool;
  try {
    created = Pool.create(path.join(dir, 'c.pool'), 1 << 20);
    created.write(10, Buffer.from([1]));
    created.close();
    opened = Pool.open(path.join(dir, 'c.pool'));
  } finally {
    Pool.setDefaultRecorder(null);
  }
  opened.persist(0, 4096);
  const later = Pool.open(path.join(dir, 'c.pool'), { lock: 'none' });
  later.write(20, Buffer.from([2]));
  t.same(plain(rec.events), [
    { kind: 'write', offset: 10, bytes: [1] },
    { kind: 'persist', offset: 0, length: 4096 },
  ], 'stores and barriers of both pools; none of a pool opened after it was unset');
  later.close();
  opened.close();
  t.end();
});
