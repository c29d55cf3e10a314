/** The hub behaviour suite on the hub service, in this process on real sockets. */
import { startHub } from '../src/hub/server.js';
import type { ServiceNode } from '../src/service/node.js';
import { startNode } from './helpers/mesh.js';
import { hubBehaviour } from './suites/hub-behaviour.js';

hubBehaviour({
  name: 'hub service',
  async start(defer, sdaddr) {
    let node: ServiceNode | undefined;
    const up = async () => {
      node = await startNode(defer, sdaddr, { name: 'hub', type: 2 }, (n) => {
        startHub(n);
      });
    };
    await up();
    return {
      config: {},
      async restart() {
        await node?.stop();
        await up();
      },
    };
  },
});
