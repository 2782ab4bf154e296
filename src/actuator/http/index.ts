// The actuator's HTTP inputs: Alertmanager v2 API, Alertmanager webhook, status and health (docs/alerts.md).
export { ActuatorHttpServer, ActuatorHttpOptions, ActuatorHttpStats, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_WEBHOOK_PATH } from './server';
export { LIMITS } from './schemas';
export { labelsFingerprint } from './fingerprint';
