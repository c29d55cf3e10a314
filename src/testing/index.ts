/**
 * `gamemesh/testing`: a whole cluster inside a test. See docs/testing.md.
 *
 * ```ts
 * const cluster = await startTestCluster({ services: [{ name: 'game', start: (config) => startGame({ config }) }], routes, login: true });
 * const alice = await cluster.client({ account: 'alice' });
 * await cluster.stop();
 * ```
 */
export { startTestCluster, type Stoppable, type TestClient, type TestClientOptions, type TestCluster, type TestClusterOptions, type TestLoginOptions, type TestService, type TestServiceConfig } from './cluster.js';
export { TestClusterError } from './errors.js';
