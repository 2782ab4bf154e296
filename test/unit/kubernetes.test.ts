// deploy/kubernetes/daemonset.yaml: every object valid against the Kubernetes API's own schemas (kubernetes-models,
// generated from the OpenAPI spec: types, required fields and enums; like kubeconform without -strict, unknown
// fields are not caught), and the layout holding together — probes on the actuator's health endpoints, the
// namespace's Pod Security level the pod needs, and the sidecar collector off the node agent's port 4317.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { REPO_ROOT } from '../../src/common/paths';
import { parseConfig } from '../../src/config/config';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;
const docs: Doc[] = parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'deploy/kubernetes/daemonset.yaml'), 'utf8')).map((d) => d.toJS());
const MODELS: Record<string, new (d: Doc) => { validate(): void }> = { Namespace, ConfigMap, DaemonSet };
const ds = docs.find((d) => d.kind === 'DaemonSet');
const pod = ds.spec.template.spec;
const container = pod.containers.find((c: Doc) => c.name === 'vipguard');
const config = parseConfig(docs.find((d) => d.kind === 'ConfigMap').data['vipguard.yaml'], 'daemonset.yaml ConfigMap');

test('every object is valid against the Kubernetes API schemas', () => {
  assert.deepEqual(docs.map((d) => d.kind), ['Namespace', 'ConfigMap', 'DaemonSet']);
  for (const d of docs) assert.doesNotThrow(() => new MODELS[d.kind](d).validate(), `${d.kind}/${d.metadata.name}`);
  // The validator is not a formality: a probe without a port is refused.
  const broken = structuredClone(ds);
  delete broken.spec.template.spec.containers[0].readinessProbe.httpGet.port;
  assert.throws(() => new DaemonSet(broken).validate(), /readinessProbe\/httpGet must have required property port/);
});

test('probes: the actuator\'s health endpoints on loopback, which the kubelet reaches in the node\'s network namespace', () => {
  assert.equal(pod.hostNetwork, true);
  const [host, port] = config.actuator.listen.split(':');
  for (const [probe, p] of [['startupProbe', '/-/ready'], ['readinessProbe', '/-/ready'], ['livenessProbe', '/-/healthy']]) {
    assert.deepEqual(container[probe]?.httpGet, { host, port: Number(port), path: p }, probe);
  }
  assert.ok(container.startupProbe.periodSeconds * container.startupProbe.failureThreshold >= 60, 'a minute to start (BPF loading on a busy node)');
});

test('Pod Security: the namespace admits exactly what the pod needs, and the pod asks for no more', () => {
  const ns = docs.find((d) => d.kind === 'Namespace');
  assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
  // Why not `baseline`: each of these is a baseline violation (Pod Security Standards).
  assert.equal(pod.hostNetwork, true);
  assert.ok(pod.volumes.some((v: Doc) => v.hostPath));
  const baselineCaps = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
  assert.ok(container.securityContext.capabilities.add.some((c: string) => !baselineCaps.has(c)));
  // …and no more than that: not privileged, no escalation, everything else dropped.
  assert.equal(container.securityContext.privileged, false);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
  assert.deepEqual([...container.securityContext.capabilities.add].sort(), ['BPF', 'NET_ADMIN', 'PERFMON']);
});

test('no host-wide change: the pod mounts no tracefs (every hook attaches through a BPF link) and asks for no sysctl', () => {
  const hostPaths = pod.volumes.filter((v: Doc) => v.hostPath).map((v: Doc) => v.hostPath.path);
  assert.deepEqual(hostPaths, ['/var/lib/vipguard'], 'only the state directory');
  assert.ok(!container.volumeMounts.some((m: Doc) => /tracing|debug/.test(m.mountPath)));
  assert.equal(pod.securityContext?.sysctls, undefined);
});

test('ports: the sidecar collector listens where vipguard exports, off the node agent\'s 4317', () => {
  const operator = parse(fs.readFileSync(path.join(REPO_ROOT, 'otel-config/kubernetes/sidecar.yaml'), 'utf8'));
  const env = Object.fromEntries((operator.spec.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  assert.equal(operator.spec.config.receivers.otlp.protocols.grpc.endpoint, '${env:VIPGUARD_OTLP_LISTEN:-127.0.0.1:4317}');
  assert.equal(env.VIPGUARD_OTLP_LISTEN, config.receiver.export.endpoint, 'vipguard exports where the sidecar listens');
  assert.notEqual(Number(config.receiver.export.endpoint.split(':')[1]), 4317, 'not the port a node-agent collector holds on the node');
  const ours = [config.receiver.export.endpoint, config.actuator.listen, config.actuator.otlpListen].map((e) => Number(e.split(':')[1]));
  assert.equal(new Set(ours).size, ours.length, `one port each: ${ours.join(', ')}`);
  for (const p of ours) assert.ok(![4317, 4318, 8888, 13133].includes(p), `${p} is a collector default port`);
});
