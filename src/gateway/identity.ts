/**
 * One identity per connection: the session key that names the user, and the
 * rule a bind must pass. The agent applies it to every Bind, so whichever
 * service authenticates a client first decides who it is, and every backend
 * reads the same user from the session data.
 */

/** The session key holding the user id: set once per connection, never changed. */
export const SESSION_UID = 'uid';

/** Why merging `incoming` into a client's session would change its identity; undefined when it would not. */
export function identityConflict(current: Readonly<Record<string, string>>, incoming: Readonly<Record<string, string>>, client: string): string | undefined {
  const uid = incoming[SESSION_UID];
  if (uid === undefined) return undefined;
  if (uid === '') return `${SESSION_UID} must not be empty`;
  const bound = current[SESSION_UID];
  if (bound === undefined || bound === uid) return undefined;
  return `${client} is already signed in as user ${JSON.stringify(bound)}; a connection has one identity and cannot become ${JSON.stringify(uid)}`;
}
