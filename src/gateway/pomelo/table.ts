import { createHash } from 'node:crypto';
import type { RouteTable } from '../routes.js';
import { MAX_ROUTE_CODE } from './message.js';
import { addPomeloProto, type PomeloProto } from './protobuf.js';
import type { PomeloMessage } from './schema.js';

/** `sys.protos` of the handshake, in the form pomelo-jsclient and pomelo-protobuf expect. */
export interface PomeloProtos {
  readonly client: Record<string, PomeloProto>;
  readonly server: Record<string, PomeloProto>;
  readonly version: number;
}

/**
 * One route table as the pomelo port uses it: request routes (the routed
 * messages), the route dictionary offered in the handshake, and the
 * pomelo-protobuf protos of the requests that can be carried that way.
 * Rebuilt whenever the agent applies a new route table; each session keeps
 * the one it shook hands with for its dictionary codes.
 */
export class PomeloTable {
  /** Route string -> routed message. */
  readonly requests = new Map<string, PomeloMessage>();
  readonly routeToCode: ReadonlyMap<string, number>;
  readonly codeToRoute: ReadonlyMap<number, string>;
  /** The dictionary as the handshake sends it: {route: code}. */
  readonly dict: Readonly<Record<string, number>>;
  readonly dictVersion: string;
  /** Every request whose type pomelo-protobuf can carry; served only when the port is set to. */
  readonly protos: PomeloProtos;

  constructor(readonly routes: RouteTable) {
    const schema = routes.pomelo;
    const dict = new Set<string>();
    // No prototype: a route named "__proto__" is just a key.
    const client = Object.create(null) as Record<string, PomeloProto>;
    for (const msg of schema?.messages ?? []) {
      const route = routes.get(msg.msgId);
      if (route) {
        this.requests.set(msg.route, msg);
        dict.add(msg.route);
        if (route.rule !== 'blocked') {
          const entries = Object.create(null) as Record<string, PomeloProto>;
          if (addPomeloProto(msg.type, entries, msg.route)) Object.assign(client, entries);
        }
      } else if (msg.route !== msg.name) {
        // A push with a route of its own (the option was set): worth a code.
        dict.add(msg.route);
      }
    }
    const sorted = [...dict].sort().slice(0, MAX_ROUTE_CODE);
    const routeToCode = new Map<string, number>();
    const codeToRoute = new Map<number, string>();
    sorted.forEach((route, i) => {
      routeToCode.set(route, i + 1);
      codeToRoute.set(i + 1, route);
    });
    this.routeToCode = routeToCode;
    this.codeToRoute = codeToRoute;
    this.dict = Object.fromEntries(routeToCode);
    this.dictVersion = createHash('sha1').update(JSON.stringify(this.dict)).digest('base64');
    const version = createHash('sha1').update(JSON.stringify(client)).digest().readUInt32BE(0) || 1;
    this.protos = { client, server: {}, version };
  }

  message(msgId: number): PomeloMessage | undefined {
    return this.routes.pomelo?.byId(msgId);
  }

  /** True when a request on `route` may carry a pomelo-protobuf body. */
  compact(route: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.protos.client, route);
  }
}
