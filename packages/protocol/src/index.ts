export * from './codes.js';
export * from './devices.js';
export * from './frames.js';
