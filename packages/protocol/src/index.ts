export * from './client-policy.js';
export * from './codes.js';
export * from './devices.js';
export * from './frames.js';
