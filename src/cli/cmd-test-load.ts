/** daxvm test-load [--kill-rounds N] [--fill-rounds N] [--host-full-rounds N] [--clients N] [--minutes M] [--seed S] [--only PART] [--keep DIR] [--json]: faults under load through the mount. */
import { abortLoad, LOAD_PARTS, runLoad, type LoadPart } from '../reliability/load.js';
import { CliError, EXIT } from '../core/errors.js';

export interface TestLoadOptions {
  killRounds: string;
  fillRounds: string;
  hostFullRounds: string;
  clients: string;
  minutes: string;
  seed: string;
  only?: string;
  keep?: string;
  scratch?: string;
  json?: boolean;
}

function count(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new CliError(`--${name} ${v}: an integer of at least ${min}`, EXIT.USAGE);
  return n;
}

export async function cmdTestLoad(o: TestLoadOptions): Promise<number> {
  const minutes = Number(o.minutes);
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) throw new CliError(`--minutes ${o.minutes}: a number of minutes above 0 (decimals allowed: 0.25 is 15 s)`, EXIT.USAGE);
  if (o.only !== undefined && !LOAD_PARTS.includes(o.only as LoadPart)) {
    throw new CliError(`--only ${o.only}: no such part`, EXIT.USAGE, `one of: ${LOAD_PARTS.join(', ')}`);
  }
  // Ctrl-C: no daemon or mount of ours may outlive us.
  const onSignal = (sig: NodeJS.Signals) => {
    abortLoad();
    process.stderr.write(`daxvm test-load: ${sig}: daemons killed, mounts detached, scratch removed\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = o.json ? (l: string) => process.stderr.write(`${l}\n`) : undefined;
  let result;
  try {
    result = await runLoad({
      killRounds: count('kill-rounds', o.killRounds, 0),
      fillRounds: count('fill-rounds', o.fillRounds, 0),
      hostFullRounds: count('host-full-rounds', o.hostFullRounds, 0),
      clients: count('clients', o.clients, 0),
      minutes,
      seed: count('seed', o.seed, 0),
      ...(o.only ? { only: o.only as LoadPart } : {}),
      ...(o.keep ? { keep: o.keep } : {}),
      ...(o.scratch ? { scratch: o.scratch } : {}),
      ...(log ? { log } : {}),
    });
  } catch (err) {
    if (err instanceof Error && /is not installed|\/dev\/fuse is missing/.test(err.message)) throw new CliError(err.message, EXIT.FAILURE);
    throw err;
  }
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  return result.failed === 0 ? EXIT.OK : EXIT.FAILURE;
}
