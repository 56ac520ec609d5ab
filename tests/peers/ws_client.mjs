// A scripted WebSocket client on Node's `ws`, for tests/test_server_peers.py.
//
// Usage: node ws_client.mjs < scenario.json   (or: node ws_client.mjs '<json>')
//
// The scenario:
//   {
//     "url": "ws://127.0.0.1:PORT/path",
//     "protocols": ["chat.v1"],          // offered subprotocols (optional)
//     "compression": false,              // perMessageDeflate on/off
//     "ca": "/path/ca.pem",              // trust this CA for wss:// (optional)
//     "maxPayload": 67108864,            // ws' receive limit (optional)
//     "timeoutMs": 10000,                // the whole run's bound
//     "steps": [
//       {"op": "send_text", "text": "héllo"},
//       {"op": "send_text", "repeat": "abc", "size": 1048576},   // size in UTF-8 bytes
//       {"op": "send_binary", "size": 65536},                   // bytes i % 251
//       {"op": "recv"},
//       {"op": "ping", "data": "probe"},                        // waits for the pong
//       {"op": "close", "code": 4001, "reason": "done"},        // waits for the close
//       {"op": "wait_close"}                                    // waits for the server's close
//     ]
//   }
//
// Prints one JSON object on stdout:
//   {"open": {"protocol", "extensions"}, "results": [...], "close": {"code", "reason"},
//    "bytesRead", "bytesWritten", "error"}
// A result is {"op": "recv", "type": "text"|"binary", "length", "sha256", "text"?},
// {"op": "pong", "data"} or {"op": "close", "code", "reason"}. The exit status is 0
// unless the scenario failed (then "error" says why).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import WebSocket from "ws";

function readScenario() {
  const text = process.argv[2] ?? readFileSync(0, "utf8");
  return JSON.parse(text);
}

function pattern(size) {
  const buffer = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) buffer[i] = i % 251;
  return buffer;
}

function repeatToBytes(unit, size) {
  const unitBytes = Buffer.from(unit, "utf8");
  const buffer = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += unitBytes.length) unitBytes.copy(buffer, i, 0, Math.min(unitBytes.length, size - i));
  return buffer.toString("utf8");
}

function describe(data, isBinary) {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  const result = {
    op: "recv",
    type: isBinary ? "binary" : "text",
    length: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
  if (!isBinary && bytes.length <= 4096) result.text = bytes.toString("utf8");
  return result;
}

// An inbox of events the steps wait for, in arrival order.
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  next() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

async function main() {
  const scenario = readScenario();
  const output = { open: null, results: [], close: null, bytesRead: null, bytesWritten: null, error: null };
  const options = {
    perMessageDeflate: Boolean(scenario.compression),
    maxPayload: scenario.maxPayload ?? 64 * 1024 * 1024,
    handshakeTimeout: scenario.timeoutMs ?? 10000,
  };
  if (scenario.ca) options.ca = readFileSync(scenario.ca);
  const timer = setTimeout(() => {
    output.error = "scenario timed out";
    finish(3);
  }, scenario.timeoutMs ?? 10000);
  let socket = null;
  function finish(status) {
    clearTimeout(timer);
    if (socket) {
      output.bytesRead = socket.bytesRead;
      output.bytesWritten = socket.bytesWritten;
    }
    process.stdout.write(JSON.stringify(output) + "\n", () => process.exit(status));
  }

  const ws = new WebSocket(scenario.url, scenario.protocols ?? [], options);
  const messages = new Inbox();
  const pongs = new Inbox();
  const closes = new Inbox();
  ws.on("upgrade", (response) => {
    socket = response.socket;
  });
  ws.on("message", (data, isBinary) => messages.push(describe(data, isBinary)));
  ws.on("pong", (data) => pongs.push({ op: "pong", data: data.toString("utf8") }));
  ws.on("close", (code, reason) => closes.push({ op: "close", code, reason: reason.toString("utf8") }));
  ws.on("error", (error) => {
    output.error = String(error && error.message ? error.message : error);
    finish(2);
  });
  await new Promise((resolve) => ws.once("open", resolve));
  output.open = { protocol: ws.protocol, extensions: ws.extensions };

  for (const step of scenario.steps ?? []) {
    switch (step.op) {
      case "send_text":
        ws.send(step.repeat !== undefined ? repeatToBytes(step.repeat, step.size) : step.text);
        break;
      case "send_binary":
        ws.send(pattern(step.size), { binary: true });
        break;
      case "recv":
        output.results.push(await messages.next());
        break;
      case "ping":
        ws.ping(Buffer.from(step.data ?? "", "utf8"));
        output.results.push(await pongs.next());
        break;
      case "close":
        ws.close(step.code, step.reason ?? "");
        output.close = await closes.next();
        output.results.push(output.close);
        break;
      case "wait_close":
        output.close = await closes.next();
        output.results.push(output.close);
        break;
      default:
        throw new Error(`unknown step ${JSON.stringify(step)}`);
    }
  }
  if (ws.readyState !== WebSocket.CLOSED && ws.readyState !== WebSocket.CLOSING) {
    ws.close(1000, "");
    output.close = await closes.next();
  }
  finish(0);
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }) + "\n", () =>
    process.exit(1),
  );
});
