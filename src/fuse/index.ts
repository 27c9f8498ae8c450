/** The FUSE face of daxvm: operations over the fs contract, and the daemon that mounts them. */
export { runDaemon, EXIT_MOUNT_FAILURE, type DaemonConfig } from './daemon.js';
export { fusermount } from './unmount.js';
export { parseMountOptions, fuseOptionString, escapeOptionValue, MountOptionError, type MountOptions } from './options.js';
export {
  runtimeDir, ensureRuntimeDir, escapeMountpoint, pidFilePath, logFilePath,
  readPidFile, removePidFile, processAlive,
} from './runtime.js';
export { decodeMessages, encodeMessage, type DaemonMessage } from './protocol.js';
export { MountState, CONTROL_DIR } from './state.js';
export { FuseSession, fakeIo, type LowLevelOps, type Io } from './lowlevel.js';
export { buildOps } from './ops.js';
