/**
 * OpenTelemetry tracing through the API only (@opentelemetry/api): the
 * framework never depends on an SDK. When the process has registered none,
 * `tracingOn()` is false and the hot paths skip every tracing step, so the
 * cost is one check. With an SDK (NodeSDK, or NodeTracerProvider.register()),
 * spans are made and the context crosses processes in TraceContext frames
 * (docs/protocol.md), written and read by the global propagator (W3C trace
 * context by default).
 */
import { context, isSpanContextValid, propagation, ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';

export { context, SpanKind, trace, type Context, type Span };

/** The API's no-op provider: what the global proxy delegates to until an SDK registers. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

export const tracer = trace.getTracer('gamemesh');

/** True when an SDK tracer provider is registered in this process. */
export function tracingOn(): boolean {
  const p = trace.getTracerProvider();
  return !(p instanceof ProxyTracerProvider) || p.getDelegate() !== NOOP_PROVIDER;
}

/** Fields a received carrier may have, and their size: W3C caps tracestate at 512 bytes, baggage at 8192. */
const MAX_FIELDS = 16;
const MAX_FIELD_BYTES = 8192;

/** The propagator's fields for the span in `ctx`, or undefined when there is no valid span to carry. */
export function carrierOf(ctx: Context): Record<string, string> | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  const fields: Record<string, string> = {};
  propagation.inject(ctx, fields);
  for (const _ in fields) return fields;
  return undefined;
}

/** The remote parent a carrier names; undefined for an oversized or empty one. */
export function contextFrom(fields: Readonly<Record<string, string>>): Context | undefined {
  let n = 0;
  for (const k in fields) {
    if (++n > MAX_FIELDS || k.length > 256 || (fields[k] as string).length > MAX_FIELD_BYTES) return undefined;
  }
  if (n === 0) return undefined;
  const ctx = propagation.extract(ROOT_CONTEXT, fields);
  return trace.getSpanContext(ctx) ? ctx : undefined;
}

/** Span attributes every gamemesh span carries. */
export const ATTR = {
  system: 'rpc.system',
  method: 'rpc.method',
  service: 'gamemesh.service.id',
  peer: 'gamemesh.peer',
  code: 'gamemesh.code',
  msg: 'gamemesh.msg',
  msgId: 'gamemesh.msg_id',
  client: 'gamemesh.client_id',
  channel: 'messaging.destination.name',
} as const;

/** Starts a span under `parent` (the active context when omitted). */
export function startSpan(name: string, kind: SpanKind, attributes: Attributes, parent?: Context): Span {
  return tracer.startSpan(name, { kind, attributes: { [ATTR.system]: 'gamemesh', ...attributes } }, parent ?? context.active());
}

/** Records the result code ('ok' or an error code) and ends the span. */
export function endSpan(span: Span, code: string, message?: string): void {
  span.setAttribute(ATTR.code, code);
  if (code !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? code });
  span.end();
}

/** Runs `fn` with `span` active (under `parent`, else the active context). */
export function withSpan<T>(span: Span, parent: Context | undefined, fn: () => T): T {
  return context.with(trace.setSpan(parent ?? context.active(), span), fn);
}

/** The context to propagate for `span`. */
export function contextOf(span: Span, parent?: Context): Context {
  return trace.setSpan(parent ?? context.active(), span);
}
