// pm-agentd through the real `vscode-jsonrpc` package, exactly as a VS Code extension uses it:
// a Unix socket from net.createConnection(path) wrapped in StreamMessageReader/Writer (LSP
// Content-Length framing), nothing pm-agent specific on this side.
//
//   node vscode_client.mjs SOCKET_PATH [--lib vscode-jsonrpc|vscode-jsonrpc-8]
//                                      [--clear-namespace NS]
//
// Checks, in order: daemon.hello; events.subscribe; kv.set + kv.get; the events.event
// notification for that write; $/progress begin/report/end of a projects.scan handed to
// onProgress; a kv.clear of NS (filled beforehand by the caller, big enough to take a while)
// cancelled through a CancellationToken right after its first progress report, which must
// make the library send $/cancelRequest and reject with the daemon's -32800 error.
// Prints one JSON object of findings on stdout; exits 1 with a message on stderr on failure.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";

const require = createRequire(import.meta.url);

function parseArgs(argv) {
  const args = { socket: null, lib: "vscode-jsonrpc", clearNamespace: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--lib") args.lib = argv[++i];
    else if (argv[i] === "--clear-namespace") args.clearNamespace = argv[++i];
    else if (!args.socket) args.socket = argv[i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (!args.socket) throw new Error("usage: vscode_client.mjs SOCKET_PATH [--lib NAME] [--clear-namespace NS]");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const rpc = require(`${args.lib}/node`); // the CommonJS build both major versions ship
const {
  createMessageConnection,
  StreamMessageReader,
  StreamMessageWriter,
  CancellationTokenSource,
  ProgressType,
  ResponseError,
  Trace,
} = rpc;
const libVersion = JSON.parse(
  readFileSync(new URL(`./node_modules/${args.lib}/package.json`, import.meta.url), "utf8"),
).version;

const findings = { library: args.lib, version: libVersion };
const sent = []; // notifications the library wrote, from its own tracer

function fail(message) {
  process.stderr.write(`vscode_client (${args.lib} ${libVersion}): ${message}\n`);
  process.stderr.write(`findings so far: ${JSON.stringify(findings)}\n`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const watchdog = setTimeout(() => fail("the whole run took longer than 25 s"), 25_000);

async function main() {
  const sock = net.createConnection(args.socket);
  await within(5000, new Promise((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  }), "the socket to connect");
  const connection = createMessageConnection(
    new StreamMessageReader(sock),
    new StreamMessageWriter(sock),
  );
  connection.onError(([error]) => fail(`connection error: ${error?.message ?? error}`));
  connection.onClose(() => { findings.closed = true; });
  // The library's own tracer shows what it wrote, so "$/cancelRequest was sent" is observed,
  // not assumed. (trace() does not send $/setTrace unless asked to.)
  await connection.trace(Trace.Verbose, {
    log(message, data) {
      const m = /^Sending notification '([^']+)'/.exec(typeof message === "string" ? message : "");
      if (m) sent.push({ method: m[1], params: data ? JSON.parse(data.replace(/^Params: /, "")) : null });
    },
  });
  const unhandled = [];
  connection.onUnhandledNotification((n) => unhandled.push(n.method));
  const events = [];
  let eventArrived;
  const eventSeen = new Promise((resolve) => { eventArrived = resolve; });
  connection.onNotification("events.event", (params) => {
    events.push(params);
    if (["kv.created", "kv.updated"].includes(params?.event?.type) && params.event.data?.key === "greeting") eventArrived(params);
  });
  connection.listen();

  // 1. hello
  const hello = await connection.sendRequest("daemon.hello", {
    client: "vscode-jsonrpc-test",
    client_version: libVersion,
    protocol_version: 1,
  });
  check(hello && typeof hello.daemon_version === "string", `daemon.hello answered ${JSON.stringify(hello)}`);
  check(hello.compatible !== false, `daemon.hello says incompatible: ${JSON.stringify(hello)}`);
  findings.hello = hello;

  // 2. subscribe, then a write and a read
  const subscribed = await connection.sendRequest("events.subscribe", { topics: ["kv"] });
  check(Number.isInteger(subscribed.subscription), `events.subscribe answered ${JSON.stringify(subscribed)}`);
  const value = { text: "héllo wörld — €😀", n: 42, list: [1, 2, 3] };
  const setOutcome = await connection.sendRequest("kv.set", { namespace: "vscode", key: "greeting", value });
  const got = await connection.sendRequest("kv.get", { namespace: "vscode", key: "greeting" });
  check(JSON.stringify(got.value) === JSON.stringify(value), `kv.get gave ${JSON.stringify(got)}`);
  findings.kv = { set: setOutcome, get: got.value };

  // 3. the event for that write
  const event = await within(10_000, eventSeen, "the events.event notification of the kv.set");
  check(event.subscription === subscribed.subscription, `event for another subscription: ${JSON.stringify(event)}`);
  findings.event = event;

  // 4. $/progress of a scan, through onProgress
  const progressType = new ProgressType();
  const scanProgress = [];
  let scanEnded;
  const scanEnd = new Promise((resolve) => { scanEnded = resolve; });
  connection.onProgress(progressType, "scan-1", (v) => {
    scanProgress.push(v);
    if (v.kind === "end") scanEnded();
  });
  const scan = await connection.sendRequest("projects.scan", { workDoneToken: "scan-1" });
  await within(5000, scanEnd, "the end of the scan's progress");
  const kinds = scanProgress.map((v) => v.kind);
  check(kinds[0] === "begin" && kinds.at(-1) === "end" && kinds.includes("report"),
    `scan progress kinds were ${JSON.stringify(kinds)}`);
  check(kinds.filter((k) => k === "begin").length === 1 && kinds.filter((k) => k === "end").length === 1,
    `scan progress had more than one begin or end: ${JSON.stringify(kinds)}`);
  findings.scan = { result: scan, progress: scanProgress };

  // 5. cancel a long kv.clear through a CancellationToken
  if (args.clearNamespace) {
    const source = new CancellationTokenSource();
    const clearProgress = [];
    connection.onProgress(progressType, "clear-1", (v) => {
      clearProgress.push(v);
      if (v.kind === "report" && !source.token.isCancellationRequested) source.cancel();
    });
    const started = Date.now();
    let outcome;
    try {
      const result = await within(20_000, connection.sendRequest(
        "kv.clear", { namespace: args.clearNamespace, workDoneToken: "clear-1" }, source.token,
      ), "the cancelled kv.clear to answer");
      outcome = { result };
    } catch (error) {
      outcome = { error };
    }
    check(outcome.error, `kv.clear finished instead of being cancelled: ${JSON.stringify(outcome.result)}`);
    const error = outcome.error;
    check(error instanceof ResponseError, `kv.clear failed with a non-JSON-RPC error: ${error}`);
    check(error.code === -32800, `kv.clear failed with ${error.code} ${error.message}, not -32800`);
    const cancelSent = sent.filter((n) => n.method === "$/cancelRequest");
    check(cancelSent.length === 1, `the library sent ${cancelSent.length} $/cancelRequest notifications`);
    const left = await connection.sendRequest("kv.list", { namespace: args.clearNamespace, limit: 1 });
    findings.cancel = {
      code: error.code,
      message: error.message,
      data: error.data,
      cancel_notification: cancelSent[0],
      progress_kinds: clearProgress.map((v) => v.kind),
      left: left.total,
      ms: Date.now() - started,
    };
  }

  // 6. the connection is still fine; unsubscribe and leave
  const again = await connection.sendRequest("daemon.hello", {});
  check(again.daemon_version === hello.daemon_version, "daemon.hello after the cancel failed");
  findings.unsubscribed = await connection.sendRequest("events.unsubscribe", {
    subscription: subscribed.subscription,
  });
  findings.unhandled_notifications = unhandled;
  findings.notifications_sent = sent.map((n) => n.method);
  connection.dispose();
  sock.end();
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.stdout.write(JSON.stringify(findings) + "\n");
  },
  (error) => fail(error?.stack ?? String(error)),
);
