// Every workflow the worker runs; the bundler starts here.

export { anchorUpkeepWorkflow } from './anchor-upkeep';
export { crlCompactionWorkflow } from './crl-compaction';
export { rotationWorkflow } from './rotation';
export { scheduledRotationWorkflow } from './scheduled';
