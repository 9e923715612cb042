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
