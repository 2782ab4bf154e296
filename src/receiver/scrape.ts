// The receiver's Prometheus scrape endpoint (`receiver.prometheus.listen`): GET /metrics from the OpenTelemetry
// Prometheus exporter's reader, on a server of our own rather than the exporter's, so that it can speak TLS
// (src/common/tls.ts), serve a renewed certificate after a reload, and fail the start when its port cannot be
// bound instead of logging that through the OpenTelemetry diagnostics nobody reads.
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { TlsMaterial, closeServer, httpServer, renewTls } from '../common/tls';
import { serveMetrics } from '../telemetry/prometheus';

export interface ScrapeServerOptions {
  host: string;
  /** 0 picks a free one */
  port: number;
  tls?: TlsMaterial;
  /** a refused TLS handshake (plain HTTP, a missing or foreign client certificate) */
  onRefused?: (peer: string, e: Error) => void;
}

export class ScrapeServer {
  private server?: http.Server;

  constructor(private readonly reader: PrometheusExporter, private readonly opts: ScrapeServerOptions) {}

  /** Listens; resolves to the bound port. */
  async start(): Promise<number> {
    const server = httpServer(this.opts.tls, { requestTimeout: 10_000, headersTimeout: 10_000 }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404).end();
      } else if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      } else {
        serveMetrics(this.reader, req, res);
      }
    }, this.opts.onRefused);
    server.maxConnections = 16;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`binding the receiver's Prometheus endpoint to ${this.opts.host}:${this.opts.port}: ${e.message}`)));
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /** On reload: the certificate, key and client CA for new connections (TLS on or off takes a restart). */
  setTls(tls: TlsMaterial): void {
    if (!this.opts.tls) throw new Error('the Prometheus endpoint was started without TLS: turning it on takes a restart');
    renewTls(this.server, tls);
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await closeServer(s);
  }
}
