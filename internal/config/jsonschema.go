package config

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/invopop/jsonschema"
)

// SchemaID names the configuration's JSON Schema; editors match it by
// file name, so it only has to be stable.
const SchemaID = "https://github.com/mcpgw/mcpgw/deploy/config.schema.json"

// JSONSchema is the configuration file's JSON Schema (draft 2020-12), for
// editors and CI. It is reflected from Config's koanf tags, the same
// source of truth the loader's unknown-key check reads, so neither can
// list a key the other does not know. invopop/jsonschema does the
// reflection; what koanf reads differently from encoding/json is set here:
// durations are strings with a unit, and every section refuses unknown
// keys, as the loader does.
//
// It describes mcpgw's own keys. The Okta MCP adapter's gateway:, logging:
// and cache: sections are translated by the loader and are not in it: check
// such a file with `mcpgw config check`.
func JSONSchema() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "koanf",
		DoNotReference:             true,
		RequiredFromJSONSchemaTags: true, // nothing is required by type alone: defaults fill it
		Mapper:                     schemaType,
	}
	s := r.Reflect(&Config{})
	s.ID = SchemaID
	s.Title = "mcpgw configuration"
	s.Description = "mcpgw's config.yaml. Strings may be ${NAME} to read an environment variable; secrets may be given in <key>_file instead."
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return out, nil
}

// durationPattern is what time.ParseDuration takes, as the loader reads
// a duration: a number with a unit, or 0.
const durationPattern = `^(0|[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+)$`

func schemaType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case durationType:
		return &jsonschema.Schema{Type: "string", Pattern: durationPattern,
			Description: `a duration with a unit, such as "30s", "50ms" or "1h"`}
	}
	if t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Interface {
		// auth_config and policy.opa: free-form, each method or OPA checks its own keys.
		return &jsonschema.Schema{Type: "object"}
	}
	return nil
}
