/**
 * Named points in multi-step work where a fault-injection test stops the process, to show
 * that whatever dies when, the work resumes exactly once (docs/adr/0027). A no-op unless the
 * composition root installs a handler (AETHER_FAILPOINTS, never honoured in production).
 */
let handler: (name: string) => void = () => undefined;

export function installFailpoints(h: (name: string) => void): void {
  handler = h;
}

export function failpoint(name: string): void {
  handler(name);
}
