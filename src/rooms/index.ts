export { RoomHost, MAX_OPTIONS_BYTES, type RoomHostOptions, type RoomMessageHandler } from './host.js';
export { Room, type LeaveReason, type RoomMember, type RoomOptions, type RoomTypeDef } from './room.js';
export { RoomError, type RoomErrorCode } from './errors.js';
export { Matchmaker } from './matchmaker.js';
export { R as RoomMessages } from './messages.js';
