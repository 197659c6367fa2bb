export * from './codes.js';
export * from './frames.js';
