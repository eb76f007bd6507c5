// `pm mcp` through the TypeScript MCP SDK's own client (what many agents' hosts use), over
// stdio: the handshake, the tool list, a call, a call the daemon refuses, and a resource.
// Usage: node mcp_client.mjs '{"command": "...", "args": [...], "cwd": "...", "env": {...}}'
// Prints one JSON object on its last line; tests/test_mcp_node.py reads it.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const server = JSON.parse(process.argv[2]);
const transport = new StdioClientTransport({ ...server, stderr: 'inherit' });
const client = new Client({ name: 'ts-sdk-client', version: '1.0.0' });

await client.connect(transport);
const info = client.getServerVersion();
const capabilities = client.getServerCapabilities();
const { tools } = await client.listTools();
const created = await client.callTool({
  name: 'create', arguments: { title: 'from the TypeScript SDK', priority: 2 },
});
const claimed = await client.callTool({ name: 'claim', arguments: {} });
const refused = await client.callTool({ name: 'show', arguments: { id: 987654 } });
const { resources } = await client.listResources();
const read = resources.length
  ? await client.readResource({ uri: resources.find((r) => r.uri.endsWith('/ready')).uri })
  : null;
await client.close();

const text = (result) => JSON.parse(result.content[0].text);
console.log(JSON.stringify({
  server: info,
  protocolVersion: transport._protocolVersion ?? null,
  capabilities,
  tools: tools.map((t) => ({ name: t.name, annotations: t.annotations, schema: t.inputSchema })),
  created: { isError: created.isError ?? false, value: text(created) },
  claimed: { isError: claimed.isError ?? false, value: text(claimed) },
  refused: { isError: refused.isError ?? false, value: text(refused) },
  ready: read ? JSON.parse(read.contents[0].text) : null,
}));
