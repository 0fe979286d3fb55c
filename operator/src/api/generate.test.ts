// What schema.ts generates is consistent (CRD YAML, types), and the schema is complete enough
// for `kubectl explain` and for ajv (that the committed files are up to date:
// scripts/generated.test.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { crd, generatedFiles, typescript } from "./generate.ts";
import { resources, type Schema, streamJobResource } from "./schema.ts";
import { toJsonSchema } from "./validate.ts";

/** Every field (property) of a schema with its dotted path, through objects and array items. */
function* fields(schema: Schema, path: string): Generator<[string, Schema]> {
  const holder = schema.items ?? schema;
  for (const [name, property] of Object.entries(holder.properties ?? {})) {
    const child = `${path}${schema.items ? "[]" : ""}.${name}`;
    yield [child, property];
    yield* fields(property, child);
  }
}

describe("generated files", () => {
  test("the CRD YAML parses back to the CRD built from the schema", () => {
    const file = generatedFiles().get("crds/streamjobs.weir.dev.yaml") ?? "";
    assert.deepEqual(parse(file), JSON.parse(JSON.stringify(crd(streamJobResource))));
  });

  test("the types name every titled object once and mark defaulted fields as present", () => {
    const types = typescript();
    assert.match(types, /export interface StreamJobSpec \{/);
    assert.equal(types.match(/export interface SavepointRecord \{/g)?.length, 1);
    assert.match(types, /\n {2}parallelism: number;/, "parallelism has a default");
    assert.match(types, /\n {2}restartNonce\?: number;/, "restartNonce has none");
    assert.match(types, /requests\?: Record<string, number \| string>;/, "int-or-string");
  });
});

describe("schema", () => {
  for (const resource of resources) {
    test(`${resource.kind}: every field has a description (kubectl explain documents it)`, () => {
      // Except metadata: the API server owns its schema and allows nothing but the type there.
      const undocumented = [...fields(resource.schema, resource.kind)]
        .filter(([path, schema]) => !schema.description && path !== `${resource.kind}.metadata`)
        .map(([path]) => path);
      assert.deepEqual(undocumented, []);
    });

    test(`${resource.kind}: every field has a type (a structural schema)`, () => {
      const untyped = [...fields(resource.schema, resource.kind)]
        .filter(([, schema]) => !schema.type && !schema["x-kubernetes-int-or-string"])
        .map(([path]) => path);
      assert.deepEqual(untyped, []);
    });

    test(`${resource.kind}: ajv compiles the schema in strict mode`, () => {
      const ajv = new Ajv({ strict: true });
      ajv.addFormat("date-time", true);
      assert.doesNotThrow(() => ajv.compile(toJsonSchema(resource.schema)));
    });
  }
});
