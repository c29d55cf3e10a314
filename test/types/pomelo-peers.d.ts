// Types for the peer libraries the pomelo tests and bench drive (devDependencies without their own types).
declare module 'pomelo-protocol' {
  interface DecodedPackage {
    type: number;
    body: Buffer | null;
  }
  interface DecodedMessage {
    id: number;
    type: number;
    compressRoute: number;
    route: string | number | null;
    body: Buffer;
    compressGzip: number;
  }
  const Protocol: {
    strencode(s: string): Buffer;
    strdecode(b: Uint8Array): string;
    Package: {
      TYPE_HANDSHAKE: 1;
      TYPE_HANDSHAKE_ACK: 2;
      TYPE_HEARTBEAT: 3;
      TYPE_DATA: 4;
      TYPE_KICK: 5;
      encode(type: number, body?: Uint8Array | null): Buffer;
      decode(buf: Uint8Array): DecodedPackage | DecodedPackage[];
    };
    Message: {
      TYPE_REQUEST: 0;
      TYPE_NOTIFY: 1;
      TYPE_RESPONSE: 2;
      TYPE_PUSH: 3;
      encode(id: number, type: number, compressRoute: number | boolean, route: string | number | null, msg?: Uint8Array | null, compressGzip?: boolean): Buffer;
      decode(buf: Uint8Array): DecodedMessage;
    };
  };
  export default Protocol;
}

declare module 'pomelo-protobuf' {
  const protobuf: {
    init(opts: { encoderProtos?: object; decoderProtos?: object }): void;
    encode(route: string, msg: object): Buffer | null;
    decode(route: string, buf: Buffer): Record<string, unknown> | null;
    parse(json: object): Record<string, object>;
  };
  export default protobuf;
}
