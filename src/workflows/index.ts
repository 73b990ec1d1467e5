// Every workflow the worker runs; the bundler starts here.
export { rotationWorkflow } from './rotation';
export { scheduledRotationWorkflow } from './scheduled';
