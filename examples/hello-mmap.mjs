// The README's example: node examples/hello-mmap.mjs /mnt/nvmm1/data
// (page tables on: echo 1 > /mnt/nvmm1/.daxvm/page_tables_on)
import { writeFileSync } from 'node:fs';
import { mmap, MAP_DAXVM } from 'daxvm';

const file = process.argv[2];
if (!file) {
  console.error('usage: node examples/hello-mmap.mjs FILE\n' +
    '  FILE: a new file on a daxvm mount, e.g. /mnt/nvmm1/data (npm start mounts one there);\n' +
    '  turn page tables on first: echo 1 > /mnt/nvmm1/.daxvm/page_tables_on');
  process.exit(2);
}
writeFileSync(file, Buffer.alloc(8 << 20));              // 8 MiB, 2 MiB-aligned in the pool
const m = mmap(file, { prot: 'rw', flags: MAP_DAXVM });
console.log(m.mode, m.runs, m.tracking);                  // attached 1 pages
m.buffer.write('hello from the pool', 4096);
console.log(m.dirtyPages, m.msync());                     // 1 1: exactly the page written
m.unmap();                                                // m.buffer.length is 0 now
