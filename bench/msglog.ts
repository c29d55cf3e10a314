/**
 * What the message logs (src/log/msglog.ts) cost per message, the way the
 * agent, GatewayBackend and RpcEngine call them: with debug off (every
 * production service), with the name muted, and with debug on into a sink
 * that drops the bytes. Baseline, in the same run: a call of an empty
 * function with the same arguments.
 *
 * The hot-path sites build their peer label only behind `messageLogOn`, so
 * with debug off a message costs a getter and a comparison.
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { logMessage, messageLogOn, setMutedMessages } from '../src/log/msglog.js';
import { DEFAULT_MS, fmtInt, fmtNum, isMain, measure, printTable } from './lib.js';

const NAME = 'demo.EarnGoldReq';
const CASE_MS = Math.round(DEFAULT_MS * 0.6);

// Not inlined away: it is called through a variable the optimiser cannot see through.
let noop: (logger: Logger, dir: 'send' | 'recv', name: string, peer: string, size: number) => void = () => {};
export function setNoop(fn: typeof noop): void {
  noop = fn;
}

/** A named child logger, as createLogger makes them for services, writing into a sink that drops the bytes. */
function logger(level: string): Logger {
  const drop = new Writable({ write: (_chunk, _enc, done) => done() });
  const log = pino({ level: 'info', base: { pid: 1 } }, drop).child({ name: 'service.agent' });
  log.level = level;
  return log;
}

export async function run(): Promise<void> {
  const info = logger('info');
  const debug = logger('debug');
  let client = 0;
  const cases: Array<[string, () => unknown]> = [
    ['baseline: an empty function, same arguments', () => noop(info, 'recv', NAME, 'peer', 12)],
    ['debug off: logMessage(...)', () => logMessage(info, 'recv', NAME, 'agent#0@dev', 12)],
    ['debug off: guarded site with a peer label', () => messageLogOn(info) && logMessage(info, 'recv', NAME, `client ${++client}`, 12)],
    ['debug on, name muted', () => logMessage(debug, 'recv', NAME, 'agent#0@dev', 12)],
    ['debug on, logged (bytes dropped)', () => logMessage(debug, 'recv', NAME, 'agent#0@dev', 12)],
  ];
  const rows: string[][] = [];
  let base = 0;
  for (const [name, fn] of cases) {
    setMutedMessages(name === 'debug on, name muted' ? ['EarnGoldReq'] : []);
    const ops = measure(name, fn, CASE_MS);
    const ns = 1e9 / ops;
    if (base === 0) base = ns;
    rows.push([name, fmtInt(ops), fmtNum(ns, 1), fmtNum(ns - base, 1)]);
  }
  setMutedMessages([]);
  printTable('message logs: cost per message', ['case', 'calls/s', 'ns/call', 'ns over baseline'], rows);
}

if (isMain(import.meta.url)) await run();
