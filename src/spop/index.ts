// The SPOP codec: Buffer in, values out. Nothing here touches a socket, a
// timer or a logger, which is what keeps golden vectors, split-anywhere tests,
// fuzzing and micro-benchmarks cheap.

export * from './constants.js'
export * from './errors.js'
export * from './varint.js'
export * from './typed-data.js'
export * from './kv-list.js'
export * from './messages.js'
export * from './actions.js'
export * from './frame.js'
export * from './frame-reader.js'
export { Writer } from './writer.js'
export { cursor } from './reader.js'
export { internValuesOf } from './name-cache.js'
export { truncateUtf8 } from './utf8.js'
