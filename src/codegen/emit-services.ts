import protobuf from 'protobufjs';
import { CodegenError, displayPath } from './errors.js';
import type { LoadedProtos, ProtoFile } from './load.js';
import { docLines, lowerFirst, protoName, str, tsName } from './names.js';
import type { FileScope } from './scope.js';

/** One RPC method, validated. */
export interface Rpc {
  readonly file: ProtoFile;
  readonly service: protobuf.Service;
  readonly method: protobuf.Method;
  /** The method's name on the generated object: "Say" -> "say". */
  readonly key: string;
  readonly req: protobuf.Type;
  readonly res: protobuf.Type;
}

/** Parameters and locals of the generated methods, which would shadow a message value of the same name. */
const BODY_LOCALS: ReadonlySet<string> = new Set(['target', 'req', 'opts', 'node', 'options', 'n', 'impl', 'ctx']);

/** Members of the generated service object that a method must not shadow. */
const RESERVED_KEYS: ReadonlySet<string> = new Set(['name', 'methods', 'register']);

/**
 * Every RPC of every service. The runtime dispatches a request by its
 * message id alone, so a request type may serve only one method.
 */
export function collectRpcs(loaded: LoadedProtos): Rpc[] {
  const rpcs: Rpc[] = [];
  const byRequest = new Map<string, string>();
  for (const file of loaded.files) {
    for (const service of file.services) {
      const keys = new Map<string, string>();
      for (const method of service.methodsArray) {
        const where = `${displayPath(file.abs)}: rpc ${protoName(service)}.${method.name}`;
        if (method.requestStream || method.responseStream) throw new CodegenError(`${where}: streaming RPCs are not supported`);
        const key = lowerFirst(method.name);
        if (RESERVED_KEYS.has(key)) throw new CodegenError(`${where}: the method name "${key}" clashes with the generated service's own "${key}"; rename the rpc`);
        const twin = keys.get(key);
        if (twin) throw new CodegenError(`${where}: methods ${twin} and ${method.name} both become "${key}" in TypeScript`);
        keys.set(key, method.name);
        method.resolve();
        const req = method.resolvedRequestType;
        const res = method.resolvedResponseType;
        if (!req || !res) throw new CodegenError(`${where}: cannot resolve its request or response type`);
        const owner = byRequest.get(protoName(req));
        const self = `${protoName(service)}.${method.name}`;
        if (owner) throw new CodegenError(`${where}: request type ${protoName(req)} is already the request of ${owner}; the runtime dispatches by request message, so each method needs its own request type`);
        byRequest.set(protoName(req), self);
        rpcs.push({ file, service, method, key, req, res });
      }
    }
  }
  return rpcs;
}

/** The handler interface and the typed stubs object of each service in the file. */
export function emitServices(scope: FileScope, rpcs: readonly Rpc[]): string[] {
  const out: string[] = [];
  for (const service of scope.file.services) {
    const own = rpcs.filter((r) => r.service === service);
    if (own.length === 0) out.push('', `// service ${protoName(service)} declares no methods: nothing to generate.`);
    else out.push('', ...emitService(scope, service, own));
  }
  return out;
}

/** Only for services with at least one method. */
function emitService(scope: FileScope, service: protobuf.Service, rpcs: readonly Rpc[]): string[] {
  const name = tsName(service);
  const full = protoName(service);
  const rt = {
    ctx: scope.runtime('CallContext'),
    opts: scope.runtime('CallOptions'),
    init: scope.runtime('Init'),
    node: scope.runtime('ServiceNode'),
    target: scope.runtime('Target'),
    promise: scope.global('Promise'),
  };
  const types = rpcs.map((r) => {
    const where = `rpc ${full}.${r.method.name}`;
    return { rpc: r, req: scope.ref(r.req, 'value', where), res: scope.ref(r.res, 'value', where) };
  });
  const nodeOf = scope.shared('nodeOf');
  for (const value of [nodeOf, ...types.flatMap((t) => [t.req, t.res])]) {
    if (BODY_LOCALS.has(value)) throw new CodegenError(`${displayPath(scope.file.abs)}: service ${full}: the message name ${value} would be shadowed by a parameter of the generated stubs; rename the message`);
  }
  const out = [
    ...docLines(service.comment),
    `export interface ${name}Impl {`,
    ...types.flatMap(({ rpc, req, res }) => [
      ...docLines(rpc.method.comment, '  '),
      `  ${rpc.key}(req: ${req}, ctx: ${rt.ctx}): ${rt.init}<${res}> | ${rt.promise}<${rt.init}<${res}>>;`,
    ]),
    '}',
    '',
    ...docLines(`Typed stubs for ${full}. Calls and registration use \`opts.node\` / \`node\`, else the first ServiceNode started in this process.`),
    `export const ${name} = {`,
    `  name: ${str(full)},`,
    '  methods: {',
    ...types.map(({ rpc, req, res }) => `    ${rpc.key}: { name: ${str(rpc.method.name)}, request: ${req}, response: ${res} },`),
    '  },',
    `  /** Serves every method of ${full} on the node. */`,
    `  register(impl: ${name}Impl, node?: ${rt.node}): void {`,
    `    const n = ${nodeOf}(node);`,
  ];
  for (const { rpc, req, res } of types) out.push(`    n.handle(${req}, ${res}, (req, ctx) => impl.${rpc.key}(req, ctx));`);
  out.push('  },');
  const stub = (key: string, req: string, res: string, doc: string[]) => [
    ...doc,
    `  ${key}(target: ${rt.target}, req: ${rt.init}<${req}>, opts: ${rt.opts} & { node?: ${rt.node} | undefined } = {}): ${rt.promise}<${res}> {`,
    '    const { node, ...options } = opts;',
    `    return ${nodeOf}(node).call(target, ${req}, ${res}, req, options);`,
    '  },',
  ];
  for (const { rpc, req, res } of types) out.push(...stub(rpc.key, req, res, docLines(rpc.method.comment, '  ')));
  const only = types[0];
  if (types.length === 1 && only && only.rpc.key !== 'call') {
    out.push(...stub('call', only.req, only.res, [`  /** The service's only method, ${only.rpc.key}. */`]));
  }
  out.push('} as const;');
  return out;
}
