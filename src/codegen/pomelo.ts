import protobuf from 'protobufjs';
import { routeProblem, type PomeloMessageJSON, type PomeloSchemaJSON } from '../gateway/pomelo/schema.js';
import { CodegenError, displayPath } from './errors.js';
import type { AssignedId } from './ids.js';
import type { LoadedProtos } from './load.js';
import { protoName } from './names.js';

/** Messages declaring `(gamemesh.pomelo)`, checked; full name -> route. Declaring one puts the message on the wire. */
export function collectPomeloRoutes(loaded: LoadedProtos): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of loaded.files) {
    for (const decl of file.decls) {
      if (!(decl instanceof protobuf.Type)) continue;
      const route = decl.options?.['(gamemesh.pomelo)'] as unknown;
      if (route === undefined) continue;
      const problem = routeProblem(route);
      if (problem) throw new CodegenError(`${displayPath(file.abs)}: ${protoName(decl)}: (gamemesh.pomelo) ${problem}, got ${JSON.stringify(route)}`);
      out.set(protoName(decl), route as string);
    }
  }
  return out;
}

/**
 * The `pomelo` section of routes.json: every message with an id and its
 * pomelo route, and the descriptor of those messages and the types they use,
 * so an agent can convert JSON bodies knowing nothing else about the game.
 */
export function pomeloSchema(loaded: LoadedProtos, ids: ReadonlyMap<string, AssignedId>, named: ReadonlyMap<string, string>): PomeloSchemaJSON {
  const messages: PomeloMessageJSON[] = [];
  const owners = new Map<string, string>();
  const keep = new Set<protobuf.ReflectionObject>();
  for (const file of loaded.files) {
    for (const decl of file.decls) {
      if (!(decl instanceof protobuf.Type)) continue;
      const name = protoName(decl);
      const assigned = ids.get(name);
      if (!assigned) continue;
      const route = named.get(name) ?? name;
      const other = owners.get(route);
      if (other !== undefined) throw new CodegenError(`${displayPath(file.abs)}: pomelo route ${route} names both ${other} and ${name}; give one of them another (gamemesh.pomelo)`);
      owners.set(route, name);
      messages.push({ msgId: assigned.id, name, route });
      markUsed(decl, keep);
    }
  }
  messages.sort((a, b) => a.msgId - b.msgId);
  // Through JSON text: plain objects (protobufjs hands out some without a prototype), as the agent will read them.
  return { messages, descriptor: JSON.parse(JSON.stringify(prune(loaded.root, keep) ?? {})) as protobuf.INamespace };
}

/** Marks a type and everything its fields use, by their outermost declaration (nested ones travel inside it). */
function markUsed(type: protobuf.Type | protobuf.Enum, keep: Set<protobuf.ReflectionObject>): void {
  let top: protobuf.ReflectionObject = type;
  while (top.parent instanceof protobuf.Type) top = top.parent;
  const fresh = !keep.has(type);
  keep.add(type);
  keep.add(top);
  if (!fresh || !(type instanceof protobuf.Type)) return;
  for (const field of type.fieldsArray) {
    const t = field.resolvedType;
    if (t) markUsed(t, keep);
  }
  // Nested declarations travel with their parent's JSON: what they use must come too.
  for (const nested of type.nestedArray) if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) markUsed(nested, keep);
}

function prune(ns: protobuf.NamespaceBase, keep: ReadonlySet<protobuf.ReflectionObject>): protobuf.INamespace | undefined {
  const nested: Record<string, protobuf.AnyNestedObject> = {};
  for (const child of ns.nestedArray) {
    if (child instanceof protobuf.Type || child instanceof protobuf.Enum) {
      if (keep.has(child)) nested[child.name] = child.toJSON() as protobuf.AnyNestedObject;
    } else if (child instanceof protobuf.Namespace) {
      const sub = prune(child, keep);
      if (sub) nested[child.name] = sub;
    }
  }
  return Object.keys(nested).length > 0 ? { nested } : undefined;
}
