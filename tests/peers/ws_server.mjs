// A WebSocket server on Node's `ws`, for wsfast's client tests (tests/test_client.py,
// tests/test_websocket_api.py).
//
// Usage: node ws_server.mjs '<json config>'   (or the config in env WSFAST_WS_SERVER)
//
// The config (every field optional):
//   {
//     "host": "127.0.0.1",         // always loopback in the tests
//     "port": 0,                   // 0: pick a free port
//     "compression": true,         // perMessageDeflate on/off
//     "subprotocols": ["chat"],    // supported; handleProtocols picks the first one
//                                  // the client offered that is supported, else none
//     "origins": ["https://good.example"],  // allowlist; others get 403 (no Origin: allowed)
//     "cert": "/path/cert.pem",    // TLS (wss://) when both cert and key are given
//     "key": "/path/key.pem",
//     "maxPayload": 67108864       // the largest message accepted
//   }
//
// Once listening, prints one JSON line on stdout: {"port": N}. Then one JSON line per
// connection event: {"event": "open", "target": "/path?query"} and
// {"event": "close", "target": ..., "code": N, "reason": "..."}.
//
// What a connection does depends on its path:
//   /close-with?code=4001&reason=bye&messages=N  sends "message 0".."message N-1", then closes
//                                                 with that code and reason (no code: no status)
//   /ping?data=probe                              pings with "probe"; on the pong, sends "pong:probe"
//   /header?name=X-Token                          sends the value of that request header ("" if absent)
//   anything else                                 echoes every message, text as text, binary as binary
//
// The server exits on SIGTERM or SIGINT, and when its stdin closes (the test process is gone).

import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { WebSocketServer } from "ws";

const config = JSON.parse(process.argv[2] ?? process.env.WSFAST_WS_SERVER ?? "{}");
const host = config.host ?? "127.0.0.1";
const supported = config.subprotocols ?? [];

function report(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

const http =
  config.cert && config.key
    ? createHttpsServer({ cert: readFileSync(config.cert), key: readFileSync(config.key) })
    : createHttpServer();

const wss = new WebSocketServer({
  server: http,
  perMessageDeflate: Boolean(config.compression),
  maxPayload: config.maxPayload ?? 64 * 1024 * 1024,
  // `protocols` is a Set in the client's order of preference.
  handleProtocols: (protocols) => [...protocols].find((p) => supported.includes(p)) ?? false,
  verifyClient: (info, done) => {
    const origin = info.req.headers.origin;
    if (config.origins && origin !== undefined && !config.origins.includes(origin)) {
      done(false, 403, "Forbidden");
    } else {
      done(true);
    }
  },
});

wss.on("connection", (ws, request) => {
  const target = request.url;
  const url = new URL(target, "http://localhost");
  const query = url.searchParams;
  report({ event: "open", target });
  ws.on("close", (code, reason) => report({ event: "close", target, code, reason: reason.toString() }));
  ws.on("error", () => {}); // reported by "close" with 1006

  if (url.pathname === "/close-with") {
    const count = Number(query.get("messages") ?? "0");
    for (let i = 0; i < count; i++) ws.send(`message ${i}`);
    if (query.has("code")) ws.close(Number(query.get("code")), query.get("reason") ?? "");
    else ws.close();
  } else if (url.pathname === "/ping") {
    ws.on("pong", (data) => ws.send(`pong:${data.toString()}`));
    ws.ping(Buffer.from(query.get("data") ?? ""));
  } else if (url.pathname === "/header") {
    const value = request.headers[(query.get("name") ?? "").toLowerCase()];
    ws.send(Array.isArray(value) ? value.join(", ") : (value ?? ""));
  } else {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});

function stop() {
  for (const client of wss.clients) client.terminate();
  wss.close();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();

http.listen(config.port ?? 0, host, () => report({ port: http.address().port }));
