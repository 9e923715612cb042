package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Server is a running gateway with the parts it was assembled from.
type Server struct {
	Gateway  *Gateway
	Engine   *policy.Engine
	Verifier *identity.Verifier
	// URL is where the gateway listens, http://host:port.
	URL  string
	ln   net.Listener
	errc chan error
	// closers run in reverse order on Close.
	closers []func(context.Context) error
}

// StartOptions are what Start needs besides the config.
type StartOptions struct {
	Logger *slog.Logger
	// Injectors adds credential injectors (token exchange) to the basic ones.
	Injectors map[string]upstream.InjectorFactory
	// Listener, when set, is served instead of listening on server.listen.
	Listener net.Listener
	// DecisionLog receives every policy decision record; default: logged.
	DecisionLog func(context.Context, policy.Record)
}

// Start assembles the gateway from cfg and serves it.
func Start(ctx context.Context, cfg *config.Config, o StartOptions) (srv *Server, err error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{errc: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = s.Close(context.Background())
		}
	}()

	if s.Verifier, err = identity.NewVerifier(ctx, cfg.Identity, identity.WithLogger(log)); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { s.Verifier.Close(); return nil })

	s.Engine, err = policy.New(ctx, policy.Options{
		Source:          cfg.Policy.Bundle,
		AllowUnsigned:   cfg.Policy.AllowUnsigned,
		VerificationKey: cfg.Policy.VerificationKey,
		KeyID:           cfg.Policy.KeyID,
		Timeout:         cfg.Policy.Timeout,
		OPAConfig:       cfg.Policy.OPA,
		Logger:          log,
		DecisionLog:     o.DecisionLog,
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	s.closers = append(s.closers, func(ctx context.Context) error { s.Engine.Stop(ctx); return nil })

	key, shared, err := upstream.LoadSessionKey(cfg.Server.SessionKey, cfg.Server.SessionKeyFile)
	if err != nil {
		return nil, err
	}
	if !shared {
		log.Warn("no server.session_key_file or MCPGW_SESSION_KEY: using a random session key; sessions will not survive a restart or move between replicas")
		if key, err = upstream.NewSessionKey(); err != nil {
			return nil, err
		}
	}
	sealer, err := upstream.NewSealer(key)
	if err != nil {
		return nil, err
	}

	injectors := upstream.BasicFactories()
	maps.Copy(injectors, o.Injectors)
	s.Gateway, err = New(Options{
		Config: cfg, Verifier: s.Verifier, Authorizer: s.Engine, Sealer: sealer, Injectors: injectors, Logger: log,
		ReadyChecks: map[string]func(context.Context) error{
			"identity": func(context.Context) error { return s.Verifier.Ready() },
			"policy":   func(context.Context) error { return s.Engine.Ready() },
		},
	})
	if err != nil {
		return nil, err
	}
	s.Gateway.MountMCP()

	s.ln = o.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
			return nil, fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err)
		}
	}
	s.URL = "http://" + s.ln.Addr().String()
	go func() { s.errc <- s.Gateway.Serve(s.ln) }()
	log.Info("mcpgw listening", "addr", s.ln.Addr().String(), "public_url", cfg.Server.PublicURL,
		"backends", len(cfg.Backends), "agents", len(cfg.Agents), "policy_revision", s.Engine.Revision())
	return s, nil
}

// Done delivers the serve loop's error when it stops.
func (s *Server) Done() <-chan error { return s.errc }

// Close shuts the gateway down gracefully within ctx, then its parts.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	if s.Gateway != nil && s.ln != nil {
		errs = append(errs, s.Gateway.Shutdown(ctx))
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i](ctx))
	}
	return errors.Join(errs...)
}
