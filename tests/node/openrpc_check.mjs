// Validate an OpenRPC document (pm-agentd's `rpc.discover` result) against the official
// OpenRPC meta-schema from npm (@open-rpc/meta-schema).
//
//   node openrpc_check.mjs [FILE]      (no FILE, or "-": read the document from stdin)
//
// The document may be the bare OpenRPC object or a whole JSON-RPC response ({"result": …}).
// Prints one JSON object on stdout: {valid, openrpc, methods, errors: [...], warnings: [...]};
// exits 1 when the document is invalid, 2 when it cannot be read at all.
//
// `warnings` (not errors: the meta-schema accepts them) lists what a draft-07 reader of the
// document would misread: keywords that exist only in JSON Schema 2019-09/2020-12, and $refs
// that point nowhere inside the document.
//
// Which JSON Schema dialect: the meta-schema declares "$schema": "https://meta.json-schema.tools/"
// and points every embedded schema (params, results, components) at that same URI. That
// meta-schema (npm @json-schema-tools/meta-schema, the one @open-rpc/schema-utils-js uses) is
// JSON Schema draft-07 with "definitions", so Ajv's default class (draft-07) is the match; it is
// registered under the URI the meta-schema refers to, so embedded schemas are really checked
// against it rather than waved through.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

import Ajv from "ajv";
import addFormats from "ajv-formats";

const require = createRequire(import.meta.url);
const { openrpcDocument: openrpcMetaSchema } = require("@open-rpc/meta-schema");
const jsonSchemaMetaSchema = require("@json-schema-tools/meta-schema/schema.json");

// The meta-schema refers to it without the trailing slash its own $id has.
const JSON_SCHEMA_TOOLS = "https://meta.json-schema.tools";

function fail(message, code = 2) {
  process.stderr.write(`openrpc_check: ${message}\n`);
  process.exit(code);
}

function readDocument(source) {
  let text;
  try {
    text = readFileSync(source === "-" ? 0 : source, "utf8");
  } catch (e) {
    fail(`cannot read ${source === "-" ? "stdin" : source}: ${e.message}`);
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    fail(`not JSON: ${e.message}`);
  }
  if (doc && typeof doc === "object" && "result" in doc && "jsonrpc" in doc) {
    doc = doc.result; // a whole JSON-RPC response was given
  }
  return doc;
}

function validator() {
  // strict: false — the meta-schemas carry annotation keywords Ajv's strict mode does not know.
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  // The JSON Schema meta-schema names itself as its own $schema; register it without
  // validating it against itself, then the OpenRPC meta-schema may refer to it.
  ajv.addMetaSchema(jsonSchemaMetaSchema, JSON_SCHEMA_TOOLS, false);
  return ajv.compile(openrpcMetaSchema);
}

const doc = readDocument(process.argv[2] ?? "-");
let validate;
try {
  validate = validator();
} catch (e) {
  fail(`could not compile the OpenRPC meta-schema: ${e.message}`);
}
const valid = validate(doc);
const errors = (validate.errors ?? []).map((e) => ({
  path: e.instancePath || "/",
  message: e.message,
  keyword: e.keyword,
  params: e.params,
  schemaPath: e.schemaPath,
}));
// Keywords a draft-07 validator does not know: it ignores them, which can change the meaning
// of the schema around them (prefixItems + items: false accepts only [] under draft-07).
const NOT_DRAFT_07 = new Set([
  "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
  "prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedItems",
  "unevaluatedProperties", "minContains", "maxContains", "contentSchema",
]);

// Schema keywords whose values map names to schemas (the names are not keywords).
const NAME_MAPS = new Set(["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"]);

function dialectWarnings(root) {
  const warnings = [];
  const pointer = (path, key) => `${path}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
  const resolves = (ref) => ref.slice(2).split("/").reduce(
    (at, part) => (at == null ? at : at[part.replaceAll("~1", "/").replaceAll("~0", "~")]),
    root,
  ) !== undefined;
  // mode: "doc" (OpenRPC objects), "schema" (a JSON Schema), "names" (name → schema).
  const walk = (node, path, mode) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, pointer(path, i), mode === "names" ? "schema" : mode));
      return;
    }
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      const here = pointer(path, key);
      if (mode === "names") {
        walk(value, here, "schema");
      } else if (mode === "schema") {
        if (NOT_DRAFT_07.has(key)) warnings.push({ path: here, message: `"${key}" is not a draft-07 keyword` });
        if (key === "$ref" && typeof value === "string" && value.startsWith("#/") && !resolves(value)) {
          warnings.push({ path: here, message: `$ref ${value} resolves to nothing` });
        }
        if (key === "enum" || key === "const" || key === "default" || key === "examples") continue;
        walk(value, here, NAME_MAPS.has(key) ? "names" : "schema");
      } else {
        walk(value, here, key === "schema" ? "schema" : key === "schemas" ? "names" : "doc");
      }
    }
  };
  walk(root, "", "doc");
  return warnings;
}

const findings = {
  valid,
  openrpc: doc?.openrpc ?? null,
  methods: Array.isArray(doc?.methods) ? doc.methods.length : null,
  schemas: Object.keys(doc?.components?.schemas ?? {}).length,
  metaSchema: `@open-rpc/meta-schema ${require("@open-rpc/meta-schema/package.json").version}`,
  errors,
  warnings: valid ? dialectWarnings(doc) : [],
};
process.stdout.write(JSON.stringify(findings) + "\n");
if (!valid) {
  for (const e of errors) {
    process.stderr.write(`invalid at ${e.path}: ${e.message} (${e.schemaPath})\n`);
  }
  process.exit(1);
}
