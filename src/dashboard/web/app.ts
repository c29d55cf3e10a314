/**
 * The dashboard page: a live view from the server's event stream (no
 * reload), a KV tree loaded folder by folder, and an editor that writes a
 * value with the cluster token. Everything shown comes from the cluster and
 * is untrusted: it is put on the page as text, never as HTML.
 */

// ---- what the server sends (src/dashboard/model.ts, kv.ts) ---------------------

interface Load {
  state?: string;
  rss?: number;
  clients?: number;
  rooms?: number;
  perSec?: number;
  links: string[];
  error?: string;
}
interface Service {
  id: string;
  name: string;
  address: string;
  addr: string;
  group: string;
  version: string;
  state: string;
  available: boolean;
  admin: string;
  meta: Record<string, string>;
  load?: Load;
}
interface Route {
  msgId: number;
  name: string;
  service: string;
  rule: string;
}
interface LogEntry {
  at: number;
  kind: string;
  id: string;
  text: string;
}
interface State {
  sdaddr: string;
  connected: boolean;
  services: Service[];
  links: [string, string][];
  routes: Route[];
  routesError?: string;
  log: LogEntry[];
}
interface KvLeaf {
  key: string;
  name: string;
  value: string;
  size: number;
  secret: boolean;
  binary: boolean;
  modRev: number;
}
interface KvListing {
  prefix: string;
  folders: { name: string; prefix: string; keys: number }[];
  keys: KvLeaf[];
  more: number;
}

// ---- small DOM helpers ------------------------------------------------------------

function $(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: { text?: string; cls?: string; attrs?: Record<string, string> } = {}, ...children: Node[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.text !== undefined) e.textContent = props.text;
  if (props.cls) e.className = props.cls;
  for (const [k, v] of Object.entries(props.attrs ?? {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function td(text: string, cls?: string): HTMLTableCellElement {
  return el('td', { text, ...(cls ? { cls } : {}) });
}

function bytes(n: number | undefined): string {
  if (n === undefined) return '—';
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function num(n: number | undefined, digits = 0): string {
  return n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

// ---- live state -----------------------------------------------------------------------

function render(s: State): void {
  const agents = s.services.filter((x) => x.name === 'agent');
  const players = agents.reduce((a, x) => a + (x.load?.clients ?? Number(x.meta['online'] ?? 0)), 0);
  $('summary').textContent = `discovery ${s.sdaddr}${s.connected ? '' : ' (reconnecting)'} · ${s.services.length} services · ${agents.length} agents · ${players} clients online`;
  renderServices(s);
  renderLoad(s);
  renderGraph(s);
  renderRoutes(s);
  renderLog(s);
}

function stateBadge(state: string): HTMLElement {
  const cls = state === 'running' || state === 'registered' ? 'ok' : state === 'stopping' || state === 'retiring' || state === 'draining' ? 'warn' : '';
  return el('span', { text: state, cls: `badge ${cls}` });
}

function renderServices(s: State): void {
  const body = $('services').querySelector('tbody') as HTMLTableSectionElement;
  body.replaceChildren(
    ...s.services.map((x) => {
      const avail = x.available ? el('span', { text: 'yes', cls: 'muted' }) : el('span', { text: 'no', cls: 'badge error' });
      const row = el(
        'tr',
        { attrs: { 'data-id': x.id, 'data-name': x.name } },
        el('td', { cls: 'mono', text: x.id }),
        td(x.address, 'mono'),
        td(x.addr, 'mono'),
        td(x.version || '—'),
        el('td', {}, stateBadge(x.state)),
        td(x.group),
        el('td', {}, avail),
        td(x.load ? String(x.load.links.length) : '—', 'num'),
        td(x.admin ? (x.load?.error ? `${x.admin} (no answer)` : x.admin) : 'none', x.load?.error ? 'mono error' : 'mono'),
      );
      if (x.load?.error) row.title = x.load.error;
      return row;
    }),
  );
}

function renderLoad(s: State): void {
  const body = $('load').querySelector('tbody') as HTMLTableSectionElement;
  const max = Math.max(1, ...s.services.map((x) => x.load?.perSec ?? 0));
  body.replaceChildren(
    ...s.services.map((x) => {
      const clients = x.load?.clients ?? (x.meta['online'] !== undefined ? Number(x.meta['online']) : undefined);
      const bar = el('div', { cls: 'bar' });
      bar.style.width = `${Math.round(((x.load?.perSec ?? 0) / max) * 100)}%`;
      return el(
        'tr',
        { attrs: { 'data-id': x.id } },
        td(x.id, 'mono'),
        td(num(clients), 'num'),
        td(num(x.load?.rooms), 'num'),
        td(bytes(x.load?.rss), 'num'),
        td(num(x.load?.perSec, 1), 'num'),
        el('td', { attrs: { style: 'width: 30%' } }, bar),
      );
    }),
  );
}

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const COLORS = ['#3056d3', '#1f8a4c', '#b7791f', '#7b3fb5', '#c0392b', '#138496', '#5a6270'];

/** One column per service name, its instances down the column, a line per link. */
function renderGraph(s: State): void {
  const graph = $('graph') as unknown as SVGSVGElement;
  const names = [...new Set(s.services.map((x) => x.name))].sort((a, b) => (a === 'agent' ? -1 : b === 'agent' ? 1 : a < b ? -1 : 1));
  const width = graph.clientWidth || 900;
  const rows = Math.max(1, ...names.map((n) => s.services.filter((x) => x.name === n).length));
  const height = Math.max(130, 70 + rows * 40);
  graph.setAttribute('viewBox', `0 0 ${width} ${height}`);
  graph.style.height = `${height}px`;
  const pos = new Map<string, { x: number; y: number }>();
  const nodes: SVGElement[] = [];
  names.forEach((name, col) => {
    const x = ((col + 0.5) * width) / names.length;
    nodes.push(svg('text', { x, y: 14, 'text-anchor': 'middle', class: 'col' }, name));
    s.services
      .filter((v) => v.name === name)
      .forEach((v, i) => {
        const y = 60 + i * 40;
        pos.set(v.id, { x, y });
        const g = svg('g', { 'data-id': v.id });
        g.append(svg('circle', { cx: x, cy: y, r: 9, fill: COLORS[col % COLORS.length] as string, opacity: v.state === 'running' || v.state === 'registered' ? 1 : 0.45 }));
        const online = v.name === 'agent' ? ` · ${num(v.load?.clients ?? Number(v.meta['online'] ?? 0))} online` : '';
        g.append(svg('text', { x: x + 13, y: y + 4 }, `${v.id.replace(/@.*$/, '')}${online}`));
        const title = svg('title', {}, `${v.id} ${v.address} (${v.state})`);
        g.append(title);
        nodes.push(g);
      });
  });
  // Arcs, not straight lines: links between services of one row would otherwise run through the nodes between them.
  const lines = s.links.flatMap(([a, b]) => {
    const p = pos.get(a);
    const q = pos.get(b);
    if (!p || !q) return [];
    // The curve's peak is half the control point's lift: at most 30 px above the higher end, below the column names.
    const lift = Math.min(30, 8 + Math.abs(q.x - p.x) * 0.05);
    const d = `M ${p.x} ${p.y} Q ${(p.x + q.x) / 2} ${Math.min(p.y, q.y) - 2 * lift} ${q.x} ${q.y}`;
    return [svg('path', { d, 'data-link': `${a} ${b}` })];
  });
  graph.replaceChildren(...lines, ...nodes);
}

function renderRoutes(s: State): void {
  const err = $('routes-error');
  err.hidden = !s.routesError;
  err.textContent = s.routesError ? `config/gateway/routes is not a valid route table: ${s.routesError}` : '';
  const body = $('routes').querySelector('tbody') as HTMLTableSectionElement;
  body.replaceChildren(...s.routes.map((r) => el('tr', {}, td(String(r.msgId), 'num'), td(r.name, 'mono'), td(r.service), td(r.rule))));
  if (s.routes.length === 0 && !s.routesError) body.append(el('tr', {}, el('td', { text: 'no route table in the KV (gamemesh routes push)', cls: 'muted', attrs: { colspan: '4' } })));
}

function renderLog(s: State): void {
  $('log').replaceChildren(
    ...s.log.map((e) => el('li', { attrs: { 'data-kind': e.kind, 'data-id': e.id } }, el('time', { text: new Date(e.at).toLocaleTimeString() }), el('b', { text: e.kind }), document.createTextNode(` ${e.text}`))),
  );
}

// ---- KV tree and editor ---------------------------------------------------------------

/** Open folders (and the root, ''), refreshed when a key under them changes. */
const openFolders = new Map<string, HTMLElement>();
let selected: string | undefined;
let dirty = false;
/** The key each tree button shows, as of its folder's last listing. */
const leaves = new WeakMap<HTMLElement, KvLeaf>();

async function listing(prefix: string): Promise<KvListing> {
  const res = await fetch(`/api/kv?prefix=${encodeURIComponent(prefix)}`);
  if (!res.ok) throw new Error(`listing ${prefix || '/'}: HTTP ${res.status}`);
  return (await res.json()) as KvListing;
}

/**
 * Shows a folder's listing in `into`, reusing the elements already there:
 * an open subfolder stays open (and attached) when its parent is refreshed.
 */
async function fill(prefix: string, into: HTMLElement): Promise<void> {
  const l = await listing(prefix);
  openFolders.set(prefix, into);
  const old = new Map<string, HTMLElement>();
  for (const c of Array.from(into.children)) {
    const id = (c as HTMLElement).dataset['prefix'] ?? (c as HTMLElement).dataset['key'];
    if (id !== undefined) old.set(id, c as HTMLElement);
  }
  const next: HTMLElement[] = l.folders.map((f) => {
    const label = `${f.name}/ (${f.keys})`;
    const existing = old.get(f.prefix);
    if (existing) {
      const summary = existing.querySelector('summary');
      if (summary && summary.textContent !== label) summary.textContent = label;
      return existing;
    }
    const sub = el('div');
    const d = el('details', { attrs: { 'data-prefix': f.prefix } }, el('summary', { text: label }), sub);
    d.addEventListener('toggle', () => {
      if (d.open) void fill(f.prefix, sub);
      else openFolders.delete(f.prefix);
    });
    return d;
  });
  for (const k of l.keys) {
    const shown = k.secret ? `${k.name} = ••••• (secret, ${k.size} bytes)` : k.binary ? `${k.name} = (${k.size} bytes, binary)` : `${k.name} = ${k.value}`;
    let b = old.get(k.key) as HTMLButtonElement | undefined;
    if (!b) {
      b = el('button', { attrs: { type: 'button', 'data-key': k.key } });
      const button = b;
      button.addEventListener('click', () => select(leaves.get(button) ?? k));
    }
    leaves.set(b, k);
    if (b.textContent !== shown) b.textContent = shown;
    b.className = `key${k.secret ? ' secret' : ''}${k.key === selected ? ' selected' : ''}`;
    b.title = `mod revision ${k.modRev}`;
    next.push(b);
  }
  if (l.more > 0) next.push(el('span', { text: `… and ${l.more} more keys`, cls: 'muted' }));
  const same = next.length === into.children.length && next.every((n, i) => into.children[i] === n);
  if (!same) into.replaceChildren(...next);
  if (selected && !dirty) {
    const k = l.keys.find((x) => x.key === selected);
    if (k) showValue(k);
  }
}

function showValue(k: KvLeaf): void {
  ($('kv-key') as HTMLInputElement).value = k.key;
  const value = $('kv-value') as HTMLTextAreaElement;
  value.value = k.secret || k.binary ? '' : k.value;
  value.placeholder = k.secret ? `secret (${k.size} bytes): type a new value to replace it` : k.binary ? `binary (${k.size} bytes)` : '';
}

function select(k: KvLeaf): void {
  selected = k.key;
  dirty = false;
  for (const b of document.querySelectorAll('.tree .key')) b.classList.toggle('selected', (b as HTMLElement).dataset['key'] === k.key);
  showValue(k);
  $('kv-status').textContent = '';
}

let refreshTimer: number | undefined;
const changed = new Set<string>();

function kvChanged(keys: string[]): void {
  for (const k of keys) changed.add(k);
  if (refreshTimer !== undefined) return;
  refreshTimer = window.setTimeout(() => {
    refreshTimer = undefined;
    const keys = [...changed];
    changed.clear();
    for (const [prefix, into] of openFolders) {
      if (keys.some((k) => k.startsWith(prefix))) void fill(prefix, into).catch(() => {});
    }
  }, 200);
}

async function save(ev: Event): Promise<void> {
  ev.preventDefault();
  const key = ($('kv-key') as HTMLInputElement).value.trim();
  const value = ($('kv-value') as HTMLTextAreaElement).value;
  const token = ($('kv-token') as HTMLInputElement).value;
  const status = $('kv-status');
  if (!key) {
    status.textContent = 'pick a key in the tree, or type one';
    status.className = 'hint error';
    return;
  }
  sessionStorage.setItem('gamemesh-dashboard-token', token);
  status.textContent = 'saving…';
  status.className = 'hint';
  try {
    const res = await fetch('/api/kv', { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ key, value }) });
    const body = (await res.json()) as { revision?: number; error?: string };
    if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
    selected = key;
    dirty = false;
    status.textContent = `saved ${key} at revision ${body.revision}`;
    status.className = 'hint ok';
  } catch (err) {
    status.textContent = `not saved: ${(err as Error).message}`;
    status.className = 'hint error';
  }
}

// ---- start ------------------------------------------------------------------------------

function connect(): void {
  const conn = $('conn');
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    conn.dataset['state'] = 'live';
    conn.textContent = 'live';
  });
  events.addEventListener('error', () => {
    conn.dataset['state'] = 'lost';
    conn.textContent = 'reconnecting…';
  });
  events.addEventListener('state', (e) => render(JSON.parse((e as MessageEvent<string>).data) as State));
  events.addEventListener('kv', (e) => kvChanged(JSON.parse((e as MessageEvent<string>).data) as string[]));
}

($('kv-token') as HTMLInputElement).value = sessionStorage.getItem('gamemesh-dashboard-token') ?? '';
$('kv-value').addEventListener('input', () => (dirty = true));
$('kv-editor').addEventListener('submit', (ev) => void save(ev));
void fill('', $('kv-tree')).catch((err: Error) => ($('kv-tree').textContent = err.message));
connect();
