// Every span, metric and attribute vipguard emits, declared once. docs/telemetry.md is generated from this file
// (`vipguard docs telemetry`), the receiver's emitters take their names from it, and tests check that what
// arrives over OTLP uses only what is declared here, with the declared types and units.
//
// Names follow the OpenTelemetry semantic conventions where one exists (server.*, network.*, error.type — taken
// from @opentelemetry/semantic-conventions' stable entry point; process.pid, still in development there, is
// checked against its registry by test/unit/resource.test.ts); vipguard's own live under `vipguard.`.
import {
  ATTR_ERROR_TYPE, ATTR_NETWORK_LOCAL_ADDRESS, ATTR_NETWORK_LOCAL_PORT, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_TRANSPORT, ATTR_NETWORK_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT,
} from '@opentelemetry/semantic-conventions';

export type AttrType = 'string' | 'int' | 'double' | 'boolean';

export interface AttributeSpec {
  type: AttrType;
  description: string;
  /** closed set of values, when there is one */
  values?: readonly string[];
  example?: string | number;
}


export const ATTEMPT_OUTCOME_VALUES = ['established', 'refused', 'unanswered', 'unreachable', 'abandoned'] as const;
export const CONNECTION_OUTCOME_VALUES = ['closed', 'reset'] as const;

export const ATTRIBUTES = {
  [ATTR_SERVER_ADDRESS]: { type: 'string', description: 'The virtual service address the client connected to (the IPVS virtual IP).', example: '10.99.0.1' },
  [ATTR_SERVER_PORT]: { type: 'int', description: 'The virtual service port.', example: 80 },
  [ATTR_NETWORK_PEER_ADDRESS]: { type: 'string', description: 'The real backend IPVS chose for this attempt; absent when unknown (no kprobes, ip_vs not loaded).', example: '10.200.0.2' },
  [ATTR_NETWORK_PEER_PORT]: { type: 'int', description: 'The real backend port.', example: 8080 },
  [ATTR_NETWORK_LOCAL_ADDRESS]: { type: 'string', description: 'The client socket\'s source address.', example: '10.200.0.1' },
  [ATTR_NETWORK_LOCAL_PORT]: { type: 'int', description: 'The client socket\'s source port; absent while unbound.', example: 41234 },
  [ATTR_NETWORK_TRANSPORT]: { type: 'string', description: 'The virtual service\'s protocol: `tcp` for handshakes and connections, `udp` for UDP exchanges.', values: ['tcp', 'udp'] },
  [ATTR_NETWORK_TYPE]: { type: 'string', description: 'IP version of the virtual service.', values: ['ipv4', 'ipv6'] },
  [ATTR_ERROR_TYPE]: { type: 'string', description: 'Why a handshake failed (same values as vipguard.outcome, failures only) or `reset` for a reset connection.', values: ['refused', 'unanswered', 'unreachable', 'abandoned', 'reset'] },
  'process.pid': { type: 'int', description: 'The connecting process, when the kernel saw the connect in its context.', example: 1234 },
  'vipguard.service': { type: 'string', description: 'The configured name of the virtual service; `unconfigured` in trace-everything mode.', example: 'web' },
  'vipguard.outcome': { type: 'string', description: 'How the handshake attempt, the UDP exchange or the connection ended. For UDP, `established` means answered, `unanswered` a wait past the deadline, `refused`/`unreachable` an ICMP error.', values: [...ATTEMPT_OUTCOME_VALUES, ...CONNECTION_OUTCOME_VALUES] },
  'vipguard.attempt': { type: 'int', description: 'TCP: which SYN of the socket this attempt is: 0 for the original, n for the n-th retransmit. UDP: which failed exchange of the flow (0 for the first).', example: 0 },
  'vipguard.syn_retransmits': { type: 'int', description: 'SYN retransmits of the socket when the attempt ended (TCP).', example: 1 },
  'vipguard.udp.datagrams': { type: 'int', description: 'UDP: datagrams the exchange covers (unanswered: outstanding when the wait was declared).', example: 3 },
  'vipguard.handshake.duration': { type: 'double', description: 'Seconds from the attempt\'s SYN (UDP: the exchange\'s oldest unanswered datagram) to its outcome.', example: 0.0012 },
  'vipguard.handshake.early': { type: 'boolean', description: 'Declared unanswered at the handshake deadline (learned from the backend\'s RTTs), before the kernel retransmitted the SYN. Every unanswered UDP exchange is.', example: 'true' },
  'vipguard.handshake.late': { type: 'boolean', description: 'The real answer to an attempt (or UDP wait) already reported unanswered at its deadline: the backend is slow, not dead.', example: 'true' },
  'vipguard.reason': { type: 'string', description: 'Why events were lost.', values: ['ring_buffer_full', 'handshake_map_full', 'untracked', 'export_queue_full', 'export_failed'] },
  'vipguard.destination': { type: 'string', description: 'An IPVS destination in canonical form.', example: '10.200.0.4:8080' },
  'vipguard.action': { type: 'string', description: 'What the actuator changed in the kernel.', values: ['quarantine', 'restore', 'config', 'add-service', 'edit-service', 'add-destination', 'remove-destination'] },
  'vipguard.result': { type: 'string', description: 'Whether the kernel accepted the change.', values: ['ok', 'error'] },
  'vipguard.source': { type: 'string', description: 'Which alert input a signal came from.', values: ['rule', 'alertmanager', 'webhook'] },
  'vipguard.verdict': { type: 'string', description: 'What the policy made of a signal.', values: ['quarantined', 'extended', 'released', 'unchanged', 'refused_cap', 'refused_rate', 'refused_unknown'] },
  'vipguard.hold': { type: 'string', description: 'What the RST hold-back (actuator.holdRefusals) did with a refused connect: held it back once, or let it through and why (refused again after a hold, fewer than 2 destinations in service, a held connect of the service was refused anyway moments ago, no memory to remember it).', values: ['held', 'passed_again', 'passed_few_in_service', 'passed_rescue_failed', 'passed_no_memory'] },
  'vipguard.quarantine.level': { type: 'int', description: 'Backoff level of the quarantine (0 = first offence).', example: 0 },
  'vipguard.quarantine.until': { type: 'string', description: 'When the quarantine ends (RFC 3339).', example: '2026-11-26T08:00:10Z' },
} as const satisfies Record<string, AttributeSpec>;

export type AttributeName = keyof typeof ATTRIBUTES;

export interface SpanSpec {
  kind: 'client' | 'internal';
  /** which process emits it */
  emitter?: 'receiver' | 'actuator';
  description: string;
  attributes: readonly AttributeName[];
  /** attributes present only sometimes */
  optional: readonly AttributeName[];
  links?: string;
  status: string;
}

const ENDPOINT_ATTRS = ['server.address', 'server.port', 'network.transport', 'network.type', 'network.local.address', 'vipguard.service', 'vipguard.outcome'] as const;

export const SPANS = {
  'vipguard.connect': {
    kind: 'client',
    description: 'One TCP handshake attempt through a virtual service: from the SYN until its outcome is known — the SYN-ACK, an RST, or the first SYN retransmit (`unanswered`). A socket whose SYN is retransmitted or rescheduled by IPVS to another backend has one span per attempt, each a child of the previous one, all in one trace. For a UDP service (`network.transport` = `udp`) one failed request/reply exchange of a flow (client socket): `unanswered` when its oldest datagram waited past the deadline, `refused`/`unreachable` on an ICMP error, and `established` with `vipguard.handshake.late` for a reply after an `unanswered`; answered exchanges are counted in `vipguard.udp.exchanges`, not spanned. A flow\'s spans chain into one trace.',
    attributes: [...ENDPOINT_ATTRS, 'vipguard.attempt', 'vipguard.handshake.duration'],
    optional: ['network.peer.address', 'network.peer.port', 'network.local.port', 'process.pid', 'error.type', 'vipguard.syn_retransmits', 'vipguard.handshake.early', 'vipguard.handshake.late', 'vipguard.udp.datagrams'],
    status: 'ERROR for refused, unanswered, unreachable and abandoned attempts; UNSET when established.',
  },
  'vipguard.connection': {
    kind: 'client',
    description: 'One established connection through a virtual service, from the handshake\'s end until the socket closes. Child of, and linked to, the `vipguard.connect` span that established it.',
    attributes: [...ENDPOINT_ATTRS],
    optional: ['network.peer.address', 'network.peer.port', 'network.local.port', 'process.pid', 'error.type'],
    links: 'the establishing vipguard.connect span',
    status: 'ERROR when reset; UNSET when closed normally.',
  },
  'vipguard.actuator.change': {
    kind: 'internal',
    emitter: 'actuator',
    description: 'One change the actuator made to the IPVS table: a quarantine (weight 0), a restore, or a change to a managed service.',
    attributes: ['vipguard.service', 'vipguard.action', 'vipguard.result'],
    optional: ['vipguard.destination', 'vipguard.quarantine.level', 'vipguard.quarantine.until', 'error.type'],
    status: 'ERROR when the kernel refused the change.',
  },
} as const satisfies Record<string, SpanSpec>;

export type SpanName = keyof typeof SPANS;

export interface MetricSpec {
  instrument: 'counter' | 'updowncounter' | 'histogram' | 'gauge';
  unit: string;
  description: string;
  attributes: readonly AttributeName[];
  buckets?: readonly number[];
}

const BACKEND_ATTRS = ['vipguard.service', 'server.address', 'server.port', 'network.peer.address', 'network.peer.port'] as const;

export const METRICS = {
  'vipguard.connect.attempts': {
    instrument: 'counter', unit: '{attempt}',
    description: 'Handshake attempts by virtual service, backend and outcome.',
    attributes: [...BACKEND_ATTRS, 'vipguard.outcome'],
  },
  'vipguard.connect.duration': {
    instrument: 'histogram', unit: 's',
    description: 'Handshake attempt duration: SYN to outcome.',
    attributes: [...BACKEND_ATTRS, 'vipguard.outcome'],
    // Sub-millisecond on a LAN up to the kernel's first SYN retransmit (1 s) and its give-up (~130 s).
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 130],
  },
  'vipguard.connect.syn_retransmits': {
    instrument: 'counter', unit: '{retransmit}',
    description: 'SYN retransmits by virtual service and the backend the retransmitted SYN had been sent to.',
    attributes: [...BACKEND_ATTRS],
  },
  'vipguard.connection.active': {
    instrument: 'updowncounter', unit: '{connection}',
    description: 'Established connections currently open, by virtual service and backend.',
    attributes: [...BACKEND_ATTRS],
  },
  'vipguard.connection.duration': {
    instrument: 'histogram', unit: 's',
    description: 'Established connections that ended, by outcome (closed or reset): how long each was open. Its count is the connections that ended.',
    attributes: [...BACKEND_ATTRS, 'vipguard.outcome'],
    // From a request/response exchange to long-lived streams.
    buckets: [0.005, 0.05, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400],
  },
  'vipguard.udp.exchanges': {
    instrument: 'counter', unit: '{exchange}',
    description: 'UDP request/reply exchanges by virtual service, backend and outcome: `established` counts replies, `unanswered` waits past the deadline (one however many datagrams were outstanding), `refused` and `unreachable` ICMP errors.',
    attributes: [...BACKEND_ATTRS, 'vipguard.outcome'],
  },
  'vipguard.udp.reply.duration': {
    instrument: 'histogram', unit: 's',
    description: 'UDP reply time: from a flow\'s oldest unanswered datagram to the next datagram back (per poll of the flow counters, the mean of its waits).',
    attributes: [...BACKEND_ATTRS],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
  'vipguard.receiver.events': {
    instrument: 'counter', unit: '{event}',
    description: 'Kernel events the receiver read from its ring buffer.',
    attributes: [],
  },
  'vipguard.receiver.events.lost': {
    instrument: 'counter', unit: '{event}',
    description: 'Events or telemetry lost, by reason: the kernel ring buffer or handshake map was full, a socket was dropped without an outcome, or spans could not be queued or exported.',
    attributes: ['vipguard.reason'],
  },
  'vipguard.actuator.quarantined': {
    instrument: 'updowncounter', unit: '{destination}',
    description: 'Destinations quarantined now, by service.',
    attributes: ['vipguard.service'],
  },
  'vipguard.actuator.panic': {
    instrument: 'gauge', unit: '{service}',
    description: '1 while a service has more failing destinations than its quarantine cap allows (signals refused), else 0: summed, the services in panic.',
    attributes: ['vipguard.service'],
  },
  'vipguard.actuator.changes': {
    instrument: 'counter', unit: '{change}',
    description: 'Changes the actuator applied to the IPVS table, by action and result.',
    attributes: ['vipguard.service', 'vipguard.action', 'vipguard.result'],
  },
  'vipguard.actuator.signals': {
    instrument: 'counter', unit: '{signal}',
    description: 'Alert signals received, by input and by what the policy made of them.',
    attributes: ['vipguard.source', 'vipguard.verdict'],
  },
  'vipguard.actuator.refusals': {
    instrument: 'counter', unit: '{refusal}',
    description: 'RSTs refusing a connect to a configured service that the hold-back program saw, by what it did with them (host-wide; absent while holdRefusals is off or inactive).',
    attributes: ['vipguard.hold'],
  },
  'vipguard.actuator.reaction.duration': {
    instrument: 'histogram', unit: 's',
    description: 'From the moment a failure was observed (the failed handshake span ended, or the alert arrived) until the destination\'s weight was 0 in the kernel.',
    attributes: ['vipguard.service'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
  'vipguard.actuator.reconcile.duration': {
    instrument: 'histogram', unit: 's',
    description: 'One reconcile: list the configured services, diff, apply.',
    attributes: [],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof METRICS;
