// The game-client SDK. Browser-safe: nothing here (or imported from here)
// touches Node modules, Buffer or the `ws` package; test/client-sdk.test.ts
// enforces it. The Node-only TCP transport lives in src/client-node.
export { GameClient, type ClientState, type CloseInfo, type GameClientOptions, type HandshakeInfo, type ReconnectingInfo, type RequestOptions } from './client.js';
export { ClientError, type ClientErrorCode } from './errors.js';
export { login, LoginError, type LoginAnswer } from './login.js';
export { decodeWsFrame, encodeTcpFrame, encodeWsFrame, FrameError, StreamFrameDecoder, DEFAULT_CLIENT_MAX_FRAME, TCP_HEADER_BYTES, WS_HEADER_BYTES, type FrameListener } from './frame.js';
export { CLIENT_DESCRIPTOR, CLIENT_PROTOCOL, ClientMessages, type BackendStatus, type ErrorReply, type Handshake, type HandshakeAck, type Kick, type Ping, type Pong } from './messages.js';
export { DEFAULT_RECONNECT, type ReconnectOptions } from './reconnect.js';
export type { Transport, TransportFactory } from './transport.js';
export { wsTransport, type WebSocketConstructor, type WebSocketLike, type WsTransportOptions } from './ws-transport.js';
export { asBytes, messageTypesFromJSON, type MessageType } from '../wire/message-type.js';
export { KickCode, type KickCodeValue } from '../gateway/kick.js';
export { Room, type JoinOptions, type RoomLeaveInfo } from './room.js';
export { ROOM_DESCRIPTOR, RoomMessages, type JoinMethod, type JoinRoom, type LeaveRoom, type RoomJoined, type RoomLeft, type RoomReady } from './room-messages.js';
