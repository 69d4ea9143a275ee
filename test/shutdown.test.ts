import http from 'node:http';
import { startTestApp } from './support/test-app';

/**
 * Graceful shutdown: a request already being received when shutdown starts is answered;
 * a new connection afterwards is refused. The request is held in flight deterministically
 * by sending its body in two halves around the call to close().
 */
it('finishes an in-flight request, then stops accepting and closes', async () => {
  const app = await startTestApp(__filename);
  const url = new URL(app.url);
  const body = Buffer.from(JSON.stringify({ query: '{ viewer { name role } }' }));
  let closed = false;
  const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: '/graphql',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          authorization: `Bearer ${app.adminToken}`,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.write(body.subarray(0, 10));
    // Headers and half the body are in: the request is in flight. Start shutting down.
    setTimeout(() => {
      void app.stop().then(() => (closed = true));
      setTimeout(() => req.end(body.subarray(10)), 200);
    }, 100);
  });

  const r = await response;
  expect(r.status).toBe(200);
  expect(JSON.parse(r.text)).toEqual({
    data: { viewer: { name: 'bootstrap-admin', role: 'ADMIN' } },
  });
  for (let i = 0; i < 50 && !closed; i++) await new Promise((res) => setTimeout(res, 100));
  expect(closed).toBe(true);
  await expect(fetch(`${url.origin}/healthz`)).rejects.toThrow();
});
