package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/joho/godotenv"
)

// Source is where the configuration text comes from.
type Source struct {
	// Path is the YAML file to read; "" when Text holds the YAML.
	Path string
	// Text is YAML given in the CONFIG_YAML variable.
	Text []byte
	// From says how the source was chosen: "--config", "MCPGW_CONFIG",
	// "CONFIG_PATH", "CONFIG_YAML", "./config/config.yaml" or
	// "./config.yaml"; "" when nothing was found.
	From string
}

// Found reports whether a configuration was found.
func (s Source) Found() bool { return s.From != "" }

// String names the source in messages: the file, or the variable.
func (s Source) String() string {
	switch {
	case s.Path != "":
		return s.Path
	case s.From != "":
		return s.From
	}
	return "(environment only)"
}

// configVars are the variables that may name the configuration, in the
// order they are documented. MCPGW_CONFIG and CONFIG_PATH name a file,
// CONFIG_YAML holds the YAML itself (a container without a mounted file).
var configVars = []string{envConfigPath, "CONFIG_PATH", "CONFIG_YAML"}

// defaultConfigFiles are looked for in the working directory when nothing
// names a configuration: where the Okta MCP adapter keeps it, then beside it.
var defaultConfigFiles = []string{"config/config.yaml", "config.yaml"}

// Find chooses the configuration as the Okta MCP adapter's successor must:
// flagPath (--config) when given; else the one of MCPGW_CONFIG, CONFIG_PATH
// and CONFIG_YAML that is set (two that disagree are an error, since either
// choice would silently ignore the other); else ./config/config.yaml, then
// ./config.yaml. Nothing found is a Source whose Found is false.
func Find(flagPath string, environ []string) (Source, error) {
	if flagPath != "" {
		return Source{Path: flagPath, From: "--config"}, nil
	}
	src, err := fromEnvironment(envMap(environ))
	if err != nil || src.Found() {
		return src, err
	}
	for _, p := range defaultConfigFiles {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return Source{Path: p, From: "./" + p}, nil
		}
	}
	return Source{}, nil
}

// fromEnvironment is the configuration the variables name, if any.
func fromEnvironment(vars map[string]string) (Source, error) {
	var set []Source
	for _, name := range configVars {
		v := vars[name]
		switch {
		case strings.TrimSpace(v) == "":
		case name == "CONFIG_YAML":
			set = append(set, Source{Text: []byte(v), From: name})
		default:
			set = append(set, Source{Path: v, From: name})
		}
	}
	if len(set) == 0 {
		return Source{}, nil
	}
	// The same file named twice (MCPGW_CONFIG and the adapter's
	// CONFIG_PATH) is one choice, not a conflict.
	distinct := slices.CompactFunc(slices.Clone(set), func(a, b Source) bool { return a.Path != "" && a.Path == b.Path })
	if len(distinct) > 1 {
		names := make([]string, len(set))
		for i, s := range set {
			names[i] = s.From
		}
		return Source{}, fmt.Errorf("%s are set and name different configurations; set one of them", strings.Join(names, " and "))
	}
	return set[0], nil
}

// NotFoundError explains that no configuration was found and where it was
// looked for.
func NotFoundError() error {
	return fmt.Errorf("no configuration found: give --config FILE, or set one of %s, or put it in ./%s or ./%s",
		strings.Join(configVars, ", "), defaultConfigFiles[0], defaultConfigFiles[1])
}

// EnvFile is what ReadEnvFile took from a .env file. It holds variable
// names only, never values, so it can be logged.
type EnvFile struct {
	Path string
	// Set are the variables the file added to the environment.
	Set []string
	// Kept are variables the file also names but the environment already
	// had: the real environment wins, as with the adapter's python-dotenv.
	Kept []string
}

// DefaultEnvFile is read when present and no other file is named.
const DefaultEnvFile = ".env"

// ReadEnvFile reads the .env file at path (KEY=VALUE lines, # comments,
// quotes and "export" as python-dotenv and godotenv read them) and returns
// environ with the file's variables added, never replacing one the
// environment already has. path "" reads ./.env when it exists and reads
// nothing otherwise; a path that was asked for must exist.
func ReadEnvFile(path string, environ []string) ([]string, EnvFile, error) {
	if path == "" {
		if _, err := os.Stat(DefaultEnvFile); errors.Is(err, fs.ErrNotExist) {
			return environ, EnvFile{}, nil
		}
		path = DefaultEnvFile
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, EnvFile{}, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	vars, err := godotenv.Parse(f)
	if err != nil {
		return nil, EnvFile{}, fmt.Errorf("env file %s: %w", path, err)
	}
	have := envMap(environ)
	out := slices.Clone(environ)
	rep := EnvFile{Path: path}
	for _, name := range sortedKeys(vars) {
		if _, ok := have[name]; ok {
			rep.Kept = append(rep.Kept, name)
			continue
		}
		out = append(out, name+"="+vars[name])
		rep.Set = append(rep.Set, name)
	}
	return out, rep, nil
}
