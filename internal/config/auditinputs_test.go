package config

import (
	"strings"
	"testing"
	"time"
)

// audit.record_inputs and audit.input_retention: defaults (off, 168h), an
// explicit 0 kept (as long as the record), and field paths on refusal.
func TestAuditInputKeys(t *testing.T) {
	c := mustLoad(t, writeConfig(t, minimal))
	if c.Audit.RecordInputs || c.Audit.InputRetention != 168*time.Hour {
		t.Fatalf("defaults: record_inputs %v, input_retention %v", c.Audit.RecordInputs, c.Audit.InputRetention)
	}
	c = mustLoad(t, writeConfig(t, minimal+"audit: {record_inputs: true, input_retention: 0}\n"))
	if !c.Audit.RecordInputs || c.Audit.InputRetention != 0 {
		t.Fatalf("explicit: record_inputs %v, input_retention %v", c.Audit.RecordInputs, c.Audit.InputRetention)
	}
	c, err := Load(writeConfig(t, minimal), []string{"MCPGW_AUDIT__RECORD_INPUTS=true", "MCPGW_AUDIT__INPUT_RETENTION=24h"})
	if err != nil || !c.Audit.RecordInputs || c.Audit.InputRetention != 24*time.Hour {
		t.Fatalf("environment: %v, %+v", err, c)
	}
	for yaml, want := range map[string]string{
		"audit: {input_retention: -1h}": "audit.input_retention: must be >= 0",
		"audit: {input_retention: 5s}":  "audit.input_retention: must be at least 1m or 0",
	} {
		_, err := Load(writeConfig(t, minimal+yaml+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", yaml, err, want)
		}
	}
}

// audit.stdout and audit.http: loaded, validated with their paths, and
// the collector's headers never printed.
func TestAuditSinkKeys(t *testing.T) {
	c := mustLoad(t, writeConfig(t, minimal+"audit: {stdout: true, http: {url: \"https://siem.example.com/in?k=q\", headers: {Authorization: \"Bearer s3cret\"}, gzip: true}}\n"))
	if !c.Audit.Stdout || c.Audit.HTTP.URL == "" || !c.Audit.HTTP.Gzip || c.Audit.HTTP.Headers["Authorization"] != "Bearer s3cret" {
		t.Fatalf("audit sinks: %+v", c.Audit)
	}
	if printed := c.String(); strings.Contains(printed, "s3cret") || strings.Contains(printed, "k=q") {
		t.Fatalf("printed configuration shows the collector's secrets:\n%s", printed)
	}
	for yaml, want := range map[string]string{
		"audit: {http: {url: \"siem.example.com\"}}":          "audit.http.url: must be an absolute http(s) URL",
		"audit: {http: {headers: {Authorization: \"x\"}}}":    "audit.http.url: required when audit.http.headers or gzip is set",
		"audit: {http: {url: \"ftp://siem.example.com/in\"}}": "audit.http.url: must be an absolute http(s) URL",
	} {
		_, err := Load(writeConfig(t, minimal+yaml+"\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", yaml, err, want)
		}
	}
}
