/**
 * How hub channels and messages sit on NATS: one subject per channel under
 * a prefix, and a small binary envelope around the body.
 *
 * A channel may be any UTF-8 text, but a NATS subject token may not hold
 * '.', '*', '>', whitespace or control characters. Every byte outside a
 * safe set is written %XX (as in a URL), so each channel is exactly one
 * token, two channels never share a subject, and common names
 * (`room:42`, `game#1@dev`) stay readable in NATS monitoring.
 */

const SAFE = /^[A-Za-z0-9_\-:#@+=~!]$/;

/** One subject token for any non-empty text. */
export function subjectToken(text: string): string {
  let out = '';
  for (const ch of text) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of subjectToken. */
export function tokenText(token: string): string {
  return decodeURIComponent(token);
}

/** `gamemesh.hub.<group>`: services of one group share channels, as they share the hub service. */
export function subjectPrefix(group: string): string {
  return `gamemesh.hub.${subjectToken(group)}`;
}

export function channelSubject(prefix: string, channel: string): string {
  return `${prefix}.${subjectToken(channel)}`;
}

/** Bytes of envelope before the body: u16 message id, u16 publisher length, the publisher. */
export function envelopeSize(publisher: Uint8Array): number {
  return 4 + publisher.length;
}

export function encodeEnvelope(msgId: number, publisher: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + publisher.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, msgId);
  view.setUint16(2, publisher.length);
  out.set(publisher, 4);
  out.set(body, 4 + publisher.length);
  return out;
}

export interface Envelope {
  msgId: number;
  publisher: string;
  body: Uint8Array;
}

/** Undefined for a payload that is not an envelope (anything may publish on NATS). */
export function decodeEnvelope(data: Uint8Array): Envelope | undefined {
  if (data.length < 4) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const msgId = view.getUint16(0);
  const len = view.getUint16(2);
  if (4 + len > data.length) return undefined;
  const publisher = Buffer.from(data.buffer, data.byteOffset + 4, len).toString('utf8');
  return { msgId, publisher, body: data.subarray(4 + len) };
}
