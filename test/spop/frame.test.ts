import t from 'tap'
import {
  agentHello,
  decodeFrame,
  disconnectFrame,
  disconnectInfo,
  encodeAck,
  encodeFrame,
  SpopError,
  tv,
} from '../../src/spop/index.js'
import { bytes, hex } from '../helpers/bytes.js'
import { vectors } from '../fixtures/frames.js'

for (const v of vectors) {
  t.test(v.name, async (t) => {
    t.equal(v.wire.readUInt32BE(0), v.wire.length - 4, 'length prefix counts the bytes after it')
    t.same(decodeFrame(v.wire.subarray(4)), v.frame, 'decode')
    t.same(encodeFrame(v.frame), v.wire, 'encode')
    t.same(decodeFrame(encodeFrame(v.frame).subarray(4)), v.frame, 'round trip')
  })
}

t.test('builders produce the golden frames', async (t) => {
  t.same(
    encodeFrame(agentHello({ version: '2.0', maxFrameSize: 16380, capabilities: ['pipelining'] })),
    vectors.find((v) => v.id === 'B')!.wire,
    'agentHello = vector B',
  )
  t.same(
    encodeFrame(disconnectFrame('agent-disconnect', 0, 'normal')),
    hex('00000025660000000100000b7374617475732d636f64650300076d65737361676508066e6f726d616c'),
    'disconnectFrame = vector F',
  )
  t.same(
    encodeAck(1, 1, [{ type: 1, scope: 2, name: 'score', value: tv.int32(75) }]),
    hex('00000012670000000101010103020573636f7265024b'),
    'encodeAck = vector D',
  )
  t.same(encodeAck(0, 1, []), bytes`00 00 00 07 67 00 00 00 01 00 01`, 'stream-id 0 is legal (2.6)')
})

t.test('large stream and frame ids are echoed exactly', async (t) => {
  const wire = encodeAck(2n ** 64n - 1n, 2 ** 31 - 1, [])
  const f = decodeFrame(wire.subarray(4))
  t.equal(f.streamId, 2n ** 64n - 1n)
  t.equal(f.frameId, 2 ** 31 - 1)
})

t.test('disconnectInfo is tolerant', async (t) => {
  t.same(disconnectInfo(disconnectFrame('haproxy-disconnect', 2, 'a timeout occurred').kv), {
    status: 2,
    message: 'a timeout occurred',
  })
  t.same(disconnectInfo([{ name: 'status-code', ...tv.int64(10) }]), { status: 10, message: '' }, 'INT64 status')
  t.same(disconnectInfo([]), { status: 99, message: '' }, 'nothing at all')
})

t.test('unknown frame types decode as unknown, with their payload', async (t) => {
  const f = decodeFrame(bytes`2a 00 00 00 01 00 00 de ad`)
  t.same(f, { type: 'unknown', wireType: 42, flags: 1, streamId: 0, frameId: 0, payload: hex('dead') })
})

t.test('malformed frames are typed errors with status 4', async (t) => {
  const bad: Array<[string, Buffer]> = [
    ['header cut in the flags', bytes`03 00 00`],
    ['no frame-id', bytes`03 00 00 00 01 01`],
    ['NOTIFY with a message name running past the end', bytes`03 00 00 00 01 01 01 09 "abc"`],
    ['NOTIFY missing nb-args', bytes`03 00 00 00 01 01 01 03 "abc"`],
    ['NOTIFY with fewer args than nb-args', bytes`03 00 00 00 01 01 01 01 "m" 02 01 "a" 00`],
    ['NOTIFY arg with reserved type', bytes`03 00 00 00 01 01 01 01 "m" 01 01 "a" 0b`],
    ['HELLO with a key but no value', bytes`01 00 00 00 01 00 00 07 "version"`],
    ['ACK with set-var of 2 args', bytes`67 00 00 00 01 01 01 01 02 02 01 "x" 00`],
    ['ACK with scope 5', bytes`67 00 00 00 01 01 01 02 02 05 01 "x"`],
    ['ACK with unknown action 3', bytes`67 00 00 00 01 01 01 03 00`],
  ]
  for (const [name, body] of bad) {
    t.throws(() => decodeFrame(body), { name: 'SpopError', status: 4 }, name)
  }
})

t.test('SpopError instanceof and fields', async (t) => {
  try {
    decodeFrame(bytes`03`)
    t.fail('should throw')
  } catch (e) {
    t.ok(e instanceof SpopError)
    t.ok(e instanceof Error)
    t.match(e, { code: 'ERR_SPOP_TRUNCATED', status: 4, message: /truncated/ })
  }
  t.notOk({} instanceof SpopError)
})

t.test('encoder refuses what HAProxy would silently drop', async (t) => {
  t.throws(() => encodeAck(1, 1, [{ type: 1, scope: 7 as 0, name: 'x', value: tv.null() }]), RangeError)
  const tooMany = Array.from({ length: 256 }, () => ({ name: 'a', ...tv.null() }))
  t.throws(() =>
    encodeFrame({ type: 'notify', flags: 1, streamId: 1, frameId: 1, messages: [{ name: 'm', args: tooMany }] }),
  )
})
