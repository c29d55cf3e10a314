/**
 * The cluster supervisor as an API (`gamemesh/up`): startCluster runs the
 * services of a cluster file, restarts them when they die, and stops them
 * in reverse order. See docs/cluster-file.md.
 */
export { startCluster, ClusterStartError, ClusterFileError, loadClusterFile, parseClusterFile, type Cluster, type StartOptions, type ClusterFile, type ServiceDef, type ServiceInfo, type ServiceState } from './supervisor.js';
