/**
 * The V8 flags the daemon's node runs with: `daxvm mount` starts the daemon
 * so, and so does TempMount (tests, benchmarks) unless told another node
 * command. `daxvm mount -f` runs in the node it was started with.
 *
 * --initial-old-space-size=128 (MB): the daemon's heap is a few tens of MB
 * that only grow (inodes, directory indexes, the published names), and V8
 * sets its old generation's limit a little above the live size, then starts
 * incremental marking as soon as less than the young generation's capacity
 * is left below it: under `tar x` of 21 751 entries the daemon ran 72 full
 * mark-compacts, one every 0.4 s, a quarter of its CPU. Starting from a
 * 128 MB limit it runs 3. The cost is garbage kept longer, at most that
 * much heap before the first full collection.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
