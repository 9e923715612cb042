package chart

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/internal/config"
)

// Where the chart mounts things (templates/_helpers.tpl).
const (
	configFile    = "/etc/mcpgw/config/mcpgw.yaml"
	sessionDir    = "/etc/mcpgw/secrets/session-key"
	bundleKeyDir  = "/etc/mcpgw/secrets/bundle-verification-key"
	oauthKeyDir   = "/etc/mcpgw/secrets/oauth-signing-key"
	dataDir       = "/var/lib/mcpgw"
	multiReplicas = chartDir + "/ci/multi-replica-values.yaml"
)

// expect is what one set of values must render.
type expect struct {
	replicas       int32 // 0: the HorizontalPodAutoscaler sets them
	hpa            bool
	serviceMonitor bool
	networkPolicy  bool
	// Secret names the pod must take from, by purpose.
	sessionSecret, bundleSecret, oauthSecret, dsnSecret string
}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want expect
	}{
		{"default values", nil, expect{
			replicas: 1, sessionSecret: "mcpgw-session-key", bundleSecret: "mcpgw-bundle-key",
		}},
		{"multi-replica values", []string{"-f", multiReplicas}, expect{
			hpa: true, serviceMonitor: true, networkPolicy: true,
			sessionSecret: "mcpgw-session-key", bundleSecret: "mcpgw-bundle-key",
			oauthSecret: "mcpgw-oauth-signing-key", dsnSecret: "mcpgw-postgres",
		}},
		{"three replicas, no autoscaler", []string{"--set", "replicaCount=3", "--set", "secrets.postgresDSN.existingSecret=pg"}, expect{
			replicas: 3, sessionSecret: "mcpgw-session-key", bundleSecret: "mcpgw-bundle-key", dsnSecret: "pg",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, "mcpgw", c.args...)
			for _, check := range []func(*testing.T, *rendered, expect){
				checkWorkload, checkProbes, checkSecurity, checkSecrets, checkConfig,
				checkServices, checkDisruption, checkAutoscaling, checkServiceMonitor, checkNetworkPolicy,
			} {
				check(t, r, c.want)
			}
		})
	}
}

func container(t *testing.T, r *rendered) *corev1.Container {
	t.Helper()
	if r.deployment == nil {
		t.Fatal("no Deployment rendered")
	}
	cs := r.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return &cs[0]
}

func podLabels(r *rendered) map[string]string { return r.deployment.Spec.Template.Labels }

// selects reports whether a label selector (matchLabels) picks labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkWorkload(t *testing.T, r *rendered, want expect) {
	t.Helper()
	d := r.deployment
	c := container(t, r)
	if !selects(d.Spec.Selector.MatchLabels, podLabels(r)) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, podLabels(r))
	}
	switch {
	case want.replicas == 0 && d.Spec.Replicas != nil:
		t.Errorf("replicas = %d with an autoscaler; want unset (the HPA owns it)", *d.Spec.Replicas)
	case want.replicas != 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas != want.replicas):
		t.Errorf("replicas = %v, want %d", d.Spec.Replicas, want.replicas)
	}
	if !slices.Equal(c.Args, []string{"serve", "--config", configFile}) {
		t.Errorf("args = %q", c.Args)
	}
	if c.Image == "" || strings.HasSuffix(c.Image, ":") {
		t.Errorf("image = %q", c.Image)
	}
	if res := c.Resources; res.Requests.Cpu().IsZero() || res.Requests.Memory().IsZero() || res.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v: want CPU and memory requests and a memory limit", res)
	}
	// The gateway never calls the Kubernetes API: no token in the pod.
	if a := d.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("pod automountServiceAccountToken is not false")
	}
	if sa := r.serviceAccount; sa == nil || sa.Name != d.Spec.Template.Spec.ServiceAccountName || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %+v: want the pod's, without token automount", sa)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a config change would not roll the pods")
	}
}

// containerPort returns the port number of the container port named name.
func containerPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("no container port named %s in %+v", name, c.Ports)
	return 0
}

// loadConfig loads the rendered mcpgw.yaml with the gateway's loader, as the
// pod would: the chart's directories are laid out under a temporary root
// (the ConfigMap's file, and a stand-in file for each item of each Secret
// volume), the config's paths are moved under that root, and the
// environment is the container's (values from Secrets replaced by
// stand-ins). A *_file the config names that no volume provides fails here.
func loadConfig(t *testing.T, r *rendered) *config.Config {
	t.Helper()
	root := t.TempDir()
	spec := r.deployment.Spec.Template.Spec
	for _, m := range container(t, r).VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("volume mount %s has no volume", m.Name)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		v := spec.Volumes[i]
		switch {
		case v.Secret != nil:
			for _, item := range v.Secret.Items {
				writeFile(t, filepath.Join(dir, item.Path), "stand-in for "+v.Secret.SecretName+"/"+item.Key)
			}
		case v.ConfigMap != nil:
			for name, data := range r.configMap.Data {
				writeFile(t, filepath.Join(dir, name), strings.ReplaceAll(strings.ReplaceAll(data,
					" /etc/mcpgw/", " "+root+"/etc/mcpgw/"), ":/var/lib/mcpgw/", ":"+root+"/var/lib/mcpgw/"))
			}
		}
	}
	var env []string
	for _, e := range container(t, r).Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = standIn(e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	cfg, err := config.Load(filepath.Join(root, configFile), env)
	if err != nil {
		t.Fatalf("the gateway refuses the rendered config: %v\n%s", err, r.configMap.Data["mcpgw.yaml"])
	}
	return cfg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// renderedConfig is the rendered mcpgw.yaml as YAML, for the paths in it.
func renderedConfig(t *testing.T, r *rendered) map[string]any {
	t.Helper()
	raw, ok := r.configMap.Data["mcpgw.yaml"]
	if !ok {
		t.Fatalf("ConfigMap has no mcpgw.yaml: %v", r.configMap.Data)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("mcpgw.yaml: %v", err)
	}
	return m
}

// str returns the string at a key path of the rendered config ("" if none).
func str(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	s, _ := v.(string)
	return s
}

// standIn is a plausible value for an environment variable a Secret sets.
func standIn(name string) string {
	switch {
	case strings.Contains(name, "DSN"):
		return "postgres://mcpgw:stand-in@db.example:5432/mcpgw"
	case strings.Contains(name, "REDIS"):
		return "redis://:stand-in@redis.example:6379/0"
	}
	return "stand-in"
}

func port(t *testing.T, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// checkProbes: liveness and startup on /healthz, readiness on /readyz, both
// on the main port (gateway/server.go: server.listen serves /healthz and the
// minimal /readyz; the metrics listener serves the detailed one), and the
// named ports are the ports the rendered config listens on.
func checkProbes(t *testing.T, r *rendered, _ expect) {
	t.Helper()
	c := container(t, r)
	cfg := renderedConfig(t, r)
	listen, metrics := str(cfg, "server", "listen"), str(cfg, "server", "metrics_listen")
	if got, want := containerPort(t, c, "http"), port(t, listen); got != want {
		t.Errorf("container port http = %d, server.listen = %s", got, listen)
	}
	if got, want := containerPort(t, c, "metrics"), port(t, metrics); got != want {
		t.Errorf("container port metrics = %d, server.metrics_listen = %s", got, metrics)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"startup", c.StartupProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: %+v, want an HTTP GET", p.name, p.probe)
			continue
		}
		if g := p.probe.HTTPGet; g.Path != p.path || g.Port != intstr.FromString("http") {
			t.Errorf("%s probe: GET %s on %s, want %s on port http", p.name, g.Path, g.Port.String(), p.path)
		}
	}
}

func checkSecurity(t *testing.T, r *rendered, _ expect) {
	t.Helper()
	pod := r.deployment.Spec.Template.Spec.SecurityContext
	c := container(t, r).SecurityContext
	if pod == nil || c == nil {
		t.Fatalf("security contexts: pod %+v container %+v", pod, c)
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	isFalse := func(b *bool) bool { return b != nil && !*b }
	if !isTrue(pod.RunAsNonRoot) || !isTrue(c.RunAsNonRoot) {
		t.Error("runAsNonRoot is not true on the pod and the container")
	}
	if c.RunAsUser == nil || *c.RunAsUser == 0 {
		t.Errorf("container runAsUser = %v, want the image's non-root user", c.RunAsUser)
	}
	if !isTrue(c.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if !isFalse(c.AllowPrivilegeEscalation) {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if isTrue(c.Privileged) {
		t.Error("privileged")
	}
	if c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) > 0 {
		t.Errorf("capabilities = %+v, want drop [ALL] and no add", c.Capabilities)
	}
	for who, sc := range map[string]*corev1.SeccompProfile{"pod": pod.SeccompProfile, "container": c.SeccompProfile} {
		if sc == nil || sc.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s seccompProfile = %+v, want RuntimeDefault", who, sc)
		}
	}
}

// mountFor returns the volume mount holding path (the longest mount path
// that contains it) and that mount's volume.
func mountFor(t *testing.T, r *rendered, path string) (corev1.VolumeMount, corev1.Volume, bool) {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range container(t, r).VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")) && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if best.Name != "" && v.Name == best.Name {
			return best, v, true
		}
	}
	return best, corev1.Volume{}, false
}

// fromSecret checks that path is a file of a read-only mount of the Secret
// named secret.
func fromSecret(t *testing.T, r *rendered, what, path, secret string) {
	t.Helper()
	m, v, ok := mountFor(t, r, path)
	switch {
	case !ok:
		t.Errorf("%s %s: on no volume (the image's read-only root)", what, path)
	case v.Secret == nil || v.Secret.SecretName != secret:
		t.Errorf("%s %s: volume %s is %+v, want Secret %s", what, path, v.Name, v.VolumeSource, secret)
	case !m.ReadOnly:
		t.Errorf("%s: mount %s is writable", what, m.MountPath)
	}
}

// writable checks that path is on a writable emptyDir (the root is not).
func writable(t *testing.T, r *rendered, what, path string) {
	t.Helper()
	m, v, ok := mountFor(t, r, path)
	if !ok || v.EmptyDir == nil || m.ReadOnly {
		t.Errorf("%s %s: want it on a writable emptyDir, got mount %+v volume %+v", what, path, m, v.VolumeSource)
	}
}

// checkSecrets: every secret reaches the pod from a Secret (a file of a
// read-only mount, or an environment variable's secretKeyRef), never as a
// literal in the pod spec or the ConfigMap.
func checkSecrets(t *testing.T, r *rendered, want expect) {
	t.Helper()
	cfg := renderedConfig(t, r)
	sessionKey, bundleKey := str(cfg, "server", "session_key_file"), str(cfg, "policy", "verification_key")
	fromSecret(t, r, "server.session_key_file", sessionKey, want.sessionSecret)
	if !strings.HasPrefix(sessionKey, sessionDir+"/") {
		t.Errorf("server.session_key_file = %q", sessionKey)
	}
	fromSecret(t, r, "policy.verification_key", bundleKey, want.bundleSecret)
	if !strings.HasPrefix(bundleKey, bundleKeyDir+"/") {
		t.Errorf("policy.verification_key = %q", bundleKey)
	}

	m, v, ok := mountFor(t, r, oauthKeyDir+"/x")
	if want.oauthSecret == "" {
		if ok && m.MountPath == oauthKeyDir {
			t.Errorf("OAuth signing key mounted without secrets.oauthSigningKey: %+v", v)
		}
	} else {
		fromSecret(t, r, "OAuth signing key", oauthKeyDir+"/x", want.oauthSecret)
		agents, _ := cfg["agents"].(map[string]any)
		for name := range agents {
			if f := str(agents, name, "private_key_file"); f != "" {
				fromSecret(t, r, "agents."+name+".private_key_file", f, want.oauthSecret)
			}
		}
	}

	var dsn *corev1.EnvVar
	for i, e := range container(t, r).Env {
		if e.Name == "MCPGW_STORE__DSN" {
			dsn = &container(t, r).Env[i]
		}
		if e.Value != "" && secretName.MatchString(e.Name) {
			t.Errorf("env %s has a literal value: secrets come from secretKeyRef", e.Name)
		}
	}
	if want.dsnSecret == "" {
		if dsn != nil {
			t.Errorf("MCPGW_STORE__DSN set without secrets.postgresDSN: %+v", dsn)
		}
		sqlite := str(cfg, "store", "dsn")
		if !strings.HasPrefix(sqlite, "file:"+dataDir+"/") {
			t.Errorf("store.dsn = %q, want SQLite on the data volume", sqlite)
		}
		writable(t, r, "SQLite store", strings.TrimPrefix(sqlite, "file:"))
	} else if dsn == nil || dsn.ValueFrom == nil || dsn.ValueFrom.SecretKeyRef == nil || dsn.ValueFrom.SecretKeyRef.Name != want.dsnSecret {
		t.Errorf("MCPGW_STORE__DSN = %+v, want a secretKeyRef to %s", dsn, want.dsnSecret)
	}
	writable(t, r, "policy.persist_dir", str(cfg, "policy", "persist_dir"))

	raw := r.configMap.Data["mcpgw.yaml"]
	for _, leak := range []string{"PRIVATE KEY", "postgres://", "redis://:"} {
		if strings.Contains(raw, leak) {
			t.Errorf("the ConfigMap holds %q: secrets belong in Secrets", leak)
		}
	}
}

var secretName = regexp.MustCompile(`(?i)secret|password|key|token|dsn|redis_url`)

// checkConfig: the gateway loads the rendered config with the pod's
// environment, and the chart's own keys are right.
func checkConfig(t *testing.T, r *rendered, want expect) {
	t.Helper()
	cfg := loadConfig(t, r)
	if want.dsnSecret != "" && !strings.HasPrefix(cfg.Store.DSN, "postgres://") {
		t.Errorf("store.dsn = %q: MCPGW_STORE__DSN did not override the file", cfg.Store.DSN)
	}
	if h, _, _ := net.SplitHostPort(cfg.Server.Listen); h != "0.0.0.0" {
		t.Errorf("server.listen = %q: the kubelet and Service reach the pod IP, not loopback", cfg.Server.Listen)
	}
	if cfg.Server.PublicURL == "" {
		t.Error("server.public_url is empty")
	}
	m, _, ok := mountFor(t, r, configFile)
	if !ok || !m.ReadOnly {
		t.Errorf("%s is not on a read-only mount: %+v", configFile, m)
	}
}

func servicePort(s *corev1.Service) []string {
	var ports []string
	for _, p := range s.Spec.Ports {
		ports = append(ports, p.TargetPort.String())
	}
	return ports
}

// checkServices: the main Service exposes only the main port; metrics have
// a Service of their own, so exposing the first never exposes the second.
func checkServices(t *testing.T, r *rendered, _ expect) {
	t.Helper()
	main, metrics := r.services["mcpgw"], r.services["mcpgw-metrics"]
	if main == nil || metrics == nil {
		t.Fatalf("services rendered: %v, want mcpgw and mcpgw-metrics", keys(r.services))
	}
	for _, s := range []*corev1.Service{main, metrics} {
		if !selects(s.Spec.Selector, podLabels(r)) {
			t.Errorf("Service %s selector %v does not select the pods", s.Name, s.Spec.Selector)
		}
	}
	if got := servicePort(main); !slices.Equal(got, []string{"http"}) {
		t.Errorf("Service mcpgw targets %v, want [http] only", got)
	}
	if got := servicePort(metrics); !slices.Equal(got, []string{"metrics"}) {
		t.Errorf("Service mcpgw-metrics targets %v, want [metrics]", got)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func checkDisruption(t *testing.T, r *rendered, _ expect) {
	t.Helper()
	p := r.pdb
	if p == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if p.Spec.Selector == nil || !selects(p.Spec.Selector.MatchLabels, podLabels(r)) {
		t.Errorf("PodDisruptionBudget selector %+v does not select the pods", p.Spec.Selector)
	}
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget: minAvailable %v, maxUnavailable %v: want exactly one", p.Spec.MinAvailable, p.Spec.MaxUnavailable)
	}
}

// optional checks that an optional manifest is rendered exactly when the
// values ask for it, and reports whether there is one to check further.
func optional(t *testing.T, kind string, rendered, want bool) bool {
	t.Helper()
	if rendered != want {
		t.Errorf("%s rendered: %v, want %v", kind, rendered, want)
	}
	return rendered && want
}

func checkAutoscaling(t *testing.T, r *rendered, want expect) {
	t.Helper()
	if !optional(t, "HorizontalPodAutoscaler", r.hpa != nil, want.hpa) {
		return
	}
	ref := r.hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != r.deployment.Name || ref.APIVersion != appsv1.SchemeGroupVersion.String() {
		t.Errorf("HPA targets %+v, want Deployment %s", ref, r.deployment.Name)
	}
	if min := r.hpa.Spec.MinReplicas; min == nil || *min < 2 || r.hpa.Spec.MaxReplicas < *min || len(r.hpa.Spec.Metrics) == 0 {
		t.Errorf("HPA min %v max %d metrics %d", min, r.hpa.Spec.MaxReplicas, len(r.hpa.Spec.Metrics))
	}
}

func checkServiceMonitor(t *testing.T, r *rendered, want expect) {
	t.Helper()
	sm := r.serviceMonitor
	if !optional(t, "ServiceMonitor", sm != nil, want.serviceMonitor) {
		return
	}
	metrics, main := r.services["mcpgw-metrics"], r.services["mcpgw"]
	if !selects(sm.Spec.Selector.MatchLabels, metrics.Labels) || selects(sm.Spec.Selector.MatchLabels, main.Labels) {
		t.Errorf("ServiceMonitor selector %v: want the metrics Service only", sm.Spec.Selector.MatchLabels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port metrics, /metrics", sm.Spec.Endpoints)
	}
}

func checkNetworkPolicy(t *testing.T, r *rendered, want expect) {
	t.Helper()
	np := r.networkPolicy
	if !optional(t, "NetworkPolicy", np != nil, want.networkPolicy) {
		return
	}
	if !selects(np.Spec.PodSelector.MatchLabels, podLabels(r)) {
		t.Errorf("NetworkPolicy selects %v, not the pods", np.Spec.PodSelector.MatchLabels)
	}
	ports := map[string]int{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Errorf("ingress rule without a port: %+v", rule)
				continue
			}
			ports[p.Port.String()]++
			if p.Port.String() == "metrics" && len(rule.From) == 0 {
				t.Error("the metrics port is open to every source")
			}
		}
	}
	if ports["http"] != 1 || ports["metrics"] != 1 || len(ports) != 2 {
		t.Errorf("NetworkPolicy ingress ports %v, want http and metrics once each", ports)
	}
}
