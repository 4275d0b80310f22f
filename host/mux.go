package host

import (
	"errors"

	"github.com/procref/procref/launcher"
)

// ErrMuxUnavailable is returned for mux mode until the multiplexer lands.
var ErrMuxUnavailable = errors.New("mux mode (sharing a stdio language server) is not available yet; use tcp mode with a {port} argument")

func (b *backend) setupMux(svc *launcher.Service) error { return ErrMuxUnavailable }
