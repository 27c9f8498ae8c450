// Pure parts of the CLI and the mount plumbing: sizes, mount options, the
// libfuse option string, mountinfo, runtime file names, the readiness
// protocol, the mount helper's baking.
import t from 'tap';
import type * as Tap from 'tap';
import { parseSize, formatBytes } from '../src/core/output.js';
import { CliError } from '../src/core/errors.js';
import { bakeHelper } from '../src/cli/cmd-install-helper.js';
import { parseMountOptions, fuseOptionString, escapeOptionValue, MountOptionError } from '../src/fuse/options.js';
import { parseMountinfo, topMountAt, daxvmMountAt, unescapeMountField } from '../src/core/mountinfo.js';
import { escapeMountpoint } from '../src/fuse/runtime.js';
import { decodeMessages, encodeMessage } from '../src/fuse/protocol.js';
import { failureReason } from '../src/core/temp-mount.js';

function throwsA(t: Tap.Test, fn: () => unknown, cls: new (...a: never[]) => Error, msg: string): Error | undefined {
  try {
    fn();
  } catch (e) {
    t.ok(e instanceof cls, `${msg}: throws ${cls.name} (got ${(e as Error)?.name}: ${(e as Error)?.message})`);
    return e as Error;
  }
  t.fail(`${msg}: did not throw`);
  return undefined;
}

t.test('parseSize: binary units, plain bytes; junk is a usage error', async (t) => {
  const G = 1024 ** 3;
  t.equal(parseSize('4G'), 4 * G);
  t.equal(parseSize('4g'), 4 * G);
  t.equal(parseSize('4GB'), 4 * G);
  t.equal(parseSize('4GiB'), 4 * G);
  t.equal(parseSize('512M'), 512 * 1024 ** 2);
  t.equal(parseSize('1T'), 1024 ** 4);
  t.equal(parseSize('1.5G'), 1.5 * G);
  t.equal(parseSize('64k'), 65536);
  t.equal(parseSize('4096'), 4096);
  for (const bad of ['banana', '', 'G', '-4G', '0', '4X', '4 G B']) {
    const e = throwsA(t, () => parseSize(bad), CliError, `rejects '${bad}'`);
    t.equal((e as CliError | undefined)?.exitCode, 2, 'a usage error');
  }
  t.equal(formatBytes(4 * G), '4 GiB');
  t.equal(formatBytes(64 * 1024 ** 2), '64 MiB');
});

t.test('mount options', async (t) => {
  const o = parseMountOptions(['ro,allow_other', 'commit=5', 'noexec,defaults,nofail,_netdev,x-systemd.automount,rw']);
  t.equal(o.readOnly, false, 'rw after ro wins');
  t.equal(o.allowOther, true);
  t.equal(o.commitIntervalMs, 5000);
  t.same(o.kernelFlags, ['noexec']);
  t.same(o.ignored, ['defaults', 'nofail', '_netdev', 'x-systemd.automount']);
  t.equal(parseMountOptions(['ro']).readOnly, true);
  t.equal(parseMountOptions(['commit=0']).commitIntervalMs, undefined, 'commit=0: the default');
  t.equal(parseMountOptions(['commit=0.5']).commitIntervalMs, 500);
  t.same(parseMountOptions(['exec,noexec']).kernelFlags, ['noexec'], 'last of a pair wins');
  t.same(parseMountOptions(['noexec,exec']).kernelFlags, ['exec']);
  t.same(parseMountOptions(['sync,async,noatime,dirsync']).kernelFlags, ['async', 'noatime', 'dirsync']);
  t.same(parseMountOptions(['', ',,default_permissions,']).kernelFlags, []);
  t.equal(parseMountOptions([]).noOpen, false, 'OPEN and RELEASE are asked by default');
  t.equal(parseMountOptions(['no_open']).noOpen, true);
  t.equal(parseMountOptions(['no_open', 'open_requests']).noOpen, false, 'open_requests undoes an earlier no_open');
  t.notMatch(fuseOptionString('/p', parseMountOptions(['no_open'])), /open/, 'ours, not libfuse\'s');
  for (const bad of [['bogus'], ['commit'], ['commit=x'], ['allow_other,allow_root'], ['fsname=x'], ['use_ino']]) {
    throwsA(t, () => parseMountOptions(bad), MountOptionError, `rejects ${bad.join(',')}`);
  }
});

t.test('libfuse option string: fixed options, escaped fsname, length limit', async (t) => {
  t.equal(escapeOptionValue('/a,b\\c'), '/a\\,b\\\\c');
  const s = fuseOptionString('/p/a,b.pool', parseMountOptions(['ro,allow_other,nosuid']));
  t.equal(s, 'fsname=/p/a\\,b.pool,subtype=daxvm,default_permissions,ro,allow_other,nosuid');
  throwsA(t, () => fuseOptionString('/' + 'x'.repeat(4100), parseMountOptions([])), MountOptionError, 'too long');
});

t.test('mountinfo', async (t) => {
  const text = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '42 22 0:39 / /mnt/nvmm1 rw,nosuid,nodev,relatime shared:5 - fuse.daxvm /tmp/a,b\\040c.pool rw,user_id=0,group_id=0,default_permissions',
    '50 22 0:40 / /mnt/other\\040dir rw - tmpfs tmpfs rw',
    '51 50 0:41 / /mnt/other\\040dir rw - fuse.daxvm /p.pool rw',
    '',
  ].join('\n');
  const m = parseMountinfo(text);
  t.equal(m.length, 4);
  t.match(m[1], { id: 42, parentId: 22, mountpoint: '/mnt/nvmm1', fstype: 'fuse.daxvm', source: '/tmp/a,b c.pool' });
  t.equal(topMountAt('/mnt/other dir', m)?.id, 51, 'the last mount stacked at a path is the visible one');
  t.equal(daxvmMountAt('/mnt/other dir', m)?.source, '/p.pool');
  t.equal(daxvmMountAt('/', m), undefined, 'not daxvm');
  t.equal(daxvmMountAt('/nowhere', m), undefined);
  t.equal(unescapeMountField('a\\011b\\012c\\134d'), 'a\tb\nc\\d');
});

t.test('runtime file names: systemd-escape --path', async (t) => {
  t.equal(escapeMountpoint('/mnt/nvmm1'), 'mnt-nvmm1');
  t.equal(escapeMountpoint('/mnt/nvmm1/'), 'mnt-nvmm1');
  t.equal(escapeMountpoint('/'), '-');
  t.equal(escapeMountpoint('/tmp/a b/.x-y'), 'tmp-a\\x20b-.x\\x2dy');
  t.equal(escapeMountpoint('/.hidden'), '\\x2ehidden');
});

t.test('readiness protocol', async (t) => {
  const ready = encodeMessage({ event: 'ready', pid: 7 });
  const err = encodeMessage({ event: 'error', message: 'm', hint: 'h', exitCode: 32 });
  t.same(decodeMessages(ready + err), [{ event: 'ready', pid: 7 }, { event: 'error', message: 'm', hint: 'h', exitCode: 32 }]);
  t.same(decodeMessages(ready.slice(0, 5)), [], 'an incomplete line waits');
  t.same(decodeMessages('junk\n{"event":"other"}\n'), [], 'ignores what is not ours');
});

t.test('mount helper baking', async (t) => {
  const tpl = "#!/bin/sh\nDAXVM_NODE=''\nDAXVM_MAIN=''\necho\n";
  t.equal(bakeHelper(tpl, '/usr/bin/node', "/opt/it's/main.js"),
    "#!/bin/sh\nDAXVM_NODE='/usr/bin/node'\nDAXVM_MAIN='/opt/it'\\''s/main.js'\necho\n");
  throwsA(t, () => bakeHelper('#!/bin/sh\n', 'a', 'b'), CliError, 'no placeholders');
});

t.test('a daemon that failed to mount: its reason is the message its hint follows, not a warning or its diary', async (t) => {
  const log = [
    'daxvm: 2026-12-02T10:00:00.000Z starting',
    'daxvm: warning: no lease table, library mappings of the pool fall back to the mount: cannot make the lease table: EPERM',
    'daxvm: FUSE refused to mount /p on /m: fuse: failed to open /dev/fuse: Permission denied',
    'hint: this user may not open /dev/fuse',
    'daxvm: stopping (exit)',
  ].join('\n');
  t.match(failureReason(log), /^FUSE refused to mount .*Permission denied$/);
  t.equal(failureReason('daxvm: warning: w\ndaxvm: cannot open /p: EIO\n'), 'cannot open /p: EIO', 'no hint: the last message');
  t.equal(failureReason('daxvm: 2026-12-02T10:00:00.000Z starting\ndaxvm: warning: w\n'), undefined, 'only a warning: no reason');
});
