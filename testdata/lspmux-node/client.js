// Usage: node client.js PORT ROOT_URI FILE_URI LANGUAGE_ID HOVER_LINE HOVER_CHAR
// Connects to the mux over TCP with vscode-jsonrpc, runs an LSP session and
// prints one JSON line: {"init":..., "diagnostics":N, "hover":..., "ok":true}.
'use strict';
const net = require('net');
const fs = require('fs');
const rpc = require('vscode-jsonrpc/node');

const [port, rootUri, fileUri, languageId, line, character] = process.argv.slice(2);
const out = { ok: false };
const timer = setTimeout(() => { out.error = 'timeout'; console.log(JSON.stringify(out)); process.exit(2); }, 60000);

const socket = net.connect(Number(port), '127.0.0.1', async () => {
  const conn = rpc.createMessageConnection(new rpc.SocketMessageReader(socket), new rpc.SocketMessageWriter(socket));
  let gotDiag;
  const diag = new Promise((resolve) => { gotDiag = resolve; });
  conn.onNotification('textDocument/publishDiagnostics', (p) => {
    if (p.uri === fileUri) { out.diagnostics = p.diagnostics.length; gotDiag(); }
  });
  conn.onRequest((method) => null); // configuration, registrations, progress: answer null
  conn.onNotification(() => {});
  conn.listen();
  try {
    const init = await conn.sendRequest('initialize', {
      processId: process.pid, rootUri, workspaceFolders: [{ uri: rootUri, name: 'root' }],
      capabilities: { textDocument: { hover: { contentFormat: ['plaintext', 'markdown'] }, publishDiagnostics: {} }, window: { workDoneProgress: true } },
    });
    out.server = init.serverInfo ? init.serverInfo.name : '?';
    await conn.sendNotification('initialized', {});
    const text = fs.readFileSync(new URL(fileUri), 'utf8');
    await conn.sendNotification('textDocument/didOpen', { textDocument: { uri: fileUri, languageId, version: 1, text } });
    await diag;
    const hover = await conn.sendRequest('textDocument/hover', { textDocument: { uri: fileUri }, position: { line: Number(line), character: Number(character) } });
    out.hover = hover ? JSON.stringify(hover.contents) : null;
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    out.ok = true;
  } catch (e) {
    out.error = String(e && e.message || e);
  }
  clearTimeout(timer);
  console.log(JSON.stringify(out));
  conn.dispose();
  socket.end();
});
socket.on('error', (e) => { out.error = String(e); console.log(JSON.stringify(out)); process.exit(1); });
