package main

import (
	"encoding/json"
	"strings"
)

// schemaJSON is the package schema for what this provider implements: command:remote:Command
// and its types, as in pulumi-command 1.2.1 (the engine does not need it for preview, up or
// destroy; tools that inspect providers do).
func schemaJSON() string {
	str := map[string]any{"type": "string"}
	secretStr := map[string]any{"type": "string", "secret": true}
	connProps := func(proxy bool) map[string]any {
		m := map[string]any{
			"host": str, "port": map[string]any{"type": "number", "default": 22},
			"user": map[string]any{"type": "string", "default": "root"}, "password": secretStr,
			"privateKey": secretStr, "privateKeyPassword": secretStr, "agentSocketPath": str, "hostKey": str,
			"dialErrorLimit": map[string]any{"type": "integer", "default": 10},
			"perDialTimeout": map[string]any{"type": "integer", "default": 15},
		}
		if proxy {
			m["proxy"] = map[string]any{"$ref": "#/types/command:remote:ProxyConnection"}
		}
		return m
	}
	inputs := map[string]any{
		"connection":             map[string]any{"$ref": "#/types/command:remote:Connection", "secret": true},
		"create":                 str,
		"update":                 str,
		"delete":                 str,
		"stdin":                  str,
		"logging":                map[string]any{"$ref": "#/types/command:remote:Logging"},
		"environment":            map[string]any{"type": "object", "additionalProperties": str},
		"addPreviousOutputInEnv": map[string]any{"type": "boolean", "default": true},
		"triggers": map[string]any{"type": "array", "items": map[string]any{"$ref": "pulumi.json#/Any"},
			"replaceOnChanges": true},
	}
	props := map[string]any{"stdout": str, "stderr": str}
	for k, v := range inputs {
		props[k] = v
	}
	schema := map[string]any{
		"name":        "command",
		"version":     strings.TrimPrefix(Version, "v"),
		"description": "overlay-fleet's build of the command provider: command:remote:Command only",
		"resources": map[string]any{
			commandType: map[string]any{
				"description":     "A command to run on a remote host over SSH.",
				"inputProperties": inputs, "requiredInputs": []string{"connection"},
				"properties": props, "required": []string{"connection", "stdout", "stderr"},
			},
		},
		"types": map[string]any{
			"command:remote:Connection": map[string]any{"type": "object", "properties": connProps(true),
				"required": []string{"host"}},
			"command:remote:ProxyConnection": map[string]any{"type": "object", "properties": connProps(false),
				"required": []string{"host"}},
			"command:remote:Logging": map[string]any{"type": "string", "enum": []map[string]any{
				{"value": "stdout"}, {"value": "stderr"}, {"value": "stdoutAndStderr"}, {"value": "none"},
			}},
		},
	}
	b, _ := json.Marshal(schema)
	return string(b)
}
