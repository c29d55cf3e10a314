export const usage = `usage: gamemesh <command> [options]

commands:
  discovery [--addr 127.0.0.1:8900] [--datafile PATH] [--token SECRET] [--grace-ms 3000] [--no-fsync]
      run the discovery and KV server (token also from GAMEMESH_TOKEN)
  sd [--addr host:port] [--token T] <verb>
      viewsvc | clearsvc | viewkey [PREFIX] | getvalue KEY | setvalue KEY VALUE
      deletevalue KEY | clearvalue | watch PREFIX
      (VALUE "-" reads standard input; token also from GAMEMESH_TOKEN)
`;
