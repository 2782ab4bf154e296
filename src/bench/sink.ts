// A deliberately cheap OTLP/gRPC endpoint for the host benchmarks: it accepts trace and metric exports and only
// counts requests and bytes (no protobuf decoding), so the collector side steals as little CPU as possible from the
// receiver under test on a 2-core machine. Answers with the empty Export*ServiceResponse (zero bytes).
import * as grpc from '@grpc/grpc-js';

export class CountingSink {
  requests = 0;
  bytes = 0;
  port = 0;
  private server?: grpc.Server;

  async start(): Promise<number> {
    const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
    const method = (path: string) => ({
      Export: {
        path, requestStream: false, responseStream: false,
        requestSerialize: raw.serialize, requestDeserialize: raw.deserialize,
        responseSerialize: raw.serialize, responseDeserialize: raw.deserialize,
      },
    });
    const handler: grpc.handleUnaryCall<Buffer, Buffer> = (call, cb) => {
      this.requests++;
      this.bytes += call.request.length;
      cb(null, Buffer.alloc(0));
    };
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
    this.server.addService(method('/opentelemetry.proto.collector.trace.v1.TraceService/Export'), { Export: handler });
    this.server.addService(method('/opentelemetry.proto.collector.metrics.v1.MetricsService/Export'), { Export: handler });
    this.port = await new Promise<number>((resolve, reject) => {
      this.server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)));
    });
    return this.port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => { const t = setTimeout(() => { s.forceShutdown(); r(); }, 2000); s.tryShutdown(() => { clearTimeout(t); r(); }); });
  }
}
