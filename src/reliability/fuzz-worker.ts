/**
 * A fuzz worker process (forked by fuzz.ts): keeps its own working image of
 * each base, and checks the cases it is sent, one at a time.
 *
 *   parent → {type: 'init', bases, seed, scratch, slot}   worker → {type: 'ready'}
 *   parent → {type: 'case', index}                        worker → {type: 'result', outcome}
 *   parent → {type: 'exit'}
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkCase } from './fuzz-check.js';
import { WorkImage } from './image.js';
import { makeCase } from './damage.js';
import { inventory, type Inventory } from './structures.js';

let bases: Buffer[] = [];
let inventories: Inventory[] = [];
let images: WorkImage[] = [];
let seed = 0;

process.on('message', (m: { type: string; bases?: string[]; seed?: number; scratch?: string; slot?: number; index?: number }) => {
  try {
    if (m.type === 'init') {
      seed = m.seed!;
      bases = m.bases!.map((p) => fs.readFileSync(p));
      inventories = m.bases!.map((p) => inventory(p));
      images = bases.map((b, i) => new WorkImage(path.join(m.scratch!, `work-${m.slot}-${i}.pool`), Buffer.from(b)));
      process.send!({ type: 'ready' });
    } else if (m.type === 'case') {
      const c = makeCase(seed, m.index!, bases, inventories);
      const image = images[c.base];
      if (!image) throw new RangeError(`case ${c.index}: base ${c.base} of ${images.length}`);
      const outcome = checkCase(image, c);
      process.send!({ type: 'result', outcome });
    } else if (m.type === 'exit') {
      for (const img of images) {
        img.close();
        fs.rmSync(img.path, { force: true });
      }
      process.disconnect();
    }
  } catch (err) {
    process.send!({ type: 'fatal', error: (err as Error)?.stack ?? String(err) });
  }
});
