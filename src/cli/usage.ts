export const usage = `usage: gamemesh <command> [options]

commands:
  init <folder> [--name NAME] [--gamemesh SPEC]
      a new game project from the package's template: cd <folder> && npm install && npm start
  discovery [--addr 127.0.0.1:8900] [--datafile PATH] [--token SECRET] [--grace-ms 3000] [--no-fsync] [--admin HOST:PORT]
      run the discovery and KV server (token also from GAMEMESH_TOKEN; admin port from GAMEMESH_ADMIN)
  sd [--addr host:port | etcd://host:2379[,host:2379...][/prefix]] [--token T | --tokenfile F] <verb>
      viewsvc | clearsvc | viewkey [PREFIX] | getvalue KEY | setvalue KEY VALUE
      deletevalue KEY | clearvalue | watch PREFIX | disable ID | enable ID
      (VALUE "-" reads standard input; token also from GAMEMESH_TOKEN or GAMEMESH_TOKEN_FILE,
       else from data/<cluster>/cluster.token as gamemesh up keeps it;
       etcd credentials from GAMEMESH_ETCD_USER/PASSWORD/CA/CERT/KEY, see docs/etcd.md)
  gen <proto dir> --out <dir> [--import-from gamemesh]
      typed TypeScript (messages, ids, service stubs) and routes.json from .proto files;
      a relative --import-from is written as seen from <dir>
  agent [service flags] [--tcp-port 0] [--ws-port 0] [--host 127.0.0.1] ...
      run a gateway (agent); \`gamemesh agent --help\` lists every flag
  routes push FILE | routes show [--sdaddr host:port] [--token T]
      upload a route table (routes.json from gen) to the KV, or print the current one
  login [service flags] [--http 127.0.0.1:8080] [--static DIR] [--demo] [--jwt-secret S] (HTTP login: JWT + gateway address; web page)
  hub [service flags] [--max-channels 10000] [--max-channel-length 256] [--max-body 1m] (the pub/sub hub, docs/hub.md)
  harbor [service flags] --center ADDR [--center-token T] [--max-queue 2m] (a harbor: routes between clusters, docs/clusters.md)
  up <cluster.json> [--sdaddr ADDR] [--http HOST:PORT] [--var K=V] (the whole cluster as local processes, docs/cluster-file.md)
  up <cluster.json> --roll SERVICE [--roll SERVICE...] (rolling upgrade of a running cluster's service, docs/operations.md)
  status [--addr host:port] [--token T] [--json] (every service: version, state, clients, memory, from its admin port)
  drain ID [--addr host:port] [--token T] (the node takes no new work and exits once its last client is gone)
  client --login URL --user NAME [--password P] [--tcp] (the demo's terminal chat: /gold /level /stats /who /w NAME text /quit)
  client --login URL --user NAME --proto DIR --send PKG.MSG [--json '{...}'] (one request of your project's messages; the answer as JSON)
  dashboard [--http 127.0.0.1:8090] [--sdaddr host:port] [--token T] (a live web page of the cluster: services, links, load, KV, routes; docs/observability.md)
  bot --login URL --proto DIR --send PKG.MSG [--clients 10] [--duration 10] [--rate 1] (load bots on your project's messages)
  bot --login URL [--clients 10] [--duration 20] [--ramp S] [--tcp] [--json FILE] (demo load bots: progress, then p50/p95/p99 and errors, --json: the latency histogram as JSON; exit 1 on errors)
`;
