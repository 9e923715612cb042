package config

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// yamlDoc reads YAML as the schema validator wants it: JSON values.
func yamlDoc(t *testing.T, text []byte) any {
	t.Helper()
	m, err := yaml.Parser().Unmarshal(text)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestShippedConfigsMatchTheSchema(t *testing.T) {
	s := compiledSchema(t)
	raw, err := os.ReadFile("../../testdata/config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(yamlDoc(t, raw)); err != nil {
		t.Fatalf("testdata/config/example.yaml: %v", err)
	}
}

func TestSchemaRefusesWhatTheLoaderRefuses(t *testing.T) {
	s := compiledSchema(t)
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "sever:\n  listen: 127.0.0.1:1\n", "sever"},
		{"unknown backend key", "backends:\n  hr:\n    url: https://hr/mcp\n    timout_seconds: 5\n", "timout_seconds"},
		{"duration without unit", "policy:\n  timeout: 50\n", "timeout"},
		{"duration not a duration", "server:\n  read_timeout: soon\n", "read_timeout"},
		{"list where a string goes", "server:\n  listen: [a]\n", "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(yamlDoc(t, []byte(tt.yaml)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	ok := "server:\n  read_timeout: 1m30s\n  max_body_bytes: 1024\nagents:\n  a:\n    client_id: x\n    scopes: [mcp:read]\n"
	if err := s.Validate(yamlDoc(t, []byte(ok))); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

// The committed copy is what editors and CI fetch; `make schema` writes it.
func TestCommittedSchemaIsCurrent(t *testing.T) {
	want, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Fatal("deploy/config.schema.json is not what mcpgw config schema prints: run make schema")
	}
}
