/** Codes a join, leave or reconnect can fail with (the client sees them in Error.code). */
export type RoomErrorCode =
  | 'room_full'
  | 'room_locked'
  | 'room_not_found'
  | 'unknown_room_type'
  /** Every node that could host a new room is above its memory threshold; the message says which and why. */
  | 'overloaded'
  | 'reconnect_expired'
  /** onCreate or onJoin threw. */
  | 'join_refused'
  | 'bad_request'
  | 'unavailable';

/** A typed refusal from rooms and matchmaking. */
export class RoomError extends Error {
  override name = 'RoomError';
  constructor(
    readonly code: RoomErrorCode,
    message: string,
  ) {
    super(message);
  }
}
