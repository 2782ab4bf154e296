// An OTLP/gRPC receiver (traces and metrics) on @grpc/grpc-js. Requests arrive as raw bytes and are decoded
// by src/otlp/proto.ts, so a malformed payload is refused with INVALID_ARGUMENT instead of breaking the call
// machinery, and the in-process path (`ingest*`) runs exactly the same decoder.
import * as grpc from '@grpc/grpc-js';
import { decode, encode, messageType, METRICS_REQUEST, METRICS_RESPONSE, OtlpLimitError, TRACE_REQUEST, TRACE_RESPONSE } from './proto';
import { bearer, isLoopback, tokenMatches } from '../common/token';
import { TlsMaterial, secureContext } from '../common/tls';

export type TraceHandler = (req: object) => void;
export type MetricsHandler = (req: object) => void;

export interface OtlpServerOptions {
  /** host:port; port 0 picks a free one */
  listen: string;
  /** required when `listen` is not loopback; checked as `authorization: Bearer <token>` */
  token?: string;
  /** serve TLS with these (src/common/tls.ts); with a client CA, only clients with a certificate it signed */
  tls?: TlsMaterial;
  maxMessageBytes?: number;
  onTraces?: TraceHandler;
  onMetrics?: MetricsHandler;
}

export interface OtlpServerStats {
  requests: number;
  refused: number;
  lastError?: string;
}

function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  if (!m) throw new Error(`invalid listen address '${listen}': expected HOST:PORT, e.g. 127.0.0.1:4319`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

function service(name: string, responseType: string): grpc.ServiceDefinition {
  return {
    Export: {
      path: `/${name}/Export`,
      requestStream: false,
      responseStream: false,
      requestSerialize: raw.serialize,
      requestDeserialize: raw.deserialize,
      responseSerialize: (v: object) => encode(responseType, v),
      responseDeserialize: (b: Buffer) => decode(responseType, b),
    },
  };
}

/**
 * Server credentials whose certificate can change while the server runs. grpc-js applies a credentials object's
 * updates to its listening sockets (`setSecureContext`, the way its own certificate providers rotate), so a reload
 * serves the renewed certificate to new connections without rebinding the port.
 */
class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(tls: TlsMaterial) {
    const mutual = tls.clientCA !== undefined;
    super({ requestCert: mutual, rejectUnauthorized: mutual }, secureContext(tls));
  }

  update(tls: TlsMaterial): void {
    this.updateSecureContextOptions(secureContext(tls));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export class OtlpServer {
  readonly stats: OtlpServerStats = { requests: 0, refused: 0 };
  private server?: grpc.Server;
  private credentials?: ReloadableServerCredentials;
  port = 0;

  constructor(private readonly opts: OtlpServerOptions) {
    const { host } = splitHostPort(opts.listen);
    if (!isLoopback(host) && !opts.token) {
      throw new Error(`refusing to serve OTLP on ${opts.listen} without a token: set a token, or listen on loopback`);
    }
  }

  /**
   * Decodes and dispatches a trace export request (the in-process path and the gRPC path alike). `limited` (the
   * gRPC path) refuses requests beyond OTLP_LIMITS; the in-process receiver's own batches may be larger.
   */
  ingestTraces(bytes: Uint8Array, limited = false): void {
    const req = decode<object>(TRACE_REQUEST, bytes, { limited });
    this.opts.onTraces?.(req);
  }

  ingestMetrics(bytes: Uint8Array, limited = false): void {
    const req = decode<object>(METRICS_REQUEST, bytes, { limited });
    this.opts.onMetrics?.(req);
  }

  private handler(ingest: (b: Buffer) => void): grpc.handleUnaryCall<Buffer, object> {
    return (call, callback) => {
      this.stats.requests++;
      if (this.opts.token && !tokenMatches(bearer(call.metadata.get('authorization')[0] as string | undefined), this.opts.token)) {
        this.stats.refused++;
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong bearer token' });
        return;
      }
      try {
        ingest(call.request);
      } catch (e) {
        this.stats.refused++;
        this.stats.lastError = (e as Error).message;
        const tooBig = e instanceof OtlpLimitError;
        callback({ code: tooBig ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT, details: `decoding OTLP request: ${(e as Error).message}` });
        return;
      }
      callback(null, {});
    };
  }

  async start(): Promise<number> {
    const { host, port } = splitHostPort(this.opts.listen);
    const max = this.opts.maxMessageBytes ?? 4 << 20;
    // Parse the .proto files now, not at the first request (27 ms natively, many times that under emulation): the
    // first request may carry the first failed handshake, whose quarantine should not wait for it.
    for (const t of [TRACE_REQUEST, METRICS_REQUEST, TRACE_RESPONSE, METRICS_RESPONSE]) messageType(t);
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': max });
    this.server.addService(service('opentelemetry.proto.collector.trace.v1.TraceService', TRACE_RESPONSE), {
      Export: this.handler((b) => this.ingestTraces(b, true)),
    });
    this.server.addService(service('opentelemetry.proto.collector.metrics.v1.MetricsService', METRICS_RESPONSE), {
      Export: this.handler((b) => this.ingestMetrics(b, true)),
    });
    const bindHost = host.includes(':') ? `[${host}]` : host;
    this.credentials = this.opts.tls ? new ReloadableServerCredentials(this.opts.tls) : undefined;
    this.port = await new Promise<number>((resolve, reject) => {
      this.server!.bindAsync(`${bindHost}:${port}`, this.credentials ?? grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(new Error(`binding OTLP/gRPC server to ${this.opts.listen}: ${err.message}`));
        else resolve(p);
      });
    });
    return this.port;
  }

  /** On reload: the certificate, key and client CA for new connections (TLS or mutual TLS on or off takes a restart). */
  setTls(tls: TlsMaterial): void {
    if (!this.opts.tls) throw new Error('the OTLP/gRPC receiver was started without TLS: turning it on takes a restart');
    this.credentials?.update(tls);
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { s.forceShutdown(); resolve(); }, 2000);
      s.tryShutdown(() => { clearTimeout(t); resolve(); });
    });
  }
}
