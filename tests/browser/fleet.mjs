// fleet.mjs - a real edgefleet on 127.0.0.1 for the browser tests: mosquitto,
// edgefleet-server (init + serve, serving web/ from the checkout), trained
// FANN networks pushed with the CLI, real edgefleet-agent processes fed
// thyroid inputs (with feedback) through their inference sockets. Node's
// standard library only. Every process is stopped by its PID.
//
// Environment (set by tests/CMakeLists.txt; defaults for a build in build/):
//   EF_BIN_DIR       edgefleet-server, edgefleet, edgefleet-agent
//   EF_TEST_BIN_DIR  ef-train-fixture
//   EF_SOURCE_DIR    the checkout (web/, node_modules/)
//   EF_BUILD_DIR     the build tree (test-artifacts/ goes there)
//   EF_BACKEND_DIR   the agent's backend modules

import {spawn, execFile} from 'node:child_process';
import {once} from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';

const run = promisify(execFile);

export const HOST = '127.0.0.1';
export const SOURCE_DIR = process.env.EF_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILD_DIR = process.env.EF_BUILD_DIR || path.join(SOURCE_DIR, 'build');
export const BIN_DIR = process.env.EF_BIN_DIR || path.join(BUILD_DIR, 'bin');
export const TEST_BIN_DIR = process.env.EF_TEST_BIN_DIR || path.join(BUILD_DIR, 'test-bin');
export const DATASETS = '/usr/share/doc/libfann-dev/examples/datasets';
const MOSQUITTO = '/usr/sbin/mosquitto';

// What a sanitizer build prints when it finds something.
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];

export function sanitizerReport(text) {
  for (const mark of SANITIZER_MARKS) {
    const i = text.indexOf(mark);
    if (i >= 0) return text.slice(Math.max(0, i - 200), i + 3000);
  }
  return null;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls fn until it returns a truthy value (returned); fails after timeoutMs. */
export async function waitFor(fn, timeoutMs, what, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${
    last instanceof Error ? last.message : JSON.stringify(last)})`);
}

/** A TCP port that was free a moment ago. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const {port} = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

async function waitTcp(port, proc, timeoutMs) {
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode}`);
    return new Promise((resolve) => {
      const s = net.connect(port, HOST);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
  }, timeoutMs, `something listening on ${HOST}:${port}`, 50);
}

/** A child process with its output in a log file; stop() by PID. */
class Child {
  constructor(name, argv, logPath, env) {
    this.name = name;
    this.logPath = logPath;
    this.log = fs.openSync(logPath, 'a');
    this.proc = spawn(argv[0], argv.slice(1), {stdio: ['ignore', this.log, this.log],
      env: {...process.env, ...env}});
    // A spawn that fails (no such binary) ends here too, with its error.
    this.exited = once(this.proc, 'exit').catch((e) => e);
    this.closed = false;
  }

  get pid() {
    return this.proc.pid;
  }

  alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  logText() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch (e) {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL after timeoutMs; resolves to the exit code
   * (null after a signal). */
  async stop(timeoutMs = 10000) {
    if (this.closed) return this.proc.exitCode;
    if (this.alive() && this.proc.pid) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.alive() && this.proc.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    fs.closeSync(this.log);
    this.closed = true;
    return this.proc.exitCode;
  }
}

/**
 * A whole fleet: start() brings up the broker, the server and `devices`
 * agents; the caller pushes models and assigns them. stop() takes it all
 * down and returns problems found (crashes, sanitizer reports) as strings.
 */
export class Fleet {
  constructor({devices = 2, tickMs = 250} = {}) {
    this.deviceIds = Array.from({length: devices}, (_, i) => `edge-${i + 1}`);
    this.tickMs = tickMs;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ef-browser-'));
    this.agents = [];
    this.feeders = [];
    this.children = [];
  }

  async start() {
    this.brokerPort = await freePort();
    const conf = path.join(this.dir, 'mosquitto.conf');
    fs.writeFileSync(conf, `listener ${this.brokerPort} ${HOST}\nallow_anonymous true\npersistence false\n`);
    this.broker = this.spawn('mosquitto', [MOSQUITTO, '-c', conf]);
    await waitTcp(this.brokerPort, this.broker.proc, 10000);
    this.mqttUrl = `mqtt://${HOST}:${this.brokerPort}`;

    const dataDir = path.join(this.dir, 'server');
    const init = await run(path.join(BIN_DIR, 'edgefleet-server'), ['init', '--data-dir', dataDir]);
    this.adminToken = init.stdout.trim().split('\n').pop().trim();
    this.port = await freePort();
    this.url = `http://${HOST}:${this.port}`;
    this.server = this.spawn('edgefleet-server', [path.join(BIN_DIR, 'edgefleet-server'), 'serve',
      '--data-dir', dataDir, '--listen', `${HOST}:${this.port}`, '--mqtt', this.mqttUrl,
      '--rollout-tick-ms', String(this.tickMs), '--monitor-tick-ms', String(this.tickMs),
      '--web-dir', path.join(SOURCE_DIR, 'web'),
      '--node-modules', path.join(SOURCE_DIR, 'node_modules')]);
    await waitFor(async () => {
      if (!this.server.alive()) throw new Error(`edgefleet-server exited:\n${this.server.logText()}`);
      const r = await fetch(`${this.url}/healthz`).catch(() => null);
      return r && r.status === 200;
    }, 20000, 'GET /healthz 200', 100);
  }

  spawn(name, argv, env) {
    const child = new Child(name, argv, path.join(this.dir, `${name}.log`), env);
    this.children.push(child);
    return child;
  }

  /** A REST call as admin (or token); returns the parsed body, throws on >= 400. */
  async api(method, route, body, token = this.adminToken) {
    const init = {method, headers: {Authorization: `Bearer ${token}`}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.url + route, init);
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** `edgefleet --json ARGS` against this server; the parsed stdout. */
  async cli(...args) {
    const env = {...process.env};
    delete env.EDGEFLEET_SERVER;
    delete env.EDGEFLEET_TOKEN;
    const {stdout} = await run(path.join(BIN_DIR, 'edgefleet'),
      ['--server', this.url, '--token', this.adminToken, '--json', ...args], {env});
    return JSON.parse(stdout);
  }

  /** Trains a thyroid network with ef-train-fixture; returns its path. */
  async train(name, hidden, epochs, seed) {
    const out = path.join(this.dir, `${name}.net`);
    await run(path.join(TEST_BIN_DIR, 'ef-train-fixture'),
      [path.join(DATASETS, 'thyroid.train'), out, String(hidden), String(epochs), String(seed)]);
    return out;
  }

  /** Registers net as the next version of model (with reference data). */
  async push(model, net) {
    const meta = path.join(this.dir, `${model}.meta.json`);
    fs.writeFileSync(meta, JSON.stringify({labels: ['hyper', 'hypo', 'normal'],
      description: 'thyroid function (PROBEN1)'}));
    return this.cli('model', 'push', model, net, '--data', path.join(DATASETS, 'thyroid.test'),
      '--meta', meta);
  }

  /** Starts every agent (enrolled with its own single-use token). */
  async startAgents() {
    const tags = ['site=lab', 'site=field', 'site=depot'];
    await Promise.all(this.deviceIds.map(async (id, i) => {
      const {token} = await this.api('POST', '/api/v1/enroll-tokens', {});
      const dataDir = path.join(this.dir, id);
      const agent = this.spawn(id, [path.join(BIN_DIR, 'edgefleet-agent'), '--server', this.url,
        '--mqtt', this.mqttUrl, '--data-dir', dataDir, '--device-id', id, '--enroll-token', token,
        '--tag', tags[i % tags.length], '--metrics-interval', '1', '--poll-interval', '2',
        '--trial-seconds', '2', '--trial-min-requests', '5',
        // A sanitizer build on a busy machine has latency spikes far above a
        // sub-millisecond reference p99: the trial's ratio guard (tested in
        // the agent's own tests) would roll back at random here.
        '--trial-max-p99-ratio', '1000']);
      agent.socket = path.join(dataDir, 'infer.sock');
      agent.id = id;
      this.agents.push(agent);
      await waitFor(() => {
        if (!agent.alive()) throw new Error(`${id} exited:\n${agent.logText()}`);
        return fs.existsSync(agent.socket);
      }, 20000, `${id}'s inference socket`, 100);
    }));
    // The socket opens before enrollment ends (the server first waits for its
    // broker probe): an assignment to a ring reaches only enrolled devices.
    await waitFor(async () => {
      const {devices} = await this.api('GET', '/api/v1/devices');
      return this.deviceIds.every((id) => devices.some((d) => d.id === id));
    }, 20000, 'every agent enrolled');
  }

  /** Feeds every agent thyroid test rows every intervalMs, each answer
   * followed by feedback with the true class, until stop(). */
  feed(intervalMs = 40) {
    const rows = thyroidRows();
    for (const agent of this.agents) this.feeders.push(new Feeder(agent.socket, rows, intervalMs));
  }

  /** Waits until every device's production slot is model@version in state. */
  async waitSlots(model, version, state, timeoutMs) {
    return waitFor(async () => {
      const {devices} = await this.api('GET', '/api/v1/devices');
      const ok = this.deviceIds.every((id) => {
        const d = devices.find((x) => x.id === id);
        const s = d && d.slots.production;
        return s && s.name === model && s.version === version && s.state === state && d.online;
      });
      return ok ? devices : null;
    }, timeoutMs, `every device on ${model}@${version} ${state}`);
  }

  /** Stops everything; returns a list of problems (empty when all is well). */
  async stop() {
    const problems = [];
    for (const f of this.feeders) f.stop();
    // Agents first, then the server they talk to, then the broker.
    const order = [...this.agents, this.server, this.broker].filter(Boolean);
    for (const child of order) {
      const wasAlive = child.alive();
      const code = await child.stop();
      const report = sanitizerReport(child.logText());
      if (!wasAlive) problems.push(`${child.name} died during the test:\n${tail(child.logText())}`);
      else if (code !== 0 && child !== this.broker) problems.push(`${child.name} exited ${code} on SIGTERM`);
      if (report) problems.push(`${child.name}: sanitizer report:\n${report}`);
    }
    return problems;
  }

  /** Removes the temporary directory (kept when the test failed). */
  cleanup() {
    fs.rmSync(this.dir, {recursive: true, force: true});
  }
}

export function tail(text, n = 4000) {
  return text.length <= n ? text : `...\n${text.slice(-n)}`;
}

/** thyroid.test as [{input, label}] (label: the index of the 1 in the outputs). */
function thyroidRows() {
  const tokens = fs.readFileSync(path.join(DATASETS, 'thyroid.test'), 'utf8').trim().split(/\s+/).map(Number);
  const [n, nIn, nOut] = tokens;
  const rows = [];
  for (let r = 0; r < Math.min(n, 400); r++) {
    const base = 3 + r * (nIn + nOut);
    const out = tokens.slice(base + nIn, base + nIn + nOut);
    rows.push({input: tokens.slice(base, base + nIn), label: out.indexOf(Math.max(...out))});
  }
  return rows;
}

/** One connection to an agent's inference socket, sending a request every
 * intervalMs (an inference with an id, then the feedback for it). Errors
 * (the agent restarting its socket) reconnect quietly. */
class Feeder {
  constructor(socketPath, rows, intervalMs) {
    this.socketPath = socketPath;
    this.rows = rows;
    this.n = 0;
    this.stopped = false;
    this.answers = 0;
    this.connect();
    this.timer = setInterval(() => this.send(), intervalMs);
  }

  connect() {
    if (this.stopped) return;
    this.sock = net.connect(this.socketPath);
    this.sock.setEncoding('utf8');
    this.sock.on('data', (chunk) => { this.answers += chunk.split('\n').length - 1; });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      if (!this.stopped) setTimeout(() => this.connect(), 200);
    });
  }

  send() {
    if (!this.sock || this.sock.destroyed || this.sock.connecting) return;
    const row = this.rows[this.n % this.rows.length];
    const id = `r${this.n++}`;
    this.sock.write(`${JSON.stringify({input: row.input, id})}\n` +
      `${JSON.stringify({feedback: id, label: row.label})}\n`);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.sock) this.sock.destroy();
  }
}
