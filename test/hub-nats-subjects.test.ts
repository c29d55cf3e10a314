/**
 * The NATS mapping of the hub, fuzzed: any channel becomes one valid subject
 * token and back, two channels never share one, and the envelope decoder
 * takes any bytes without throwing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { channelSubject, decodeEnvelope, encodeEnvelope, subjectPrefix, subjectToken, tokenText } from '../src/hub/nats/subjects.js';
import { parseNatsAddr } from '../src/hub/nats/url.js';

test('any channel is one NATS subject token, and the mapping is one to one', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }), (a, b) => {
      const ta = subjectToken(a);
      assert.match(ta, /^[A-Za-z0-9_\-:#@+=~!%]+$/, 'no dot, wildcard, space or control character');
      assert.equal(tokenText(ta), a);
      if (a !== b) assert.notEqual(ta, subjectToken(b));
    }),
    { numRuns: 2000 },
  );
  assert.equal(channelSubject(subjectPrefix('dev'), 'room:42'), 'gamemesh.hub.dev.room:42');
  assert.equal(channelSubject(subjectPrefix('dev'), 'a.b *>'), 'gamemesh.hub.dev.a%2Eb%20%2A%3E');
});

test('envelopes round-trip, and any bytes decode to an envelope or undefined, never a throw', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.string({ maxLength: 80 }), fc.uint8Array({ maxLength: 300 }), (id, publisher, body) => {
      const env = decodeEnvelope(encodeEnvelope(id, Buffer.from(publisher, 'utf8'), body));
      assert.deepEqual(env && { msgId: env.msgId, publisher: env.publisher, body: [...env.body] }, { msgId: id, publisher, body: [...body] });
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const env = decodeEnvelope(bytes);
      if (env) assert.ok(4 + Buffer.byteLength(env.publisher) <= bytes.length + 4 * Buffer.byteLength(env.publisher));
    }),
  );
});

test('--hub values: a list of host:port, never credentials in the URL', () => {
  assert.deepEqual(parseNatsAddr('nats://10.0.0.1:4222,h2:4222,nats://[::1]:4223').servers, ['10.0.0.1:4222', 'h2:4222', '[::1]:4223']);
  assert.throws(() => parseNatsAddr('nats://user:pw@h:4222'), /not in the URL/);
  assert.throws(() => parseNatsAddr('nats://h'), /host:port/);
  assert.throws(() => parseNatsAddr('nats://h:99999'), /host:port/);
  assert.throws(() => parseNatsAddr('http://h:4222'), /nats:\/\//);
});
