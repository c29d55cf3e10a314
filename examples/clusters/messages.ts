// The example's message types, read from clusters.proto next to the sources.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageRegistry } from '../../src/index.js';

const PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'clusters', 'clusters.proto');
const registry = new MessageRegistry().load(PROTO);

export interface Enter { player: string; game: string }
export interface Roster { battle: string; players: string[] }
export interface Join { player: string; match: string }
export interface Tell { to: string; text: string }
export interface Ack { ok: boolean }
export interface Whisper { from: string; text: string }
export type Inbox = Record<string, never>;
export interface InboxList { texts: string[] }

export const M = {
  Enter: registry.type<Enter>('clusters.Enter'),
  Roster: registry.type<Roster>('clusters.Roster'),
  Join: registry.type<Join>('clusters.Join'),
  Tell: registry.type<Tell>('clusters.Tell'),
  Ack: registry.type<Ack>('clusters.Ack'),
  Whisper: registry.type<Whisper>('clusters.Whisper'),
  Inbox: registry.type<Inbox>('clusters.Inbox'),
  InboxList: registry.type<InboxList>('clusters.InboxList'),
};

/** Logical-address types, fixed so every cluster agrees on them. */
export const GAME_TYPE = 10;
export const BATTLE_TYPE = 20;
export const PLAYER_TYPE = 30;
