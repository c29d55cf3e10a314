/** A harness call that cannot be done: a bad option, an unknown part, a cluster already stopped, a part that did not come up. */
export class TestClusterError extends Error {
  override name = 'TestClusterError';
}
