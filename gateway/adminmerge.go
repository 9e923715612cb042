package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// How a PUT or PATCH body meets the stored entry: secrets sent back as
// GET showed them are kept (only for the same destination), references to
// the environment or files are refused.
func mergeAgent(path string, sent map[string]json.RawMessage, v, old *config.Agent) []string {
	var stored config.Agent
	if old != nil {
		stored = *old
	}
	var problems []string
	for _, f := range []struct {
		key, fileKey  string
		value, file   *string
		stored, sFile string
	}{
		{"client_secret", "client_secret_file", &v.ClientSecret, &v.ClientSecretFile, stored.ClientSecret, stored.ClientSecretFile},
		{"private_key", "private_key_file", &v.PrivateKey, &v.PrivateKeyFile, stored.PrivateKey, stored.PrivateKeyFile},
	} {
		if _, present := sent[f.key]; !present {
			*f.value = f.stored
		} else if restored, problem := secrets.RestoreString(path+"."+f.key, *f.value, f.stored); problem != "" {
			problems = append(problems, problem)
		} else {
			*f.value = restored
		}
		if isEnvReference(*f.value) && *f.value != f.stored {
			problems = append(problems, envReferenceRefused(path+"."+f.key))
		}
		if *f.file != "" && *f.file != f.sFile {
			problems = append(problems, fileRefused(path+"."+f.fileKey, f.key))
		}
	}
	return problems
}

func mergeBackend(path string, sent map[string]json.RawMessage, v, old *config.Backend) []string {
	var problems []string
	var stored, shown config.Backend
	if old != nil {
		stored, shown = *old, old.Redacted()
	}
	if v.URL == shown.URL && shown.URL != stored.URL {
		v.URL = stored.URL
	}
	// kept lists the stored secrets this write keeps without sending them.
	var kept []string
	if _, present := sent["auth_config"]; !present {
		v.AuthConfig = stored.AuthConfig
		for _, k := range slices.Sorted(maps.Keys(stored.AuthConfig)) {
			if !reflect.DeepEqual(shown.AuthConfig[k], stored.AuthConfig[k]) {
				kept = append(kept, path+".auth_config."+k)
			}
		}
	} else {
		for _, k := range slices.Sorted(maps.Keys(v.AuthConfig)) {
			value, keeps, refused := secrets.Restore(path+".auth_config."+k, v.AuthConfig[k], shown.AuthConfig[k], stored.AuthConfig[k])
			v.AuthConfig[k], kept, problems = value, append(kept, keeps...), append(problems, refused...)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.AuthConfig)) {
		refusedReferences(path+".auth_config."+k, k, v.AuthConfig[k], stored.AuthConfig[k], &problems)
	}
	// A kept secret goes where the stored one went, or not at all: it was
	// given for that destination. Whoever re-points the backend gives it
	// again, so the API never sends a secret it will not show to a place
	// of the caller's choosing.
	if old != nil && len(kept) > 0 {
		if changed := destinationChanges(v, &stored); len(changed) > 0 {
			for _, k := range kept {
				problems = append(problems, fmt.Sprintf("%s: the destination changed (%s); give the secret again", k, strings.Join(changed, ", ")))
			}
		}
	}
	return problems
}

// destinationChanges names the destination fields in which the merged
// write v differs from the stored backend: "url" and "auth_config.<key>"
// (at any depth).
func destinationChanges(v, stored *config.Backend) []string {
	var out []string
	if v.URL != stored.URL {
		out = append(out, "url")
	}
	return append(out, changedDestinations("auth_config", v.AuthConfig, stored.AuthConfig)...)
}

func changedDestinations(path string, sent, stored map[string]any) []string {
	keys := slices.Collect(maps.Keys(sent))
	for k := range stored {
		if _, ok := sent[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		a, b := sent[k], stored[k]
		if destinationKey.MatchString(k) {
			if !reflect.DeepEqual(a, b) {
				out = append(out, path+"."+k)
			}
			continue
		}
		// A section on either side is compared key by key with what stands
		// on the other (nothing, when it was removed or is no longer a
		// section): dropping a nested issuer or address must count as a
		// change, or a kept secret would follow the connector's fallback.
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok || bok {
			out = append(out, changedDestinations(path+"."+k, am, bm)...)
		}
	}
	return out
}

// refusedReferences reports "${NAME}" values and *_file keys that are not
// already stored at the same place. The config file may use both, since
// whoever writes it already controls the gateway's environment and files.
// Through the API they would let a caller make the gateway read its own
// environment or files (the session key, a signing key) and send them as a
// credential to a backend URL of the caller's choosing.
func refusedReferences(path, key string, sent, stored any, problems *[]string) {
	switch s := sent.(type) {
	case string:
		if reflect.DeepEqual(sent, stored) {
			return
		}
		if strings.HasSuffix(key, "_file") && s != "" {
			*problems = append(*problems, fileRefused(path, strings.TrimSuffix(key, "_file")))
		} else if isEnvReference(s) {
			*problems = append(*problems, envReferenceRefused(path))
		}
	case map[string]any:
		storedMap, _ := stored.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(s)) {
			refusedReferences(path+"."+k, k, s[k], storedMap[k], problems)
		}
	case []any:
		storedList, _ := stored.([]any)
		for i, item := range s {
			var st any
			if i < len(storedList) {
				st = storedList[i]
			}
			refusedReferences(fmt.Sprintf("%s[%d]", path, i), key, item, st, problems)
		}
	}
}

// isEnvReference matches the values config.ResolveSecret replaces by an
// environment variable.
func isEnvReference(s string) bool { return strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") }

func envReferenceRefused(path string) string {
	return path + ": ${...} environment references are resolved only in the config file; send the secret itself"
}

func fileRefused(path, key string) string {
	return fmt.Sprintf("%s: files are read only for the config file; send the secret itself in %s", path, key)
}
