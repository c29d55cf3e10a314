/**
 * The echo service for @grpc/grpc-js, loaded with @grpc/proto-loader from
 * examples/echo/echo.proto (shared by the rpc bench and its grpc fixture).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface EchoReq {
  text: string;
  n: number;
}
export interface EchoResp {
  text: string;
  n: number;
  server: string;
}

/** The typed shape of the client that loadPackageDefinition builds for `service Echo`. */
export interface EchoClient extends grpc.Client {
  Say(request: EchoReq, callback: grpc.requestCallback<EchoResp>): grpc.ClientUnaryCall;
}

/** This file runs as dist/bench/grpc-echo-def.js. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function echoService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(path.join(ROOT, 'examples', 'echo', 'echo.proto'), {
    keepCase: true,
    longs: Number,
    defaults: true,
    includeDirs: [path.join(ROOT, 'proto')],
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { echo: { Echo: grpc.ServiceClientConstructor } };
  return pkg.echo.Echo;
}

export function echoClient(port: number): EchoClient {
  const Echo = echoService();
  return new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
}
