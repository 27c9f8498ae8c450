/** Crash-explorer workloads on the name space and metadata: names, xattrs, the journal. */
import { XATTR_CREATE, XATTR_REPLACE } from '../fs/index.js';
import type { Workload } from './driver.js';

export const names: Workload = {
  name: 'names',
  about: 'create, mkdir, symlinks (inline and in a block), fifo, hard links, rename (over files, directories, across directories), unlink, rmdir, a directory growing past one block',
  poolMiB: 56,
  run(d) {
    d.mkdir('/a');
    d.mkdir('/a/b');
    d.create('/a/f1');
    d.write('/a/f1', 0, 3000);
    d.create('/a/b/f2', 0o600);
    d.write('/a/b/f2', 0, 9000);
    d.symlink('/a/s-short', '../a/f1');
    d.symlink('/a/s-long', `/${'x'.repeat(200)}/target`);
    d.mkfifo('/a/pipe');
    d.fsync('/a/f1');
    d.link('/a/f1', '/a/b/f1-link');
    d.rename('/a/b/f2', '/a/f2');
    d.create('/a/f3');
    d.write('/a/f3', 0, 5000);
    d.rename('/a/f3', '/a/f1'); // over a file with a second name
    d.fsync('/a/f2');
    d.mkdir('/c');
    d.mkdir('/a/empty');
    d.rename('/c', '/a/empty'); // a directory over an empty one
    d.rename('/a/b', '/a/empty/b'); // a directory across directories
    d.unlink('/a/empty/b/f1-link');
    d.chmod('/a/f2', 0o640);
    d.sync();
    d.mkdir('/big');
    for (let i = 0; i < 40; i++) d.create(`/big/${'n'.repeat(90)}-${i}`);
    d.fsync('/big');
    for (let i = 0; i < 40; i += 3) d.unlink(`/big/${'n'.repeat(90)}-${i}`);
    d.rename('/big/' + 'n'.repeat(90) + '-1', '/a/moved');
    d.rmdir('/a/empty/b');
    d.unlink('/a/s-long');
    d.fsync('/a');
    d.rename('/a/moved', '/a/f2'); // over a file, no fsync after
    d.unlink('/a/pipe');
    d.mkdir('/a/newdir');
  },
};

export const xattr: Workload = {
  name: 'xattr',
  about: 'user.* and trusted.* attributes on files and directories: set, replace, remove, a near-full attribute block, removing the last one (block freed)',
  poolMiB: 56,
  run(d) {
    d.create('/x');
    d.mkdir('/dx');
    d.setxattr('/x', 'user.a', 10);
    d.setxattr('/dx', 'user.dir', 100);
    d.fsync('/x');
    d.setxattr('/x', 'user.a', 300, XATTR_REPLACE);
    d.setxattr('/x', 'trusted.t', 50, XATTR_CREATE);
    d.setxattr('/x', 'user.big', 3500);
    d.fsync('/x');
    d.removexattr('/x', 'user.big');
    d.removexattr('/x', 'user.a');
    d.setxattr('/dx', 'user.dir', 2000);
    d.sync();
    d.removexattr('/x', 'trusted.t'); // the last one: the block is freed
    d.create('/y');
    d.setxattr('/y', 'user.y', 700);
    d.unlink('/x');
    d.fsync('/y');
    d.setxattr('/y', 'user.z', 1);
    d.rmdir('/dx');
  },
};

export const journal: Workload = {
  name: 'journal',
  about: 'a small pool (free space low: commits and journal resets before operations), many operations per transaction, the journal filling and restarting, a clean unmount at the end',
  poolMiB: 32,
  run(d) {
    for (let round = 0; round < 4; round++) {
      d.mkdir(`/r${round}`);
      for (let i = 0; i < 30; i++) {
        const p = `/r${round}/f${i}`;
        d.create(p);
        d.write(p, 0, 2000 + ((i * 997) % 9000));
      }
      for (let i = 0; i < 30; i += 4) d.unlink(`/r${round}/f${i}`);
      if (round % 2 === 1) d.sync();
    }
    d.rename('/r1', '/r0/r1');
    d.close();
  },
};
