// Who is speaking, in every span and metric vipguard exports: the OpenTelemetry resource of each part and its
// instrumentation scope, built once here for the receiver and the actuator alike.
//
// Defaults, then what the operator says through the variables every OpenTelemetry SDK honours
// (OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, which wins): a fleet names its environments, regions and
// clusters without a vipguard setting of its own.
//
// service.instance.id survives restarts (a backend's series and traces stay one instance's across upgrades): the
// semantic conventions' recommended UUID v5, in their namespace for service.instance.id, of the host's machine-id
// and the service name — machine-specific, stable, and not the machine-id itself (systemd asks that it never be
// shown as is). Without a machine-id (some containers) the host name stands in.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { detectResources, envDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { packageVersion } from '../common/paths';

/** The semantic conventions the attribute names follow (all stable there, unchanged since). */
export const SCHEMA_URL = 'https://opentelemetry.io/schemas/1.26.0';

/** The namespace the semantic conventions give for service.instance.id UUIDs (v5). */
const INSTANCE_NAMESPACE = '4d63009a-8d0f-11ee-aad7-4c796ed8e320';

export type Part = 'receiver' | 'actuator';

/** RFC 9562 UUID version 5 (SHA-1, name-based). */
export function uuidV5(namespace: string, name: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = crypto.createHash('sha1').update(ns).update(name, 'utf8').digest().subarray(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The host's identity for the instance id: /etc/machine-id (D-Bus's copy as a fallback), else the host name. */
export function machineIdentity(read: (file: string) => string = (f) => fs.readFileSync(f, 'utf8')): string {
  for (const file of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = read(file).trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch { /* next */ }
  }
  return `host:${os.hostname()}`;
}

export function serviceInstanceId(serviceName: string, identity = machineIdentity()): string {
  return uuidV5(INSTANCE_NAMESPACE, `${identity}/${serviceName}`);
}

/** The resource of one part: defaults, overridden by OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME. */
export function vipguardResource(part: Part): Resource {
  const name = `vipguard-${part}`;
  const defaults = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: name,
    [ATTR_SERVICE_VERSION]: packageVersion(),
    [ATTR_SERVICE_INSTANCE_ID]: serviceInstanceId(name),
    'host.name': os.hostname(),
    'process.pid': process.pid,
  });
  return defaults.merge(detectResources({ detectors: [envDetector] }));
}

/** The instrumentation scope of one part: its name, vipguard's version and the conventions' schema. */
export function scopeOf(part: Part): { name: string; version: string; schemaUrl: string } {
  return { name: `vipguard.${part}`, version: packageVersion(), schemaUrl: SCHEMA_URL };
}
