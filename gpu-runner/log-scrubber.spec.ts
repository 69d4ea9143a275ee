import fc from 'fast-check';
import { issueToken } from '../src/domain/auth/api-key-token';
import { createLogScrubber, REDACTED } from './log-scrubber';

const runnerKey = issueToken().token;
const scrub = createLogScrubber([runnerKey, 'plain-secret-not-a-token']);
// Printable text around the secrets, from any alphabet, newlines included.
const text = fc.string({ unit: 'binary', maxLength: 200 });
const token = fc.stringMatching(/^aek_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);

describe('createLogScrubber', () => {
  it('removes every API key token, wherever it stands in a line', () => {
    fc.assert(
      fc.property(text, text, token, (a, b, token) => {
        const secret = token.slice('aek_'.length + 9);
        const out = scrub(a + token + b);
        expect(out).not.toContain(secret);
        expect(out).toContain(`aek_${REDACTED}`);
      }),
    );
  });

  it("removes the runner's own key and the secrets it is given, whatever their shape", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const out = scrub(`${a}${runnerKey}${b}plain-secret-not-a-token${a}`);
        expect(out).not.toContain(runnerKey);
        expect(out).not.toContain('plain-secret-not-a-token');
      }),
    );
  });

  it('redacts a token cut short as well', () => {
    const cut = runnerKey.slice(0, 30);
    expect(scrub(`… ${cut}`)).toBe(`… aek_${REDACTED}`);
  });

  it('leaves text without secrets as it is, except NUL bytes, which PostgreSQL cannot store', () => {
    fc.assert(
      fc.property(text, (a) => {
        fc.pre(!a.includes('aek_') && !a.includes('plain-secret-not-a-token'));
        expect(scrub(a)).toBe(a.replace(/\0/g, '\uFFFD'));
      }),
    );
    expect(scrub('a\0b')).toBe('a\uFFFDb');
  });

  it('ignores secrets too short to tell from ordinary words', () => {
    expect(createLogScrubber(['epoch'])('epoch 3')).toBe('epoch 3');
  });
});
