import { PassThrough } from 'node:stream';
import { loadSandboxConfig } from './runner-config';
import { confinedCommand, readLines } from './trainer-sandbox';

function linesOf(chunks: string[], max: number): Promise<string[]> {
  const stream = new PassThrough();
  const out: string[] = [];
  readLines(stream, max, (l) => out.push(l));
  for (const c of chunks) stream.write(c);
  stream.end();
  return new Promise((r) => stream.on('end', () => r(out)));
}

describe('readLines', () => {
  it('splits across chunks, drops CRs, keeps a last line without newline', async () => {
    expect(await linesOf(['ab', 'c\r\nde', 'f\n\ng'], 100)).toEqual(['abc', 'def', '', 'g']);
  });

  it('cuts an over-long line once and drops its rest, however it arrives', async () => {
    const cut = 'x'.repeat(10) + ' [line cut at 10 characters]';
    expect(await linesOf(['x'.repeat(25), 'x'.repeat(25), '\nnext\n'], 10)).toEqual([cut, 'next']);
    expect(await linesOf(['x'.repeat(25) + '\nnext\n'], 10)).toEqual([cut, 'next']);
    expect(await linesOf(['x'.repeat(25)], 10)).toEqual([cut]);
  });
});

describe('loadSandboxConfig', () => {
  it('runs trainers as nobody under a root runner, and never as root', () => {
    const { config, warning } = loadSandboxConfig({}, 0);
    expect(config.user).toMatchObject({ name: 'nobody' });
    expect(config.user?.uid).not.toBe(0);
    expect(warning).toBeNull();
    expect(() => loadSandboxConfig({ RUNNER_TRAINER_USER: 'root' }, 0)).toThrow(/must not be root/);
    expect(() => loadSandboxConfig({ RUNNER_TRAINER_USER: 'no-such-user-here' }, 0)).toThrow(
      /there is no user "no-such-user-here"/,
    );
  });

  it('warns when it cannot switch users, and refuses a user it cannot switch to', () => {
    const { config, warning } = loadSandboxConfig({}, 4242);
    expect(config.user).toBeNull();
    expect(warning).toMatch(/runs as uid 4242, not root/);
    expect(() => loadSandboxConfig({ RUNNER_TRAINER_USER: 'nobody' }, 4242)).toThrow(
      /needs a runner started as root/,
    );
  });

  it('reads the limits and the PATH, and puts them on the command line', () => {
    const { config } = loadSandboxConfig(
      {
        RUNNER_TRAINER_NOFILE: '100',
        RUNNER_TRAINER_MEMORY_MB: '2048',
        RUNNER_TRAINER_PATH: '/opt/py/bin:/usr/bin',
      },
      0,
    );
    expect(config.path).toBe('/opt/py/bin:/usr/bin');
    const argv = confinedCommand(config, 'python3', ['train.py']);
    expect(argv.slice(-3)).toEqual(['--', 'python3', 'train.py']);
    expect(argv).toEqual(
      expect.arrayContaining([
        '--no-new-privs',
        '--nofile=100',
        '--nproc=4096',
        `--fsize=${65_536 * 2 ** 20}`,
        `--data=${2048 * 2 ** 20}`,
        '--core=0',
      ]),
    );
    expect(argv.some((a) => a.startsWith('--cpu'))).toBe(false);
    expect(() => loadSandboxConfig({ RUNNER_TRAINER_NOFILE: 'lots' }, 0)).toThrow(
      /RUNNER_TRAINER_NOFILE must be an integer >= 64/,
    );
  });
});
