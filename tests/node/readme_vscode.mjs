// The README's VS Code snippet, verbatim between the markers (tests/test_editors.py runs it).
// --- README ---
import net from "node:net";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";

const socket = net.createConnection(process.env.PM_AGENT_SOCKET); // the path `pm status` shows
const rpc = createMessageConnection(new StreamMessageReader(socket), new StreamMessageWriter(socket));
rpc.onNotification("events.event", ({ event }) => console.log(event.type, event.data));
rpc.listen();
console.log(await rpc.sendRequest("daemon.hello", { client: "my-extension" }));
await rpc.sendRequest("events.subscribe", { topics: ["kv"] });
await rpc.sendRequest("kv.set", { namespace: "my-extension", key: "greeting", value: "hello" });
console.log(await rpc.sendRequest("kv.get", { namespace: "my-extension", key: "greeting" }));
rpc.dispose();
socket.end();
// --- end ---
