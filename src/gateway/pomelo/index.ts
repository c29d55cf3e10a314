export { PomeloPorts, type PomeloPortOptions } from './ports.js';
export { PomeloSchema, PomeloSchemaError, routeProblem, type PomeloMessage, type PomeloMessageJSON, type PomeloSchemaJSON } from './schema.js';
export { PomeloTable, type PomeloProtos } from './table.js';
export { BodyError, encodeJsonBody, protobufToJson } from './json.js';
export { addPomeloProto, decodePomeloProtobuf, type PomeloProto } from './protobuf.js';
export { decodeClientMessage, MessageKind, pushPackage, responsePackage, type ClientMessage } from './message.js';
export { encodePackage, PackageDecoder, PackageType, PomeloProtocolError } from './package.js';
export { BACKEND_STATUS_ROUTE, RES_FAIL, RES_OK, UNKNOWN_ROUTE_MSG_ID } from './session.js';
