// Package chart checks the Helm chart in deploy/helm/mcpgw: helm lint, then
// every manifest helm template renders, decoded strictly (an unknown or
// misplaced field fails) into the Kubernetes API types, and the properties
// a platform team relies on asserted on those types, for the default values
// and for ci/multi-replica-values.yaml. The rendered mcpgw.yaml is loaded
// with the gateway's own config loader.
package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../../../deploy/helm/mcpgw"

// helm runs Helm v4: HELM_BIN (make builds it once), else the module's tool.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cmd *exec.Cmd
	if bin := os.Getenv("HELM_BIN"); bin != "" {
		cmd = exec.Command(bin, args...)
	} else {
		cmd = exec.Command("go", append([]string{"tool", "helm"}, args...)...)
	}
	// No user or cluster state: helm template needs neither.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home, "KUBECONFIG="+filepath.Join(home, "none"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rendered is one render of the chart, each manifest in its API type.
type rendered struct {
	configMap      *corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	deployment     *appsv1.Deployment
	services       map[string]*corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	networkPolicy  *networkingv1.NetworkPolicy
	serviceMonitor *monitoringv1.ServiceMonitor
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits helm template's output and decodes each manifest strictly
// into the type its apiVersion and kind name. A kind the chart is not
// expected to render fails the test.
func decode(t *testing.T, out string) *rendered {
	t.Helper()
	r := &rendered{services: map[string]*corev1.Service{}}
	for _, doc := range docSeparator.Split(out, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("manifest header: %v\n%s", err, doc)
		}
		key := tm.APIVersion + "/" + tm.Kind
		newObject, ok := kinds[key]
		if !ok {
			t.Fatalf("unexpected manifest %s %s:\n%s", tm.APIVersion, tm.Kind, doc)
		}
		obj := newObject(r)
		if obj == nil {
			t.Fatalf("%s %s rendered twice", tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", tm.APIVersion, tm.Kind, err, doc)
		}
		if s, ok := obj.(*corev1.Service); ok {
			if r.services[s.Name] != nil {
				t.Fatalf("Service %s rendered twice", s.Name)
			}
			r.services[s.Name] = s
		}
	}
	return r
}

// kinds are the manifests the chart may render: each returns where the
// next one of its kind decodes to, or nil when the chart rendered a
// singleton twice.
var kinds = map[string]func(*rendered) any{
	"v1/ConfigMap":                            func(r *rendered) any { return slot(&r.configMap) },
	"v1/ServiceAccount":                       func(r *rendered) any { return slot(&r.serviceAccount) },
	"v1/Service":                              func(*rendered) any { return &corev1.Service{} },
	"apps/v1/Deployment":                      func(r *rendered) any { return slot(&r.deployment) },
	"policy/v1/PodDisruptionBudget":           func(r *rendered) any { return slot(&r.pdb) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func(r *rendered) any { return slot(&r.hpa) },
	"networking.k8s.io/v1/NetworkPolicy":      func(r *rendered) any { return slot(&r.networkPolicy) },
	"monitoring.coreos.com/v1/ServiceMonitor": func(r *rendered) any { return slot(&r.serviceMonitor) },
}

// slot fills *p with a new T and returns it, or returns nil if *p is set.
func slot[T any](p **T) any {
	if *p != nil {
		return nil
	}
	*p = new(T)
	return *p
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func render(t *testing.T, release string, args ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir, "--namespace", "mcp"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return decode(t, out)
}

func TestLint(t *testing.T) {
	for _, values := range [][]string{nil, {"-f", chartDir + "/ci/multi-replica-values.yaml"}} {
		t.Run(fmt.Sprint(values), func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", chartDir}, values...)...)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// TestRefusedValues: values that would deploy something unsafe or broken
// fail the render, with a message naming the value to set.
func TestRefusedValues(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"replicas without a DSN", []string{"--set", "replicaCount=2"}, "secrets.postgresDSN.existingSecret is required when replicaCount > 1"},
		{"autoscaling without a DSN", []string{"--set", "autoscaling.enabled=true"}, "secrets.postgresDSN.existingSecret is required"},
		{"inline PostgreSQL DSN", []string{"--set", "config.store.dsn=postgres://mcpgw:pw@db/mcpgw"}, "config.store.dsn must not name PostgreSQL inline"},
		{"no session key", []string{"--set", "secrets.sessionKey.existingSecret="}, "secrets.sessionKey.existingSecret is required"},
		{"no bundle key", []string{"--set", "secrets.bundleVerificationKey.existingSecret="}, "secrets.bundleVerificationKey.existingSecret is required"},
		{"inline session key", []string{"--set", "config.server.session_key=abc"}, "config.server.session_key is set by the chart"},
		{"own listener", []string{"--set", "config.server.listen=0.0.0.0:1"}, "config.server.listen is set by the chart"},
		{"own verification key", []string{"--set", "config.policy.verification_key=/k.pem"}, "config.policy.verification_key is set by the chart"},
		{"both PDB bounds", []string{"--set", "podDisruptionBudget.minAvailable=1"}, "set minAvailable or maxUnavailable, not both"},
		{"ServiceMonitor without metrics Service", []string{"--set", "serviceMonitor.enabled=true", "--set", "metricsService.enabled=false"}, "serviceMonitor.enabled needs metricsService.enabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", "mcpgw", chartDir}, c.args...)...)
			if err == nil {
				t.Fatalf("helm template %v rendered; want a failure with %q", c.args, c.want)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("helm template %v failed with:\n%s\nwant a message containing %q", c.args, out, c.want)
			}
		})
	}
}

// TestUnsignedNeedsNoBundleKey: development values without a bundle key
// render when they say the bundle is unsigned.
func TestUnsignedNeedsNoBundleKey(t *testing.T) {
	r := render(t, "dev", "--set", "secrets.bundleVerificationKey.existingSecret=", "--set", "config.policy.allow_unsigned=true")
	if strings.Contains(r.configMap.Data["mcpgw.yaml"], "verification_key") {
		t.Errorf("verification_key rendered without a key Secret:\n%s", r.configMap.Data["mcpgw.yaml"])
	}
}
