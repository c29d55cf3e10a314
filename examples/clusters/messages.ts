// The example's message types, read from clusters.proto next to the sources.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageRegistry } from '../../src/index.js';

const PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'clusters', 'clusters.proto');
const registry = new MessageRegistry().load(PROTO);

export interface Enter { player: string; game: string }
export interface Roster { battle: string; players: string[] }
export interface Ack { ok: boolean }
export interface Whisper { from: string; text: string; to_player: string }
export interface FindBattleReq { player: string; match: string }
export interface WhisperReq { to: string; to_player: string; text: string }
export interface Whispered { from: string; text: string }

export const M = {
  Enter: registry.type<Enter>('clusters.Enter'),
  Roster: registry.type<Roster>('clusters.Roster'),
  Ack: registry.type<Ack>('clusters.Ack'),
  Whisper: registry.type<Whisper>('clusters.Whisper'),
  FindBattleReq: registry.type<FindBattleReq>('clusters.FindBattleReq'),
  WhisperReq: registry.type<WhisperReq>('clusters.WhisperReq'),
  Whispered: registry.type<Whispered>('clusters.Whispered'),
};

/** Logical-address types, fixed so every cluster agrees on them. */
export const GAME_TYPE = 10;
export const BATTLE_TYPE = 20;
