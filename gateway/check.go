package gateway

import (
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"log/slog"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Check finds what would stop Start, or a call, over cfg (already loaded
// and validated by config.Load) without starting anything: no listener, no
// store (so no database file is created), no policy engine, no request to
// an identity provider. It builds the routing table a start builds from the
// file's agents and backends, so every backend's credential settings are
// parsed by its injector and every agent's private key is read, and it
// reads the session key. Every problem is returned, each naming its key.
func Check(cfg *config.Config) []error {
	var errs []error
	if _, _, err := upstream.LoadSessionKey(cfg.Server.SessionKey, cfg.Server.SessionKeyFile); err != nil {
		errs = append(errs, err)
	}
	facade, err := facadeClient(cfg.OAuth)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.OAuth.Enabled {
		if err := oauthserver.CheckSigningKey(cfg.OAuth.SigningKeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	injectors, closeExchanger, err := newInjectors(cfg, slog.New(slog.DiscardHandler), nil, facade)
	if err != nil {
		return append(errs, err)
	}
	defer closeExchanger()
	if _, err := buildTopology(cfg.Backends, cfg.Agents, injectors); err != nil {
		errs = append(errs, unjoin(err)...)
	}
	return errs
}

// unjoin lists the errors of an errors.Join, or err alone.
func unjoin(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		return joined.Unwrap()
	}
	return []error{err}
}
