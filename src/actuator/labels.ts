// Which alert labels name a service and a destination. vipguard acts on its own label keys only, unless the
// configuration lists generic ones (`actuator.alertLabels`): Prometheus sends every alert of every rule to every
// alertmanager it knows, and a `service` or `backend` label on some other team's alert means something else there.
//
// Own keys are the ones nobody but vipguard writes, or writes in vipguard's sense:
//   vipguard_service                        the configured service name (or its canonical form tcp/10.99.0.1:80)
//   vipguard_backend                        a destination as host:port (10.200.0.4:80, [fd00::2]:80)
//   server_address + server_port            the virtual service, as vipguard's receiver telemetry names it
//     (+ network_transport, tcp or udp, when a TCP and a UDP service share them)
//   network_peer_address + network_peer_port  the real backend, likewise
// (OTel attribute dots become underscores in Prometheus.) Generic keys (`service`, `backend`, `instance`, …) count
// only when listed, and only after the own ones.

/** Generic single-label keys the configuration adds (`actuator.alertLabels`). */
export interface AlertLabelConfig {
  /** each holds a configured service name or a canonical service (tcp/10.99.0.1:80) */
  service: readonly string[];
  /** each holds a destination as host:port */
  destination: readonly string[];
}

export const NO_EXTRA_LABELS: AlertLabelConfig = { service: [], destination: [] };

export const OWN_LABELS = {
  service: ['vipguard_service'],
  serviceAddress: ['server_address', 'server_port'],
  destination: ['vipguard_backend'],
  destinationAddress: ['network_peer_address', 'network_peer_port'],
} as const;

/**
 * What an alert's labels say, reduced to the one service and the one destination they name, in the label keys
 * `AlertTarget.resolveTarget` reads (`vipguard_service` or `server_address`+`server_port`; `backend` or
 * `network_peer_address`+`network_peer_port`). Nothing else of the alert's labels reaches the target.
 */
export type TargetLabels =
  | { ok: true; labels: Record<string, string> }
  | { ok: false; missing: 'everything' | 'service' | 'destination'; error: string };

export class AlertLabels {
  readonly serviceKeys: readonly string[];
  readonly destinationKeys: readonly string[];

  constructor(extra: AlertLabelConfig = NO_EXTRA_LABELS) {
    this.serviceKeys = [...new Set([...OWN_LABELS.service, ...extra.service])];
    this.destinationKeys = [...new Set([...OWN_LABELS.destination, ...extra.destination])];
  }

  /** Every key that makes an alert one for vipguard, in preference order (for messages). */
  names(): string[] {
    return [...this.serviceKeys, `${OWN_LABELS.serviceAddress.join('+')}`, ...this.destinationKeys, `${OWN_LABELS.destinationAddress.join('+')}`];
  }

  /** Whether any target key is present with a non-empty value (of any type): the alert is addressed to vipguard. */
  addresses(labels: object): boolean {
    const has = (k: string) => Object.hasOwn(labels, k) && (labels as Record<string, unknown>)[k] !== '';
    return [...this.serviceKeys, ...this.destinationKeys, ...OWN_LABELS.serviceAddress, ...OWN_LABELS.destinationAddress].some(has);
  }

  target(labels: Readonly<Record<string, string>>): TargetLabels {
    const out: Record<string, string> = Object.create(null);
    const first = (keys: readonly string[]) => keys.find((k) => Object.hasOwn(labels, k));
    const pair = (keys: readonly string[]) => keys.every((k) => Object.hasOwn(labels, k));
    const svc = first(this.serviceKeys);
    if (svc !== undefined) out.vipguard_service = labels[svc];
    else if (pair(OWN_LABELS.serviceAddress)) {
      for (const k of OWN_LABELS.serviceAddress) out[k] = labels[k];
      // A TCP and a UDP service may share the address and port: the transport tells them apart.
      if (Object.hasOwn(labels, 'network_transport')) out.network_transport = labels.network_transport;
    }
    const dest = first(this.destinationKeys);
    if (dest !== undefined) out.backend = labels[dest];
    else if (pair(OWN_LABELS.destinationAddress)) for (const k of OWN_LABELS.destinationAddress) out[k] = labels[k];
    const hasService = svc !== undefined || pair(OWN_LABELS.serviceAddress);
    const hasDest = dest !== undefined || pair(OWN_LABELS.destinationAddress);
    if (hasService && hasDest) return { ok: true, labels: out };
    const hint = 'generic labels such as service or backend count only when listed in actuator.alertLabels';
    if (!hasService && !hasDest) {
      return { ok: false, missing: 'everything', error: `names no service or destination: expected labels among ${this.names().join(', ')} (${hint})` };
    }
    if (!hasService) {
      return { ok: false, missing: 'service', error: `names no service: expected one of ${[...this.serviceKeys, OWN_LABELS.serviceAddress.join('+')].join(', ')} (${hint})` };
    }
    return { ok: false, missing: 'destination', error: `names no destination: expected one of ${[...this.destinationKeys, OWN_LABELS.destinationAddress.join('+')].join(', ')} (${hint})` };
  }
}
