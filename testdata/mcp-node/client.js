// A real MCP client (the official TypeScript SDK) for procref's MCP tests.
//
//   node client.js LABEL COMMAND ARGS...
//
// It starts COMMAND ARGS (procref -- SERVER...) over stdio as an MCP
// server, connects, and then takes one JSON command per line on stdin:
//   {"op":"list"}                                  tools/list
//   {"op":"call","name":N,"args":{...},"progress":true}   tools/call
//   {"op":"subscribe","uri":U}                     resources/subscribe
//   {"op":"pid"}                                   the server process's pid
// and prints one JSON line per answer ({"op","ok","result"|"error"}) and
// per event ({"event":"progress"|"updated"|"sampling"|"message",...}).
// Sampling requests are answered with "sampled by LABEL". It declares the
// sampling and roots capabilities (one root: file:///LABEL).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  CreateMessageRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import readline from "node:readline";

const [label, command, ...args] = process.argv.slice(2);
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// The SDK passes only a few variables by default; the tests pass their
// own runtime dir through PROCREF_RUNTIME_DIR.
const transport = new StdioClientTransport({ command, args, env: process.env, stderr: "inherit" });
const client = new Client(
  { name: "procref-test-" + label, version: "1.0.0" },
  { capabilities: { sampling: {}, roots: { listChanged: true } } },
);
client.setRequestHandler(CreateMessageRequestSchema, async () => {
  emit({ event: "sampling" });
  return {
    role: "assistant",
    content: { type: "text", text: "sampled by " + label },
    model: "procref-test",
    stopReason: "endTurn",
  };
});
client.setRequestHandler(ListRootsRequestSchema, async () => ({
  roots: [{ uri: "file:///" + label, name: label }],
}));
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) =>
  emit({ event: "updated", uri: n.params.uri }),
);
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) =>
  emit({ event: "message", level: n.params.level, data: n.params.data }),
);

const opts = { timeout: 30000 };
async function run(cmd) {
  switch (cmd.op) {
    case "list":
      return client.listTools(undefined, opts);
    case "call": {
      const o = { ...opts };
      if (cmd.progress) {
        o.onprogress = (p) => emit({ event: "progress", id: cmd.id, progress: p.progress, total: p.total });
      }
      return client.callTool({ name: cmd.name, arguments: cmd.args || {} }, undefined, o);
    }
    case "subscribe":
      return client.subscribeResource({ uri: cmd.uri }, opts);
    case "pid":
      return { pid: transport.pid };
  }
  throw new Error("unknown op " + cmd.op);
}

try {
  await client.connect(transport);
  emit({ event: "ready", server: client.getServerVersion() });
} catch (e) {
  emit({ event: "failed", error: String(e) });
  process.exit(1);
}
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  run(cmd).then(
    (result) => emit({ op: cmd.op, id: cmd.id, ok: true, result }),
    (err) => emit({ op: cmd.op, id: cmd.id, ok: false, error: String(err) }),
  );
});
rl.on("close", async () => {
  await client.close();
  process.exit(0);
});
