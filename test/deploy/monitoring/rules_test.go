// Package monitoring decodes deploy/monitoring/mcpgw-alerts.yaml strictly
// as the spec of a prometheus-operator PrometheusRule, whose groups are
// Prometheus's rule-file format: a misspelt or misplaced key fails. (That
// every metric the rules query exists is checked in the root module, next
// to the file, against a running gateway.)
package monitoring

import (
	"os"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

func TestAlertRulesDecodeStrictly(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/monitoring/mcpgw-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		t.Fatalf("mcpgw-alerts.yaml is not a valid rule file: %v", err)
	}
	if len(spec.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range spec.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Record != "" || r.Expr.String() == "" {
				t.Errorf("group %s: rule %+v: want an alert with an expr", g.Name, r)
			}
		}
	}
}
