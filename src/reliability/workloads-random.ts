/** The seeded random crash-explorer workload. */
import { KiB, type Workload } from './driver.js';
import { parentOf } from './model.js';

export const random: Workload = {
  name: 'random',
  about: 'a seeded random mix of every operation above',
  poolMiB: 56,
  run(d) {
    d.mkdir('/d');
    for (let i = 0; i < 120; i++) {
      const r = d.random();
      const file = d.pick('file');
      const dir = d.pick('dir') || '/d';
      const fresh = `${dir}/n${i}`;
      if (r < 0.14 || !file) {
        d.create(fresh);
      } else if (r < 0.30) {
        d.write(file, Math.floor(d.random() * 64 * KiB), 1 + Math.floor(d.random() * 32 * KiB));
      } else if (r < 0.38) {
        d.append(file, 1 + Math.floor(d.random() * 16 * KiB));
      } else if (r < 0.44) {
        d.truncate(file, Math.floor(d.random() * 80 * KiB));
      } else if (r < 0.50) {
        d.mkdir(fresh);
      } else if (r < 0.56) {
        const other = d.pick('file', [file]);
        if (other && parentOf(other) !== file) d.rename(file, other);
        else d.rename(file, fresh);
      } else if (r < 0.61) {
        d.link(file, fresh);
      } else if (r < 0.67) {
        d.unlink(file);
      } else if (r < 0.71) {
        const empty = d.model.paths().filter((p) => p !== '/' && p !== '/d' && d.model.node(p).kind === 'dir' && d.model.children(p).length === 0);
        if (empty[0]) d.rmdir(empty[0]);
        else d.mkdir(fresh);
      } else if (r < 0.76) {
        d.setxattr(file, `user.k${i % 3}`, 1 + Math.floor(d.random() * 900));
      } else if (r < 0.79) {
        d.symlink(fresh, `target-${i}`.repeat(1 + Math.floor(d.random() * 30)));
      } else if (r < 0.90) {
        d.fsync(file);
      } else if (r < 0.93) {
        d.sync();
      } else if (r < 0.96) {
        d.knob('pageTablesOn', d.fsys.knobs().pageTablesOn ? 0 : 1);
      } else {
        d.chmod(file, 0o600 + Math.floor(d.random() * 0o100));
      }
    }
  },
};
