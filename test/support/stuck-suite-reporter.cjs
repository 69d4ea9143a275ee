/**
 * Names a test file that has run for over three minutes, once a minute while it runs. Jest's
 * timeouts need the file's event loop; a file blocked outside it (a child process awaited
 * synchronously, a loop that never yields) would otherwise hold the run silently until CI's
 * own limit, with nothing in the log to say which file it was. One still running after
 * fifteen minutes (the longest file takes under two) ends the run as failed, so a hang costs
 * CI a quarter of an hour and names itself, instead of running out CI's clock.
 */
const STUCK_MS = 180_000;
const GIVE_UP_MS = 15 * 60_000;

class StuckSuiteReporter {
  constructor() {
    this.running = new Map();
    this.timer = null;
  }

  onTestFileStart(test) {
    this.running.set(test.path, Date.now());
    if (!this.timer) {
      this.timer = setInterval(() => {
        const now = Date.now();
        for (const [file, since] of this.running) {
          if (now - since <= STUCK_MS) continue;
          process.stderr.write(
            `still running after ${Math.round((now - since) / 1000)} s: ${file}\n`,
          );
          if (now - since > GIVE_UP_MS) {
            process.stderr.write(`giving up: ${file} has run for over 15 minutes\n`);
            process.exit(1);
          }
        }
      }, 60_000);
      this.timer.unref();
    }
  }

  onTestFileResult(test) {
    this.running.delete(test.path);
  }

  onRunComplete() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

module.exports = StuckSuiteReporter;
