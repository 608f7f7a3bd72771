import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { cacheOnlyBoxSchema, overrideSchema, serviceBoxSchema, topLevelKeys } from "../../model/schema";

const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");

/** The rows (cells) of each table in the README's "Stack file reference" section. */
function referenceTables(): string[][][] {
    const start = readme.indexOf("### Stack file reference");
    const section = readme.slice(start, readme.indexOf("\n#", start + 1));
    const tables: string[][][] = [];
    let table: string[][] | undefined;
    for (const line of section.split("\n")) {
        if (!line.startsWith("|")) {
            table = undefined;
            continue;
        }
        const cells = line.slice(1, line.lastIndexOf("|")).split("|").map((cell) => cell.trim());
        if (table === undefined) {
            tables.push((table = [])); // the header row
        } else if (!cells.every((cell) => /^-+$/.test(cell))) {
            table.push(cells);
        }
    }
    return tables;
}

/** A documented key with what its default column says. */
interface DocumentedKey {
    key: string;
    /** "required", "required unless cacheOnly", "–" (optional, no default), a default value, or "" */
    default: string;
    meaning: string;
}

/**
 * The keys of the box settings table: `ssh.host`, `ssh.port` name one key each; `.subnet` after
 * `network.parent` is `network.subnet`; a default column of as many comma-separated values as
 * keys gives each key its own, otherwise the one value holds for all.
 */
function documentedBoxKeys(rows: string[][]): DocumentedKey[] {
    return rows.flatMap(([keyCell, defaultCell, meaning]) => {
        const names = [...keyCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
        const parent = names[0].includes(".") ? names[0].slice(0, names[0].lastIndexOf(".")) : "";
        const keys = names.map((name) => (name.startsWith(".") ? `${parent}${name}` : name));
        const defaults = defaultCell.split(/,\s*/);
        return keys.map((key, i) => ({ key, default: (defaults.length === keys.length ? defaults[i] : defaultCell).trim(), meaning }));
    });
}

type Field = z.ZodType & { def: { type: string; innerType?: Field; in?: Field; defaultValue?: unknown; shape?: Record<string, Field> } };

/** The schema under defaults, optionals and transforms. */
function base(field: Field): Field {
    const inner = field.def.innerType ?? (field.def.type === "pipe" ? field.def.in : undefined);
    return inner ? base(inner) : field;
}

/** Every key of the box settings with how the schema treats a missing value. */
function schemaKeys(shape: Record<string, Field>, prefix = ""): Map<string, { required: boolean; default?: unknown }> {
    const keys = new Map<string, { required: boolean; default?: unknown }>();
    for (const [name, field] of Object.entries(shape)) {
        const inner = base(field);
        if (inner.def.type === "object" && inner.def.shape) {
            for (const [key, info] of schemaKeys(inner.def.shape, `${prefix}${name}.`)) keys.set(key, info);
        } else if (inner.def.type === "record") {
            keys.set(`${prefix}${name}."<N>"`, { required: false });
        } else {
            const type = field.def.type;
            keys.set(`${prefix}${name}`, { required: !["default", "prefault", "optional"].includes(type), ...(type === "default" ? { default: field.def.defaultValue } : {}) });
        }
    }
    return keys;
}

/** A default as the README writes it: `[]`, false, 22, `ttnode`. */
function readDefault(text: string): unknown {
    const value = text.replace(/`/g, "");
    return /^(\[\]|true|false|\d+)$/.test(value) ? JSON.parse(value) : value;
}

describe("README stack file reference", () => {
    const [topTable, boxTable] = referenceTables();
    const documented = documentedBoxKeys(boxTable);
    const service = schemaKeys(serviceBoxSchema.shape as unknown as Record<string, Field>);
    const cacheOnly = schemaKeys(cacheOnlyBoxSchema.shape as unknown as Record<string, Field>);

    it("lists exactly the top-level keys", () => {
        const keys = topTable.map(([key]) => key.replace(/`/g, "").replace(/\.<name>$/, ""));
        expect(keys.sort()).toEqual([...topLevelKeys].sort());
    });

    it("lists exactly the keys of the schema's box settings", () => {
        expect(documented.map((d) => d.key).sort()).toEqual([...service.keys()].sort());
        expect([...cacheOnly.keys()].sort()).toEqual([...service.keys()].sort());
    });

    it("lists exactly the fields of an instance override", () => {
        const row = documented.find((d) => d.key === 'overrides."<N>"')!;
        const fields = [...row.meaning.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
        expect(fields.sort()).toEqual(Object.keys(overrideSchema.shape).sort());
    });

    it("states the schema's defaults and required keys", () => {
        for (const { key, default: stated } of documented) {
            const schema = service.get(key)!;
            if (stated === "") {
                continue;
            }
            if (stated.startsWith("required")) {
                expect(schema.required, `${key} is documented as required`).toBe(true);
                // Required unless cacheOnly: a cache-only box does not need it.
                expect(cacheOnly.get(key)!.required, `${key}: ${stated}`).toBe(stated === "required");
            } else if (stated === "–") {
                expect(schema, `${key} is documented as optional without a default`).toEqual({ required: false });
            } else {
                expect(schema.default, `${key} default`).toEqual(readDefault(stated));
            }
        }
    });
});
