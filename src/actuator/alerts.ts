// What every alert input (embedded rules, Alertmanager v2 API, Alertmanager webhook) hands the actuator: a
// verdict about one destination of one configured service. The quarantine policy decides what to do with it.
import type { ServiceId, DestinationId } from './ipvs/identity';

export type AlertSource = 'rule' | 'alertmanager' | 'webhook';

export interface AlertSignal {
  /** which input, and which rule or alertname inside it (e.g. rule "handshake-failures", alertname "BackendDown") */
  source: AlertSource;
  name: string;
  /** the configured service name (config `services[].name`) */
  service: string;
  /** canonical IPVS identities (src/actuator/ipvs/identity.ts) */
  serviceId: ServiceId;
  destination: DestinationId;
  state: 'firing' | 'resolved';
  /** the alert's own end time, when it has one (Alertmanager endsAt); firing alerts past it are treated as resolved */
  endsAt?: Date;
  /** stable identity of the alert for idempotence (Alertmanager fingerprint, or labels hashed) */
  fingerprint: string;
  /** free text for logs and status: the rule's summary or the alert's annotations.summary */
  reason: string;
}

/**
 * Why the actuator refused a signal, in domain words. Protocols map these at their edge (HTTP statuses only in
 * `http/`, telemetry's `vipguard.verdict` in telemetry.ts); nothing inside the actuator speaks a protocol.
 *   unknown-service   the labels name no configured service
 *   not-owned         the service is configured, but the destination is not one vipguard owns in it
 *   bad-target        labels present but unusable (no destination label, malformed address)
 *   cap               the service's quarantine cap is reached (panic): quarantining more would drain it
 *   rate-limited      the actuator's quarantine rate limit is reached
 */
export type Refusal = 'unknown-service' | 'not-owned' | 'bad-target' | 'cap' | 'rate-limited';

export type SignalVerdict =
  | { accepted: true; action: 'quarantined' | 'extended' | 'released' | 'unchanged'; until?: Date }
  | { accepted: false; refusal: Refusal; error: string };

/**
 * The actuator side of the contract. `resolveTarget` maps an alert's target labels — already reduced by
 * `AlertLabels.target()` (labels.ts) to `vipguard_service` or `server_address`+`server_port`, and `backend` or
 * `network_peer_address`+`network_peer_port` — to a configured service and one of its owned destinations, or says
 * precisely why not; `submit` applies signals (idempotently: the same firing alert twice extends, never doubles
 * the backoff).
 */
export interface AlertTarget {
  resolveTarget(labels: Record<string, string>):
    | { ok: true; service: string; serviceId: ServiceId; destination: DestinationId }
    | { ok: false; refusal: Refusal; error: string };
  submit(signal: AlertSignal): SignalVerdict;
}
