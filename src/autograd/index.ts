export * from './tensor.js';
export * as ops from './ops.js';
export * from './module.js';
export * from './optim.js';
