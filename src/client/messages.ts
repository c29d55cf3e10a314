import { messageTypesFromJSON, type MessageType } from '../wire/message-type.js';

// The gateway's own messages (proto/gamemesh/client.proto) for the client SDK.
// The Node side loads that .proto at run time through the registry, which
// reads files; a page cannot, so this is the same schema as a protobufjs JSON
// descriptor. test/client-sdk.test.ts checks that both encode byte for byte
// alike, so an edit to client.proto that is not mirrored here fails the build.

/** The client's first message: protocol version, the login token, and a free-text client name. */
export interface Handshake {
  version: number;
  /** Optional credential (a JWT from login); passed to backends in the session. */
  token: string;
  /** Free text such as "web/1.0", for logs. */
  client: string;
}

/** The agent's answer to the Handshake: the session id and the heartbeat period. */
export interface HandshakeAck {
  version: number;
  /** The client must send Ping at least this often. */
  heartbeat_sec: number;
  session_id: string;
  server_time_ms: number;
}

/** The heartbeat the client sends every heartbeat period. */
export type Ping = Record<string, never>;

/** The agent's answer to a Ping, with its clock. */
export interface Pong {
  server_time_ms: number;
}

/** Sent by the agent before it closes a client's connection: a code (KickCode) and a reason. */
export interface Kick {
  code: number;
  reason: string;
}

/** The agent's or a backend's refusal of a request (message `Error`, id 305). */
export interface ErrorReply {
  code: string;
  message: string;
}

/** A backend the client is bound to went down or came back. */
export interface BackendStatus {
  service: string;
  id: string;
  up: boolean;
}

/** Version of the client protocol in docs/protocol.md. */
export const CLIENT_PROTOCOL = 1;

const ID = '(gamemesh.id)';

/** proto/gamemesh/client.proto as a protobufjs JSON descriptor. */
export const CLIENT_DESCRIPTOR = {
  nested: {
    gamemesh: {
      nested: {
        client: {
          nested: {
            Handshake: {
              options: { [ID]: 300 },
              fields: { version: { type: 'uint32', id: 1 }, token: { type: 'string', id: 2 }, client: { type: 'string', id: 3 } },
            },
            HandshakeAck: {
              options: { [ID]: 301 },
              fields: {
                version: { type: 'uint32', id: 1 },
                heartbeat_sec: { type: 'uint32', id: 2 },
                session_id: { type: 'string', id: 3 },
                server_time_ms: { type: 'uint64', id: 4 },
              },
            },
            Ping: { options: { [ID]: 302 }, fields: {} },
            Pong: { options: { [ID]: 303 }, fields: { server_time_ms: { type: 'uint64', id: 1 } } },
            Kick: { options: { [ID]: 304 }, fields: { code: { type: 'uint32', id: 1 }, reason: { type: 'string', id: 2 } } },
            Error: { options: { [ID]: 305 }, fields: { code: { type: 'string', id: 1 }, message: { type: 'string', id: 2 } } },
            BackendStatus: {
              options: { [ID]: 306 },
              fields: { service: { type: 'string', id: 1 }, id: { type: 'string', id: 2 }, up: { type: 'bool', id: 3 } },
            },
          },
        },
      },
    },
  },
};

const mt = messageTypesFromJSON(CLIENT_DESCRIPTOR);

/** The gateway's messages, client side. */
export const ClientMessages: {
  readonly Handshake: MessageType<Handshake>;
  readonly HandshakeAck: MessageType<HandshakeAck>;
  readonly Ping: MessageType<Ping>;
  readonly Pong: MessageType<Pong>;
  readonly Kick: MessageType<Kick>;
  readonly Error: MessageType<ErrorReply>;
  readonly BackendStatus: MessageType<BackendStatus>;
} = {
  Handshake: mt<Handshake>('gamemesh.client.Handshake', 300),
  HandshakeAck: mt<HandshakeAck>('gamemesh.client.HandshakeAck', 301),
  Ping: mt<Ping>('gamemesh.client.Ping', 302),
  Pong: mt<Pong>('gamemesh.client.Pong', 303),
  Kick: mt<Kick>('gamemesh.client.Kick', 304),
  Error: mt<ErrorReply>('gamemesh.client.Error', 305),
  BackendStatus: mt<BackendStatus>('gamemesh.client.BackendStatus', 306),
};
