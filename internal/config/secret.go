package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/mcpgw/mcpgw/internal/secrets"
)

// maxSecretFileBytes bounds a secret file read, so a mistaken path such as
// /dev/zero fails instead of exhausting memory.
const maxSecretFileBytes = 1 << 20

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ResolveSecret returns a secret given either inline (value) or in a file
// (file, read with trailing newlines trimmed); setting both is an error. An
// inline value of the exact form "${NAME}" is replaced by the environment
// variable NAME, which must be set and non-empty; any other value is
// returned as it is. Neither set returns "", nil: whether the secret is
// required is the caller's decision.
//
// Load resolves the configuration's own secrets with the environ it was
// given; ResolveSecret reads the process environment, for records that come
// from elsewhere (the store, the admin API).
func ResolveSecret(value, file string) (string, error) {
	return resolveSecret(value, file, os.LookupEnv)
}

func resolveSecret(value, file string, lookup func(string) (string, bool)) (string, error) {
	if value != "" && file != "" {
		return "", errors.New("set the value or its file, not both")
	}
	if file != "" {
		return readSecretFile(file)
	}
	if !strings.HasPrefix(value, "${") || !strings.HasSuffix(value, "}") {
		return value, nil
	}
	name := value[2 : len(value)-1]
	if !envName.MatchString(name) {
		// The value is not echoed: it may be a literal secret that merely
		// looks like a reference.
		return "", errors.New("a value of the form ${...} must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)")
	}
	v, ok := lookup(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	if v == "" {
		return "", fmt.Errorf("environment variable %s is empty", name)
	}
	return v, nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFileBytes {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretFileBytes)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// resolveSecrets replaces secret references in place. Each *_file field is
// emptied once read, so later consumers that call ResolveSecret(value, file)
// see only the value.
func (c *Config) resolveSecrets(lookup func(string) (string, bool)) []error {
	var errs []error
	if s, err := resolveSecret(c.Server.SessionKey, "", lookup); err != nil {
		errs = append(errs, fmt.Errorf("server.session_key: %w", err))
	} else {
		c.Server.SessionKey = s
	}
	for _, name := range sortedKeys(c.Agents) {
		a := c.Agents[name]
		base := "agents." + name + "."
		if s, err := resolveSecret(a.ClientSecret, a.ClientSecretFile, lookup); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", base, secretField(a.ClientSecretFile, "client_secret"), err))
		} else {
			a.ClientSecret, a.ClientSecretFile = s, ""
		}
		if s, err := resolveSecret(a.PrivateKey, a.PrivateKeyFile, lookup); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %w", base, secretField(a.PrivateKeyFile, "private_key"), err))
		} else {
			a.PrivateKey, a.PrivateKeyFile = s, ""
		}
		c.Agents[name] = a
	}
	for _, name := range sortedKeys(c.Backends) {
		errs = append(errs, resolveTree(c.Backends[name].AuthConfig, "backends."+name+".auth_config", lookup)...)
	}
	return errs
}

// secretField names the key at fault: the file key when one was given.
func secretField(file, key string) string {
	if file != "" {
		return key + "_file"
	}
	return key
}

// resolveTree expands "${NAME}" in every string of an auth_config tree and
// replaces each secret *_file key by its base key holding the file content.
func resolveTree(m map[string]any, path string, lookup func(string) (string, bool)) []error {
	var errs []error
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch v := m[k].(type) {
		case string:
			if base, isFile := strings.CutSuffix(k, "_file"); isFile && secrets.IsSecretKey(base) {
				if existing, _ := m[base].(string); existing != "" {
					errs = append(errs, fmt.Errorf("%s: set %s or %s, not both", p, base, k))
					continue
				}
				s, err := resolveSecret("", v, lookup)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", p, err))
					continue
				}
				m[base] = s
				delete(m, k)
				continue
			}
			s, err := resolveSecret(v, "", lookup)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				continue
			}
			m[k] = s
		case map[string]any:
			errs = append(errs, resolveTree(v, p, lookup)...)
		case []any:
			for i, item := range v {
				ip := fmt.Sprintf("%s[%d]", p, i)
				switch it := item.(type) {
				case string:
					s, err := resolveSecret(it, "", lookup)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", ip, err))
						continue
					}
					v[i] = s
				case map[string]any:
					errs = append(errs, resolveTree(it, ip, lookup)...)
				}
			}
		}
	}
	return errs
}
