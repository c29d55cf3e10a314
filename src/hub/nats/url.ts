/**
 * `--hub` values: '' (the hub service) or `nats://host:port[,host:port...]`.
 * Credentials never go in the URL, where logs and `ps` would show them:
 * they come from --hubtoken, or --hubuser and --hubpass (or GAMEMESH_HUB*).
 */

export interface NatsTarget {
  /** host:port of each server, as the client takes them. */
  servers: string[];
}

/** Why `value` is not a --hub value, or undefined. */
export function hubAddrProblem(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    parseNatsAddr(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export function isNatsAddr(value: string): boolean {
  return value.startsWith('nats://');
}

export function parseNatsAddr(value: string): NatsTarget {
  if (!isNatsAddr(value)) throw new TypeError(`expected '' (the hub service) or nats://host:port[,host:port], got ${JSON.stringify(value)}`);
  const list = value.slice('nats://'.length).split(',');
  const servers: string[] = [];
  for (const item of list) {
    const hostPort = item.startsWith('nats://') ? item.slice('nats://'.length) : item;
    if (hostPort.includes('@')) throw new TypeError('nats: put credentials in --hubtoken or --hubuser/--hubpass, not in the URL');
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hostPort);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new TypeError(`nats: expected host:port, got ${JSON.stringify(item)}`);
    servers.push(hostPort);
  }
  return { servers };
}
