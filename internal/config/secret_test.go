package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretsResolvedByLoad(t *testing.T) {
	keyFile := writeSecret(t, "api-key", "file-api-key\n")
	pwFile := writeSecret(t, "password", "file-password\r\n")
	tgtFile := writeSecret(t, "target-secret", "file-target-secret")
	pemFile := writeSecret(t, "agent.pem", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
	csFile := writeSecret(t, "client-secret", "file-client-secret\n")

	c := mustLoad(t, writeConfig(t, issuerYAML+`
server:
  session_key: ${SESSION}
backends:
  psk:
    url: http://127.0.0.1:1/mcp
    auth_method: pre-shared-key
    auth_config: {api_key_file: `+keyFile+`, header_name: X-Key}
  env-psk:
    url: http://127.0.0.1:2/mcp
    auth_method: pre-shared-key
    auth_config: {key: "${PSK}"}
  sa:
    url: http://127.0.0.1:3/mcp
    auth_method: service-account
    auth_config: {username: svc, password_file: `+pwFile+`}
  xaa:
    url: http://127.0.0.1:4/mcp
    auth_method: okta-cross-app
    auth_config:
      target_audience: ${AUDIENCE}
      target_client_id: client
      target_client_secret_file: `+tgtFile+`
      ca_file: /etc/ssl/ca.pem
      extra_headers:
        X-Tenant: ${TENANT}
      scopes: [read, "${SCOPE}"]
agents:
  env-agent:
    client_secret: ${CS}
    private_key: ${PK}
  file-agent:
    client_secret_file: `+csFile+`
    private_key_file: `+pemFile+`
  literal-agent:
    client_secret: "plain$ecret"
`), "SESSION=s3ss10n", "PSK=env-psk", "AUDIENCE=https://xaa.example.com", "TENANT=acme",
		"SCOPE=write", "CS=env-client-secret", "PK={\"kty\":\"OKP\"}")

	tests := []struct {
		name      string
		got, want any
	}{
		{"server.session_key ${ENV}", c.Server.SessionKey, "s3ss10n"},
		{"api_key_file read, newline trimmed", c.Backends["psk"].AuthConfig["api_key"], "file-api-key"},
		{"api_key_file key removed", c.Backends["psk"].AuthConfig["api_key_file"], nil},
		{"non-secret value untouched", c.Backends["psk"].AuthConfig["header_name"], "X-Key"},
		{"key ${ENV}", c.Backends["env-psk"].AuthConfig["key"], "env-psk"},
		{"password_file, CRLF trimmed", c.Backends["sa"].AuthConfig["password"], "file-password"},
		{"target_client_secret_file", c.Backends["xaa"].AuthConfig["target_client_secret"], "file-target-secret"},
		{"${ENV} in a non-secret auth_config value", c.Backends["xaa"].AuthConfig["target_audience"], "https://xaa.example.com"},
		{"a non-secret *_file is a path, left alone", c.Backends["xaa"].AuthConfig["ca_file"], "/etc/ssl/ca.pem"},
		{"nested map", c.Backends["xaa"].AuthConfig["extra_headers"].(map[string]any)["X-Tenant"], "acme"},
		{"list item", c.Backends["xaa"].AuthConfig["scopes"].([]any)[1], "write"},
		{"agent client_secret ${ENV}", c.Agents["env-agent"].ClientSecret, "env-client-secret"},
		{"agent private_key ${ENV}", c.Agents["env-agent"].PrivateKey, `{"kty":"OKP"}`},
		{"agent client_secret_file", c.Agents["file-agent"].ClientSecret, "file-client-secret"},
		{"agent private_key_file keeps inner newlines", c.Agents["file-agent"].PrivateKey, "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"},
		{"private_key_file emptied", c.Agents["file-agent"].PrivateKeyFile, ""},
		{"a $ inside a literal is not a reference", c.Agents["literal-agent"].ClientSecret, "plain$ecret"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestSecretErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	secretValue := "do-not-print-me"
	_, err := Load(writeConfig(t, issuerYAML+`
server:
  session_key: ${UNSET_SESSION}
backends:
  psk:
    url: http://127.0.0.1:1/mcp
    auth_method: pre-shared-key
    auth_config: {api_key_file: `+filepath.Join(dir, "missing")+`}
  both:
    url: http://127.0.0.1:2/mcp
    auth_method: pre-shared-key
    auth_config: {api_key: `+secretValue+`, api_key_file: /x}
  empty:
    url: http://127.0.0.1:3/mcp
    auth_method: service-account
    auth_config: {username: u, password: "${EMPTY}"}
  badref:
    url: http://127.0.0.1:4/mcp
    auth_method: pre-shared-key
    auth_config: {api_key: "${not valid}"}
agents:
  a:
    client_secret: ${NOPE}
    private_key_file: `+dir+`
  b:
    private_key: `+secretValue+`
    private_key_file: /y
`), []string{"EMPTY="})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	msg := err.Error()
	for _, w := range []string{
		"server.session_key: environment variable UNSET_SESSION is not set",
		"backends.psk.auth_config.api_key_file: read secret file: open " + filepath.Join(dir, "missing"),
		"backends.both.auth_config.api_key_file: set api_key or api_key_file, not both",
		"backends.empty.auth_config.password: environment variable EMPTY is empty",
		"backends.badref.auth_config.api_key: a value of the form ${...} must name an environment variable",
		"agents.a.client_secret: environment variable NOPE is not set",
		"agents.a.private_key_file: read secret file",
		"agents.b.private_key_file: set the value or its file, not both",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, secretValue) {
		t.Errorf("error message prints a secret:\n%s", msg)
	}
}

func TestResolveSecret(t *testing.T) {
	file := writeSecret(t, "s", "from-file\n\n")
	empty := writeSecret(t, "e", "\n")
	big := writeSecret(t, "big", strings.Repeat("x", maxSecretFileBytes+1))
	// ResolveSecret reads the process environment; PATH is set in every test
	// process, so the test reads it rather than setting anything.
	path := os.Getenv("PATH")
	tests := []struct {
		name, value, file string
		want              string
		wantErr           string
	}{
		{name: "literal", value: "abc", want: "abc"},
		{name: "nothing", want: ""},
		{name: "env", value: "${PATH}", want: path},
		{name: "unset env", value: "${MCPGW_SURELY_UNSET_VARIABLE}", wantErr: "MCPGW_SURELY_UNSET_VARIABLE is not set"},
		{name: "file", file: file, want: "from-file"},
		{name: "empty file", file: empty, wantErr: "is empty"},
		{name: "missing file", file: file + ".missing", wantErr: "no such file"},
		{name: "oversized file", file: big, wantErr: "larger than"},
		{name: "both", value: "abc", file: file, wantErr: "not both"},
		{name: "half a reference is a literal", value: "${PATH", want: "${PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveSecret(tt.value, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
