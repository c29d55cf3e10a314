import protobuf from 'protobufjs';
import { CodegenError, displayPath } from './errors.js';
import type { AssignedId } from './ids.js';
import type { LoadedProtos } from './load.js';
import { protoName } from './names.js';
import type { Route, RouteRule, RouteTableJSON } from '../gateway/routes.js';

// The generator writes exactly what the gateway reads.
export type { Route, RouteRule, RouteTableJSON as RouteTable };

const RULES: readonly string[] = ['blocked', 'pass', 'auth'];

/** Messages declaring `(gamemesh.route)` and `(gamemesh.rule)`, validated; keyed by full name. */
export function collectRoutes(loaded: LoadedProtos): Map<string, Omit<Route, 'msgId'>> {
  const routed = new Map<string, Omit<Route, 'msgId'>>();
  for (const file of loaded.files) {
    for (const decl of file.decls) {
      if (!(decl instanceof protobuf.Type)) continue;
      const name = protoName(decl);
      const where = `${displayPath(file.abs)}: ${name}`;
      const route = decl.options?.['(gamemesh.route)'] as unknown;
      const rule = decl.options?.['(gamemesh.rule)'] as unknown;
      if (route === undefined && rule === undefined) continue;
      if (route === undefined) throw new CodegenError(`${where}: (gamemesh.rule) without (gamemesh.route); say which service the gateway forwards it to`);
      if (typeof route !== 'string' || !/^[\w.-]+$/.test(route)) throw new CodegenError(`${where}: (gamemesh.route) must be a service name, got ${JSON.stringify(route)}`);
      // A route with no rule is a client message the gateway knows but blocks.
      const r = rule ?? 'blocked';
      if (typeof r !== 'string' || !RULES.includes(r)) throw new CodegenError(`${where}: (gamemesh.rule) must be "pass", "auth" or "blocked", got ${JSON.stringify(r)}`);
      routed.set(name, { name, service: route, rule: r as RouteRule });
    }
  }
  return routed;
}

/** The route table, sorted by message id. */
export function routeTable(routed: ReadonlyMap<string, Omit<Route, 'msgId'>>, ids: ReadonlyMap<string, AssignedId>): RouteTableJSON {
  const routes: Route[] = [];
  for (const r of routed.values()) {
    const assigned = ids.get(r.name);
    if (!assigned) throw new Error(`internal: routed message ${r.name} has no id`);
    routes.push({ msgId: assigned.id, name: r.name, service: r.service, rule: r.rule });
  }
  routes.sort((a, b) => a.msgId - b.msgId);
  return { version: 1, routes };
}
