// Signal intake: everything that arrives from outside — alert labels (Alertmanager v2, webhook) and the
// receiver's spans (OTLP, from the collector or in-process) — resolved against the configuration *first*, so
// nothing downstream is keyed by what an alert or a span merely claims. Out of here come typed signals for the
// policy (firing/resolved for one owned destination of one configured service) and late answers. Intake decides
// nothing and touches no kernel.
import type { Config, ServiceConfig } from '../config/config';
import type { FlatSpan } from '../otlp/model';
import { AlertSignal, AlertTarget } from './alerts';
import { DestinationId, destinationKey, parseDestination, parseService, serviceKey } from './ipvs/identity';
import { KernelTable, destinationIdOf, ownedDestinations, serviceIdOf } from './kernel';
import { RuleEngine, OwnedAttempt } from './rules';
import { ConnectAttempt, readConnectSpan } from '../telemetry/connect-span';
import { formatAddr, parseAddr } from '../common/addr';

const canonAddr = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };

export interface LateAnswer {
  service: string;
  destination: string;
  handshakeMs: number;
}

export class Intake {
  private readonly rules: RuleEngine;

  constructor(private config: Config, private readonly kernel: () => KernelTable) {
    this.rules = new RuleEngine(config.actuator.rules);
  }

  setConfig(config: Config): void {
    this.config = config;
    this.rules.setRules(config.actuator.rules);
    this.rules.retain(new Set(config.services.map((s) => s.name)));
  }

  serviceByName(name: string): ServiceConfig | undefined {
    return this.config.services.find((s) => s.name === name);
  }

  /**
   * The configured services at a virtual address and port: of `protocol` when it is known, else all of them
   * (a TCP and a UDP service may share both; the caller refuses the ambiguity).
   */
  private servicesByVip(address: string, port: number, protocol?: string): ServiceConfig[] {
    let a: string;
    try { a = canonAddr(address); } catch { return []; }
    return this.config.services.filter((s) => s.address === a && s.port === port && (protocol === undefined || s.protocol === protocol));
  }

  owns(s: ServiceConfig, destKey: string): boolean {
    return ownedDestinations(s, this.kernel().get(serviceKey(serviceIdOf(s)))).some((d) => destinationKey(d) === destKey);
  }

  resolveTarget(labels: Record<string, string>): ReturnType<AlertTarget['resolveTarget']> {
    let svc: ServiceConfig | undefined;
    const named = labels.vipguard_service;
    if (named !== undefined) {
      svc = this.serviceByName(named);
      if (!svc) {
        try {
          const id = parseService(named);
          svc = this.config.services.find((s) => serviceKey(serviceIdOf(s)) === serviceKey(id));
        } catch { /* not an identity either */ }
      }
      if (!svc) return { ok: false, refusal: 'unknown-service', error: `unknown service '${named}': not in the configuration` };
    } else if (labels.server_address !== undefined && labels.server_port !== undefined) {
      const transport = labels.network_transport;
      const found = this.servicesByVip(labels.server_address, Number(labels.server_port), transport);
      const at = `${transport !== undefined ? `${transport}/` : ''}${labels.server_address}:${labels.server_port}`;
      if (!found.length) return { ok: false, refusal: 'unknown-service', error: `no configured service at ${at}` };
      if (found.length > 1) {
        return { ok: false, refusal: 'bad-target', error: `${found.map((s) => `${s.name} (${s.protocol})`).join(' and ')} are both at ${at}: add a network_transport label (tcp or udp) or vipguard_service` };
      }
      svc = found[0];
    } else {
      return { ok: false, refusal: 'bad-target', error: 'no service label: expected vipguard_service or server_address+server_port' };
    }
    let dest: DestinationId;
    try {
      if (labels.backend !== undefined) dest = parseDestination(labels.backend);
      else if (labels.network_peer_address !== undefined && labels.network_peer_port !== undefined) {
        dest = destinationIdOf({ address: canonAddr(labels.network_peer_address), port: Number(labels.network_peer_port) });
      } else {
        return { ok: false, refusal: 'bad-target', error: 'no destination label: expected backend (10.200.0.4:80) or network_peer_address+network_peer_port' };
      }
    } catch (e) {
      return { ok: false, refusal: 'bad-target', error: (e as Error).message };
    }
    const key = destinationKey(dest);
    if (!this.owns(svc, key)) return { ok: false, refusal: 'not-owned', error: `${key} is not a destination of ${svc.name} that vipguard owns` };
    return { ok: true, service: svc.name, serviceId: serviceIdOf(svc), destination: dest };
  }

  /** A handshake attempt resolved to a configured service and an owned destination, or undefined. */
  private owned(a: ConnectAttempt): OwnedAttempt | undefined {
    if (!a.backend) return undefined;
    const svc = this.servicesByVip(a.service.address, a.service.port, a.service.protocol)[0];
    if (!svc || !this.owns(svc, a.backend.key)) return undefined;
    return { attempt: a, service: svc.name, destination: a.backend.key };
  }

  /**
   * Spans in, signals and late answers out. Late answers come second: one may arrive in the same batch as the
   * attempt it answers (the receiver reports the attempt unanswered at its deadline and the answer arrives before
   * that span is exported); read first, it would find no quarantine to lift, and the one that follows would stay.
   */
  spans(spans: FlatSpan[], nowWall: number): { signals: { signal: AlertSignal; observedAt: number }[]; late: LateAnswer[] } {
    const attempts: OwnedAttempt[] = [];
    for (const s of spans) {
      const a = readConnectSpan(s);
      const o = a && this.owned(a);
      if (o) attempts.push(o);
    }
    const signals = this.rules.ingest(attempts, nowWall).map((hit) => {
      const svc = this.serviceByName(hit.service)!;
      return {
        observedAt: hit.observedAt,
        signal: {
          source: 'rule' as const, name: hit.rule, service: svc.name, serviceId: serviceIdOf(svc),
          destination: parseDestination(hit.destination), state: 'firing' as const,
          fingerprint: `rule:${hit.rule}:${svc.name}:${hit.destination}`,
          reason: `${hit.failures} ${hit.outcome} ${svc.protocol === 'udp' ? 'exchange' : 'handshake'}${hit.failures > 1 ? 's' : ''} within ${hit.windowMs / 1000}s (last: ${hit.last})`,
        },
      };
    });
    this.rules.sweep(nowWall);
    const late = attempts
      .filter((o) => o.attempt.late && o.attempt.outcome === 'established')
      .map((o) => ({ service: o.service, destination: o.destination, handshakeMs: o.attempt.handshakeMs }));
    return { signals, late };
  }

  get ruleWindows(): number {
    return this.rules.size;
  }
}
