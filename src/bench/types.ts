// The shape of benchmark results: what the lab VM writes back through $VIPGUARD_LAB_OUT, what the host
// scenarios produce, and what results/<stamp>/results.json holds. Tables and plots are derived from it only.
import type { Sample } from './stats';
import type { VipguardDecisions } from './analyze';
import type { Outage, RestartFigures } from './analyze-restarts';
import type { FleetFigures } from './analyze-fleet';

export type Scenario = 'blackout' | 'refusal' | 'far' | 'rolling' | 'flapping' | 'udp-blackout' | 'udp-refusal' | 'fleet' | 'overhead' | 'capacity' | 'latency';
export const SCENARIOS: readonly Scenario[] = ['blackout', 'refusal', 'far', 'rolling', 'flapping', 'udp-blackout', 'udp-refusal', 'fleet', 'overhead', 'capacity', 'latency'];
export const LAB_SCENARIOS: readonly Scenario[] = ['blackout', 'refusal', 'far', 'rolling', 'flapping', 'udp-blackout', 'udp-refusal', 'fleet', 'latency'];
/**
 * Fleet mode (issue 17, docs/fleet.md): three client hosts, each with its own IPVS table and vipguard, at a low
 * per-client rate; b3 black-holed. vipguard = each host's embedded rules only; vipguard-fleet = the same plus the
 * central Prometheus with docs/fleet.md's rule delivering to all three; ipvs = nobody watching (when --systems has it).
 */
export type FleetSystem = 'ipvs' | 'vipguard' | 'vipguard-fleet';
export const FLEET_SYSTEMS: readonly FleetSystem[] = ['ipvs', 'vipguard', 'vipguard-fleet'];
/** The fleet scenario's shape: client hosts, and connects per second per host when --rate is not given. */
export const FLEET = { clients: 3, defaultRate: 1 } as const;
/**
 * DNS through the UDP VIP (issue 13): b3's dnsmasq black-holed (nft drop: no answer) or killed (ICMP port
 * unreachable), under lookups from fresh sockets and a few long-lived flows (src/lab/dns-load.ts).
 */
export type UdpScenario = 'udp-blackout' | 'udp-refusal';
export const UDP_SCENARIOS: readonly UdpScenario[] = ['udp-blackout', 'udp-refusal'];
/** The UDP scenarios' load: the name every backend answers with its own address, and the long-lived flows. */
export const UDP_LOAD = { name: 'who.vipguard.test', flows: 6, flowEveryMs: 250, flowWaitMs: 2000 } as const;
/** Listeners killed and restarted under load (issue 15): b1, b2, b3 one after another, or b3 up / down in a loop. */
export type RestartScenario = 'rolling' | 'flapping';
export const RESTART_SCENARIOS: readonly RestartScenario[] = ['rolling', 'flapping'];
/** rolling: each listener down this long, the next one killed this long after the previous kill */
export const ROLLING = { backends: ['b1', 'b2', 'b3'], downMs: 3000, everyMs: 5000 } as const;
/** flapping: b3 down / up this long each (down from its kill to its restart, up from accepting to the next kill) */
export const FLAPPING = { backend: 'b3', downMs: 2000, upMs: 2000, forMs: 30_000 } as const;
/** The load-through-the-VIP scenarios: b3 black-holed, b3 refusing, or b3 healthy but far away (high RTT). */
export type FailoverScenario = 'blackout' | 'refusal' | 'far';
export const FAILOVER_SCENARIOS: readonly FailoverScenario[] = ['blackout', 'refusal', 'far'];
/** The far scenario's added delay on everything b3 sends: far above the deadline floor (200 ms), well under 1 s. */
export const FAR_DELAY_MS = 300;

export type SystemName = 'ipvs' | 'keepalived-default' | 'keepalived-aggressive' | 'vipguard' | 'vipguard-syntimeout';
/** Every system the failover scenarios know, in table order. */
export const ALL_SYSTEMS: readonly SystemName[] = ['ipvs', 'keepalived-default', 'keepalived-aggressive', 'vipguard', 'vipguard-syntimeout'];
/** The ones compared by default (issue 7); vipguard-syntimeout (actuator.synTimeout on) on request. */
export const SYSTEMS: readonly SystemName[] = ['ipvs', 'keepalived-default', 'keepalived-aggressive', 'vipguard'];
/** Systems with nothing to do for a UDP service (the SYN timeout tunes TCP handshakes): left out of the UDP scenarios. */
export const TCP_ONLY_SYSTEMS: readonly SystemName[] = ['vipguard-syntimeout'];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  ipvs: 'bare IPVS',
  'keepalived-default': 'keepalived TCP_CHECK, defaults',
  'keepalived-aggressive': 'keepalived TCP_CHECK, 1 s / 1 s',
  vipguard: 'vipguard, defaults',
  'vipguard-syntimeout': 'vipguard, synTimeout on',
};

/** Outcome codes of one client connect, as stored in the compact timeline. */
export { OUTCOMES, type ConnectOutcome } from '../lab/load';

/** What one run's observations come to, inside the failure window (src/bench/analyze.ts). */
export interface WindowFigures {
  /** connects started while the backend was failing (from injecting the failure until recovering it) */
  connects: number;
  failed: number;
  slow2s: number;
  p50Ms: number;
  p99Ms: number;
  /** failed or > 2 s outside the failure window (should be 0 for every system: a sanity check) */
  outsideBad: number;
  /** connects that landed on the failing backend (its SYN went there), while it was failing */
  landedOnDead: number;
  /** of those, the connects that completed all the same (rescued onto a healthy backend), and their p99 latency */
  rescued?: number;
  rescuedP99Ms?: Sample;
  /** first failed connect → dead destination at weight 0 or removed, seen in the kernel's table (polled /proc/net/ip_vs) */
  stopKernelMs: Sample;
  /** first failed connect → start of the last connect that still landed on the dead backend */
  stopClientMs: Sample;
  /** backend recovered → weight back / destination re-added, seen in the kernel */
  restoreMs: Sample;
  /** how often the dead destination went out of and back into service while failing (flapping) */
  kernelTransitions: number;
}

/** What every run under load records about itself, whichever scenario. */
export interface LoadRunHead {
  system: SystemName;
  run: number;
  kernel: string;
  /** connects/s asked for, and achieved (started connects per second over the whole load) */
  rateTarget: number;
  rateAchieved: number;
  /** the event loop's worst lateness when starting a connect, ms (TCG can stall it) */
  maxLagMs: number;
  clientTimeoutMs: number;
}

export interface FailoverRun extends WindowFigures, LoadRunHead {
  scenario: FailoverScenario;
  failureMs: number;
  /** the fixture's time to inject / recover the failure (bash + nft/kill under TCG), ms */
  injectMs: number;
  recoverMs: number;
  /** SYNs the backends' listen queues dropped (TcpExtListenOverflows in vg-srv): healthy backends looking dead */
  listenOverflows: number;
  /** CPU of the system under test (its processes) and of the whole VM during the load, % of one CPU */
  systemCpuPct: number;
  vmCpuPct: number;
  /** vipguard's own reaction histogram summary (failure observed → weight 0), when the system is vipguard */
  vipguardReaction?: { n: number; p50?: number; p99?: number; max?: number };
  /** vipguard's decisions from its log: quarantines (of the failing backend and of healthy ones), panics, lifts */
  vipguardDecisions?: VipguardDecisions;
  notes: string[];
  /** compact per-connect timeline relative to the failure injection: [atMs, latencyMs, outcome index, landedOnDead 0|1] */
  timeline: [number, number, number, number][];
  /** kernel view of the dead destination: [atMs, weight] with -1 for absent, relative to the failure injection */
  kernelWeights: [number, number][];
  recoveredAtMs: number;
}

/** The figures of analyzeRestarts (analyze-restarts.ts) and what the run recorded beside them. */
export interface RestartRun extends LoadRunHead, RestartFigures {
  scenario: RestartScenario;
  /** vipguard in panic at any status poll or log line; null for the other systems */
  panic: boolean | null;
  /** listener outages relative to the first kill, ms */
  outages: Outage[];
  systemCpuPct: number;
  /** compact per-connect timeline relative to the first kill: [atMs, latencyMs, outcome index] */
  timeline: [number, number, number][];
  /** kernel view of each backend relative to the first kill: [atMs, weight], -1 = absent */
  kernelWeights: Record<string, [number, number][]>;
}

/** What one UDP run's observations come to (src/bench/analyze-udp.ts). */
export interface UdpWindowFigures {
  /** lookups started while the backend was failing (from injecting the failure until recovering it) */
  lookups: number;
  /** no answer after every try (timed out, refused or errored) */
  failed: number;
  /** took longer than 2 s, answered or not */
  slow2s: number;
  /** failed or > 2 s, each lookup once */
  bad: number;
  p50Ms: number;
  p99Ms: number;
  /** failed or slow outside the failure window (should be 0: a sanity check) */
  outsideBad: number;
  /** lookups with a try that went to the failing backend while it was failing */
  landedOnDead: number;
  /** of those, answered all the same at a later try (the resolver's retry on a fresh socket) */
  savedByRetry: number;
  /** first failed try → the failing destination at weight 0 or removed (kernel) */
  stopKernelMs: Sample;
  /** first failed try → start of the last lookup whose flow still went to the failing backend */
  stopClientMs: Sample;
  restoreMs: Sample;
  kernelTransitions: number;
  /** long-lived flows, those on the failing backend when it failed, and those of them answered by another backend before recovery */
  flows: number;
  flowsOnDead: number;
  flowsMoved: number;
  /** per moved flow: its first unanswered query → the first query answered by another backend, ms */
  flowMoveMs: number[];
  /** queries of the long-lived flows sent while failing, and those never answered */
  flowQueries: number;
  flowQueriesFailed: number;
}

export interface UdpFailoverRun extends UdpWindowFigures, LoadRunHead {
  scenario: UdpScenario;
  /** the resolver policy's tries per lookup (clientTimeoutMs is its wait per try) */
  attempts: number;
  failureMs: number;
  injectMs: number;
  recoverMs: number;
  systemCpuPct: number;
  vmCpuPct: number;
  vipguardReaction?: { n: number; p50?: number; p99?: number; max?: number };
  vipguardDecisions?: VipguardDecisions;
  notes: string[];
  /** per lookup relative to the failure injection: [atMs, latencyMs, outcome index (LOOKUP_OUTCOMES), landedOnDead 0|1, tries] */
  timeline: [number, number, number, number, number][];
  kernelWeights: [number, number][];
  recoveredAtMs: number;
}

/** rateTarget and rateAchieved are per client host (achieved: the mean over the hosts). */
export interface FleetRun extends Omit<FleetFigures, 'dead'>, Omit<LoadRunHead, 'system'> {
  scenario: 'fleet';
  system: FleetSystem;
  /** load before the failure, ms: at least the scenario's warm-up, and for vipguard-fleet until the rule saw every host try b3 */
  warmupMs: number;
  /** vipguard-fleet: the central Prometheus's intervals, s */
  prometheus?: { scrapeS: number; evalS: number };
  /** vipguard-fleet: first failure anywhere → the fleet alert active at Prometheus (its activeAt); null when it never was */
  alertActiveMs?: Sample;
  failureMs: number;
  injectMs: number;
  recoverMs: number;
  /** CPU of the systems' processes (every vipguard, Prometheus) and of the whole VM during the load, % of one CPU */
  systemCpuPct: number;
  vmCpuPct: number;
  /** per client host: its vipguard's decisions about b3 and the others (from its log) */
  vipguardDecisions?: Record<string, VipguardDecisions>;
  /** per client host: [atMs, latencyMs, outcome index, landedOnDead 0|1] relative to the failure injection */
  timeline: Record<string, [number, number, number, number][]>;
  /** per client host: its table's view of b3, [atMs, weight] relative to the failure injection, -1 = absent */
  kernelWeights: Record<string, [number, number][]>;
  recoveredAtMs: number;
}

/**
 * The detection → weight 0 layouts, with the targets: one process; the receiver's OTLP straight to a
 * separate actuator; and through the real collector's actuator pipeline (otel-config/collector.yaml).
 */
export const LATENCY_MODES = ['in-process', 'otlp', 'collector'] as const;
export type LatencyMode = (typeof LATENCY_MODES)[number];
export const LATENCY_TARGET_MS: Record<LatencyMode, number> = { 'in-process': 50, otlp: 250, collector: 250 };
export const LATENCY_LABELS: Record<LatencyMode, string> = {
  'in-process': 'in-process (one `vipguard run`)',
  otlp: 'OTLP hop (`--only receiver` → gRPC → `--only actuator`)',
  collector: 'through the collector (`--only receiver` → collector sidecar → `--only actuator`)',
};

export interface LatencyRun {
  mode: LatencyMode;
  run: number;
  kernel: string;
  samples: number;
  /** vipguard's own measurement: failed handshake span end → weight 0 applied (status endpoint reactionMs) */
  reaction: { n: number; p50?: number; p99?: number; max?: number };
  /** independent: the client's ECONNREFUSED (as the client saw it) → weight 0 seen by a 1 ms poll of /proc/net/ip_vs */
  independentMs: number[];
  /** samples that never reached weight 0 within the bound */
  missed: number;
  notes: string[];
}

export interface OverheadRun {
  run: number;
  /** which receiver build (baseline.ts); absent in results from before builds were compared: the tree's own */
  build?: string;
  /** connections/s of each phase, in the order they ran */
  detachedBefore: number;
  attachedService: number;
  attachedUntraced: number;
  detachedAfter: number;
  /** attached / mean(detached before, after) */
  ratioService: number;
  ratioUntraced: number;
  /** receiver CPU while attached, ms per second of wall time (1000 = one core) */
  receiverCpuService: number;
  receiverCpuUntraced: number;
  /** the counting OTLP sink (this bench process) while churning to the traced service, ms per s */
  sinkCpuService: number;
  lostService: number;
  droppedService: number;
  /** the receiver's BPF programs themselves, from the kernel's run-time accounting (kernel.bpf_stats_enabled) */
  bpf?: {
    nsPerRunUntraced: number;
    nsPerRunService: number;
    runsPerConnUntraced: number;
    runsPerConnService: number;
    /** kernel CPU spent in them per second of churn, ms (summed over CPUs) */
    msPerSecUntraced: number;
    msPerSecService: number;
  };
}

export interface CapacityStep {
  run: number;
  /** which receiver build (baseline.ts); absent in results from before builds were compared: the tree's own */
  build?: string;
  /** connections/s asked of the churn generator (0 = unpaced) */
  targetConnRate: number;
  connRate: number;
  /** events the receiver read from its ring buffer per second of churn */
  eventRate: number;
  events: number;
  lost: number;
  /** spans dropped on the export side (queue full, export failed) during the step */
  exportDropped: number;
  cpuMs: number;
  /** CPU of the counting OTLP sink (the bench process) during the step, ms */
  sinkCpuMs: number;
  /** CPU per 10k events, ms */
  cpuPer10k: number;
  /** events per CPU-second of the receiver process: what one core ingests */
  eventsPerCoreSec: number;
  rssMb: number;
  hwmMb: number;
}

export interface Machine {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  loadAvg: number[];
  date: string;
}

export interface LabInfo {
  kernel: string;
  release: string;
  vm: string;
  bootMs: number | null;
  wallMs: number;
  exitCode: number | null;
  timedOut: boolean;
  error?: string;
}

export interface BenchOptions {
  scenarios: Scenario[];
  kernels: string[];
  systems: SystemName[];
  runs: number;
  /** runs of the host scenarios (overhead, capacity): cheap, noisy on a shared machine, so often more */
  hostRuns: number;
  rate: number;
  /** connects per second per client host in the fleet scenario: --rate when given, else FLEET.defaultRate */
  fleetRate?: number;
  failSec: number;
  clientTimeoutMs: number;
  latencySamples: number;
  phaseSec: number;
  stepSec: number;
  capacityRates: number[];
  /** host scenarios: an earlier revision to build in a worktree and run beside this tree (baseline.ts) */
  baseline?: string;
  /** host scenarios: this tree's receiver at each of these span sampling ratios */
  spanSampling?: number[];
}

export interface BenchResults {
  version: 1;
  started: string;
  finished?: string;
  options: BenchOptions;
  /** the vipguard measured: commit (and whether the tree had changes) */
  revision: string;
  host: Machine;
  lab: LabInfo[];
  failover: FailoverRun[];
  /** rolling restart and flapping runs (absent in results written before they existed) */
  restarts?: RestartRun[];
  /** UDP (DNS) blackout and refusal runs (absent in results written before they existed) */
  udp?: UdpFailoverRun[];
  /** fleet runs (absent in results written before they existed) */
  fleet?: FleetRun[];
  latency: LatencyRun[];
  overhead: OverheadRun[];
  capacity: CapacityStep[];
  /** churn generator and receiver setup of the host scenarios, in words */
  hostSetup?: string;
  problems: string[];
}

/** What the lab VM writes to $VIPGUARD_LAB_OUT/lab.json (rewritten after every measurement). */
export interface LabOutput {
  kernel: string;
  release: string;
  cpu: string;
  cores: number;
  failover: FailoverRun[];
  restarts: RestartRun[];
  udp?: UdpFailoverRun[];
  fleet?: FleetRun[];
  latency: LatencyRun[];
  problems: string[];
  done: boolean;
}
