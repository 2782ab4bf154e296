// The configuration's JSON Schema: the one source of its shape, its defaults (ajv fills them in) and its
// reference documentation (`vipguard docs config` renders docs/config.md from the descriptions here).
// `vipguard schema` prints it for editors (schema/vipguard.schema.json is that output, checked by a test).

const duration = (description: string, dflt: string) => ({
  type: 'string',
  pattern: '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$',
  description: `${description} A duration: \`500ms\`, \`10s\`, \`5m\`, \`1h\`.`,
  default: dflt,
});

const listen = (description: string, dflt: string) => ({
  type: 'string',
  pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
  description: `${description} HOST:PORT.`,
  default: dflt,
});

// A per-service override must not be filled with defaults, or it would hide actuator.quarantine.
function withoutDefaults<T extends { properties: Record<string, object> }>(schema: T, description: string) {
  const properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => {
    const { default: _d, ...rest } = v as { default?: unknown };
    return [k, rest];
  }));
  return { type: 'object', additionalProperties: false, description, properties };
}

// One shape for every listener's TLS (src/common/tls.ts reads and checks the files).
const tls = (listener: string) => ({
  type: 'object',
  additionalProperties: false,
  required: ['certFile', 'keyFile'],
  description: `TLS on ${listener}: it then speaks only TLS (1.2 or later). The files are re-read on every reload (SIGHUP or a change of this file), so a renewed certificate is served without a restart; a file that cannot be read, a key that is not the certificate's, or a certificate outside its validity dates refuses the configuration (at start, check-config and reload alike — a refused reload keeps serving the previous files).`,
  properties: {
    certFile: { type: 'string', minLength: 1, description: 'PEM certificate the listener presents, followed by any intermediate CA certificates. Its subjectAltName must name the address or host name clients connect to.' },
    keyFile: { type: 'string', minLength: 1, description: 'PEM private key of `certFile`, unencrypted (keep it mode 0600, owned by vipguard\'s user).' },
    clientCAFile: { type: 'string', minLength: 1, description: 'PEM certificate(s) of the CA(s) that sign client certificates. When set, a client must present a certificate that chains to one of them (mutual TLS); any other is refused during the handshake, before a request is read. Turning it on or off takes a restart; its content is re-read on reload.' },
  },
});

const ip = { type: 'string', format: 'ip', description: 'An IPv4 or IPv6 address.' };
const port = { type: 'integer', minimum: 1, maximum: 65535 };

const destination = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'port'],
  properties: {
    address: { ...ip, description: 'Real server address.' },
    port: { ...port, description: 'Real server port.' },
    weight: { type: 'integer', minimum: 0, maximum: 2147483647, default: 1, description: 'IPVS weight when healthy (managed services).' },
    forward: { enum: ['masq', 'route', 'tunnel'], default: 'masq', description: 'IPVS forwarding method (managed services): masq = NAT, route = direct routing, tunnel = IP-in-IP.' },
  },
};

const quarantine = {
  type: 'object',
  additionalProperties: false,
  description: 'How long a failing destination stays at weight 0, and how many may be at once. A quarantine holds the destination out for `base` × `multiplier`^level (at most `max`), then probes it directly every `probeInterval` and gives its weight back after `probeSuccesses` answers in a row. A destination that fails again within `decayAfter` of its release starts one level higher (flapping is kept out longer each time); one still down while quarantined is not.',
  default: {},
  properties: {
    base: duration('Hold of a first quarantine, before probing starts.', '1s'),
    multiplier: { type: 'number', minimum: 1, maximum: 100, default: 2, description: 'Each repeat offence (a failure within `decayAfter` of the last release) multiplies the hold by this.' },
    max: duration('Cap on the hold of a single quarantine.', '5m'),
    decayAfter: duration('A destination healthy (not quarantined) this long drops one backoff level.', '5m'),
    maxQuarantined: {
      description: 'Per service, the most destinations quarantined at once: a count, or a percentage of the service\'s destinations (rounded down). Never all: at least one destination always keeps its weight, and a service that would need more is in *panic* (reported, not acted on).',
      oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]{1,3}%$' }],
      default: '50%',
    },
    probeBeforeRestore: { type: 'boolean', default: true, description: 'After the hold, vipguard connects to the destination directly (not through the virtual service) and restores it only once it answers. false: restore when the hold ends, unprobed.' },
    probeTimeout: duration('Timeout of one probe.', '1s'),
    probeInterval: duration('Time between the starts of two probes of a quarantined destination.', '500ms'),
    probeSuccesses: { type: 'integer', minimum: 1, maximum: 10, default: 1, description: 'Answers in a row that end a quarantine.' },
  },
};

export const CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://vipguard.dev/schema/vipguard.schema.json',
  title: 'vipguard configuration',
  type: 'object',
  additionalProperties: false,
  required: ['services'],
  properties: {
    services: {
      type: 'array',
      description: 'The IPVS virtual services vipguard traces and guards. Only these, and their destinations, are ever touched.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address', 'port'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$', description: 'Name used in telemetry, alerts and status.' },
          address: { ...ip, description: 'Virtual IP.' },
          port: { ...port, description: 'Virtual port.' },
          protocol: {
            enum: ['tcp', 'udp'], default: 'tcp',
            description: 'The virtual service\'s protocol. A TCP and a UDP service may share an address and port (they are separate IPVS services). A UDP destination is quarantined by removing it (weight 0 does not move an existing UDP flow) and added back exactly as it was; this needs actuator.expireNodestConn.',
          },
          probe: {
            type: 'object', additionalProperties: false,
            description: 'UDP services: how a quarantined destination is checked before it is restored, one of `{dns: <name>}` (a DNS query; any well-formed answer counts, NXDOMAIN included), `{payload: <bytes>, expect: <bytes>}` (a reply, containing `expect` if given; bytes as text or `hex:…`) or `{silence: true}` (no ICMP error within probeTimeout — the weakest: a dead host looks alive). Required for a UDP service unless probeBeforeRestore is false.',
            properties: {
              dns: { type: 'string', description: 'Host name to query (type A).' },
              payload: { type: 'string', description: 'Bytes to send: text, or hex: followed by pairs of hex digits.' },
              expect: { type: 'string', description: 'Bytes the reply must contain (with payload).' },
              silence: { type: 'boolean', const: true, description: 'Success is no ICMP error within the timeout.' },
            },
          },
          manage: {
            type: 'boolean',
            description: 'true: vipguard creates the service and keeps its scheduler, destinations and weights as written here (declarative). false: the service is made by someone else; vipguard only changes the weights of its destinations for quarantine. Default: true when `destinations` is given.',
          },
          scheduler: { type: 'string', pattern: '^[a-z]{1,15}$', default: 'rr', description: 'IPVS scheduler of a managed service (rr, wrr, lc, wlc, sh, mh, …).' },
          destinations: {
            type: 'array',
            items: destination,
            description: 'Managed services: the exact destination set. Watched services: the destinations vipguard may quarantine (default: all of the service\'s destinations).',
          },
          quarantine: withoutDefaults(quarantine, 'Per-service override of actuator.quarantine; unset fields come from it.'),
        },
      },
    },
    receiver: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Sensing: eBPF tracing and OTLP export.',
      properties: {
        enabled: { type: 'boolean', default: true },
        traceAll: { type: 'boolean', default: false, description: 'Trace every TCP connection of the host, not only the configured services (spans name them `unconfigured`).' },
        ringBufferBytes: { type: 'integer', minimum: 65536, maximum: 1073741824, default: 4194304, description: 'Kernel ring buffer size; a power of two.' },
        deadline: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'A SYN unanswered for `multiplier` × its backend\'s handshake RTT (the `percentile` of recent handshakes, clamped to [floor, ceiling]) counts as unanswered right then — before the kernel retransmits it at 1 s — so a quarantine can be in place for that retransmit to be sent to a healthy backend — provided an answer to a later SYN (any backend) has been processed meanwhile, so a stall of this host is not taken for dead backends. A backend that answers after all is reported `late` (slow, not dead) and its quarantine lifted.',
          properties: {
            enabled: { type: 'boolean', default: true },
            multiplier: { type: 'number', minimum: 1, maximum: 100, default: 4 },
            percentile: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.99 },
            floor: duration('Shortest deadline, whatever the RTT.', '200ms'),
            ceiling: duration('Longest deadline; keep it under the initial SYN RTO (1 s, or actuator.synTimeout) minus the time to act.', '700ms'),
          },
        },
        prometheus: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'A Prometheus scrape endpoint for the receiver\'s metrics (`/metrics`), so Prometheus can alert on them without a collector in between.',
          properties: {
            enabled: { type: 'boolean', default: true },
            listen: listen('Scrape endpoint. It has no token: beyond loopback only with `tls.clientCAFile` (a client certificate is then its authentication).', '127.0.0.1:9464'),
            tls: tls('the scrape endpoint'),
          },
        },
        export: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'OTLP/gRPC export, normally to the collector sidecar.',
          properties: {
            enabled: { type: 'boolean', default: true },
            endpoint: { type: 'string', pattern: '^[^\\s/]+:[0-9]{1,5}$', description: 'HOST:PORT of the OTLP/gRPC endpoint. Default: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set (a URL: `http://` plaintext, `https://` TLS; `OTEL_EXPORTER_OTLP_INSECURE=true` is plaintext too), else `127.0.0.1:4317`. `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`, values URL-encoded) adds to `headers`; a setting written in the file wins.' },
            insecure: { type: 'boolean', description: 'Plaintext gRPC. Default: true without `tls`, false with it. `insecure: false` without `tls` uses TLS with the files of the standard `OTEL_EXPORTER_OTLP_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY` variables (or their `_TRACES_`/`_METRICS_` forms), else the system\'s CAs. Written `true`, it is also the opt-in to send a `tokenFile` or `authorization` header in clear to an endpoint beyond loopback.' },
            tls: {
              type: 'object', additionalProperties: false,
              properties: {
                ca: { type: 'string', minLength: 1, description: 'PEM CA certificate(s) the endpoint\'s certificate must chain to (default: the system\'s).' },
                cert: { type: 'string', minLength: 1, description: 'PEM client certificate, for an endpoint that requires one (mutual TLS); with `key`.' },
                key: { type: 'string', minLength: 1, description: 'PEM private key of `cert`.' },
              },
              description: 'TLS to the endpoint (e.g. a separate actuator\'s `otlpTls`). Setting it turns TLS on. Read at start.',
            },
            headers: { type: 'object', additionalProperties: { type: 'string' }, default: {}, description: 'gRPC metadata sent with every export (e.g. an authorization header).' },
            tokenFile: { type: 'string', description: 'File holding a bearer token sent as `authorization: Bearer <token>`: the actuator\'s `tokenFile` when the receiver exports straight to a separate actuator (`--only`), or a collector\'s.' },
            timeout: duration('Per-export timeout.', '5s'),
            spanDelay: duration('How long spans wait to be batched. Failed handshakes are sent at once regardless.', '200ms'),
            metricInterval: duration('Metric export interval.', '5s'),
            maxQueueSize: { type: 'integer', minimum: 1, default: 20000, description: 'Spans queued while the endpoint is slow or down; beyond it they are dropped and counted.' },
            maxBatchSize: { type: 'integer', minimum: 1, default: 1000 },
            spanSampling: {
              type: 'number', exclusiveMinimum: 0, maximum: 1, default: 1,
              description: 'The share of connections whose successful handshake (`vipguard.connect`) and normal close (`vipguard.connection`) are exported as spans, decided per connection from its trace id (OpenTelemetry probability sampling: the spans carry tracestate `ot=th:…`). Failed, late, rescued and reset attempts are always exported, and metrics count every connection whatever the ratio. Lower it on hosts making tens of thousands of connections per second (docs/benchmarks.md, Receiver capacity).',
            },
          },
        },
      },
    },
    actuator: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Control: alerts in, quarantines out.',
      properties: {
        enabled: { type: 'boolean', default: true },
        listen: listen('Alertmanager v2 API, webhook and status endpoint.', '127.0.0.1:9095'),
        tls: tls('`listen` (the HTTP API)'),
        otlpListen: listen('Embedded OTLP/gRPC receiver for the rules (point the collector\'s actuator pipeline here).', '127.0.0.1:4319'),
        otlpTls: tls('`otlpListen` (OTLP/gRPC)'),
        allowPlaintextBeyondLoopback: {
          type: 'boolean', default: false,
          description: 'Opt-in: serve `listen` or `otlpListen` beyond loopback without TLS. The bearer token and every alert then cross the network in clear, for anyone on the path to read and replay. Only for a network that is already encrypted and closed (a WireGuard or IPsec link); otherwise give the listener a `tls` block.',
        },
        token: { type: 'string', minLength: 16, description: 'Bearer token required by the alert, status and OTLP rules endpoints, written here inline. Prefer `tokenFile`.' },
        tokenFile: {
          type: 'string',
          description: 'File holding the bearer token required by the alert, status and OTLP rules endpoints (`Authorization: Bearer <token>`). Default: `token` beside `stateFile` (/var/lib/vipguard/token). When neither `token` is set nor the file exists, vipguard generates one (32 random bytes, hex) into it at start, mode 0600. Give the same file to Prometheus (`authorization.credentials_file`), Alertmanager and the collector (the actuator exporter `headers`, through `${file:…}`); `vipguard status` reads it.',
        },
        allowLoopbackWithoutToken: {
          type: 'boolean', default: false,
          description: 'Opt-in: with no `token` and no token file, serve the endpoints on loopback without a token instead of generating one. Any local user can then quarantine destinations and lift quarantines. Only for single-user hosts; refused when an endpoint listens beyond loopback.',
        },
        alertLabels: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Generic alert label keys that also name a target, besides vipguard\'s own (`vipguard_service`, `vipguard_backend`, `server_address`+`server_port`, `network_peer_address`+`network_peer_port`), which always do and come first. Alerts of other rules often carry `service` or `backend` labels meaning something else: list them only if your alerts use them for vipguard\'s services.',
          properties: {
            service: { type: 'array', uniqueItems: true, default: [], items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }, description: 'Label keys holding a configured service name or its canonical form (tcp/10.99.0.1:80), e.g. `[service]`.' },
            destination: { type: 'array', uniqueItems: true, default: [], items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }, description: 'Label keys holding a destination as host:port, e.g. `[backend]`.' },
          },
        },
        stateFile: { type: 'string', default: '/var/lib/vipguard/state.json', description: 'Quarantines and backoff levels, so they survive restarts.' },
        reconcileInterval: duration('How often the kernel\'s IPVS table is listed and corrected, besides every change.', '2s'),
        expireNodestConn: {
          type: 'boolean', default: true,
          description: 'Set net.ipv4.vs.expire_nodest_conn=1, which makes IPVS reschedule the next SYN retransmit of a connect pending on a quarantined destination (in-flight rescue), and move a UDP flow off a removed destination at its next datagram (required with UDP services: without it their flows would be black-holed). vipguard restores the previous value on shutdown.',
        },
        rules: {
          type: 'array',
          description: 'Embedded rules, evaluated on handshake spans as they stream in.',
          default: [{ name: 'handshake-failures', outcomes: ['unanswered', 'refused', 'unreachable'], threshold: 1, window: '10s' }],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'outcomes', 'threshold', 'window'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,63}$' },
              outcomes: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['unanswered', 'refused', 'unreachable', 'abandoned'] }, description: 'Handshake outcomes that count as failures.' },
              threshold: { type: 'integer', minimum: 1, description: 'Failures to one destination within `window` that trigger a quarantine.' },
              window: duration('Sliding window.', '10s'),
            },
          },
        },
        quarantine,
        synTimeout: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Sub-second failover: a cgroup sock_ops program gives connections to the configured services a lower initial SYN timeout, derived from their observed handshake times (receiver.deadline\'s formula + margin, clamped to [floor, ceiling]). A pending connect to a dead backend is then retransmitted — and rescued by IPVS onto a healthy backend — after that timeout instead of after 1 s. Note: the kernel gives up after a number of retransmits, so a connect whose every backend is dead also fails sooner. Kernels without cgroup sock_ops keep the default and vipguard says so.',
          properties: {
            enabled: { type: 'boolean', default: false },
            margin: duration('Time added to the handshake deadline, for the quarantine to be in place before the retransmit.', '100ms'),
            floor: duration('Lowest initial SYN timeout.', '200ms'),
            ceiling: duration('Highest initial SYN timeout (the kernel default is 1s).', '1s'),
            cgroup: { type: 'string', description: 'cgroup v2 directory whose processes get it; default: the cgroup2 root (every process).' },
          },
        },
        holdRefusals: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Rescue refused connects (a restarting backend answers SYNs with RST): a cgroup_skb ingress program holds back the RST that refuses a connect to a configured service, so the socket stays in SYN-SENT; the receiver still reports the refusal, the rules quarantine that destination, and IPVS sends the SYN retransmit (after 1 s, or actuator.synTimeout) to another destination. At most one RST per connect attempt; never while the service has fewer than 2 destinations in service (weight > 0), nor while it is in panic, nor for 2 s after a held connect was refused again — then the application gets its ECONNREFUSED at once, as without vipguard. Kernels without cgroup BPF keep refusing at once and vipguard says so.',
          properties: {
            enabled: { type: 'boolean', default: true },
            cgroup: { type: 'string', description: 'cgroup v2 directory whose processes get it; default: the cgroup2 root (every process).' },
          },
        },
        rateLimit: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Bound on quarantine actions, so an alert storm cannot flap weights.',
          properties: {
            perSecond: { type: 'number', exclusiveMinimum: 0, default: 20 },
            burst: { type: 'integer', minimum: 1, default: 20 },
          },
        },
      },
    },
  },
} as const;
