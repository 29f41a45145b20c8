package amqp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/amqproto/amqproto/internal/actor"
)

// endpoints is the list of brokers a Conn may connect to: the URL given to
// Dial and Config.Addresses, or what Config.Resolver returns.
type endpoints struct {
	uris     []URI // parsed from the URL and Config.Addresses; empty with a resolver
	resolver func(ctx context.Context) ([]string, error)
	ordered  bool
}

func newEndpoints(url string, cfg *Config) (*endpoints, error) {
	eps := &endpoints{resolver: cfg.Resolver, ordered: cfg.KeepAddressOrder}
	if eps.resolver != nil {
		return eps, nil
	}
	for _, s := range append([]string{url}, cfg.Addresses...) {
		if s == "" && len(cfg.Addresses) > 0 {
			continue // the addresses alone name the brokers
		}
		uri, err := ParseURI(s)
		if err != nil {
			return nil, err
		}
		eps.uris = append(eps.uris, uri)
	}
	return eps, nil
}

// list returns the URIs to try, in the order to try them.
func (e *endpoints) list(ctx context.Context) ([]URI, error) {
	uris := e.uris
	if e.resolver != nil {
		urls, err := e.resolver(ctx)
		if err != nil {
			return nil, fmt.Errorf("amqp: resolving the broker addresses: %w", err)
		}
		if len(urls) == 0 {
			return nil, errors.New("amqp: the resolver returned no broker address")
		}
		uris = make([]URI, 0, len(urls))
		for _, s := range urls {
			uri, err := ParseURI(s)
			if err != nil {
				return nil, err
			}
			uris = append(uris, uri)
		}
	} else {
		uris = append([]URI(nil), uris...)
	}
	if !e.ordered {
		rand.Shuffle(len(uris), func(i, j int) { uris[i], uris[j] = uris[j], uris[i] })
	}
	return uris, nil
}

// dialAny tries each address once, in turn, within ctx. It stops at the
// first success, at an error that another address would only repeat (a
// refusal of the credentials or the vhost), and when ctx ends. The error
// names every address tried.
func dialAny(ctx context.Context, eps *endpoints, cfg *Config) (*actor.Conn, URI, error) {
	uris, err := eps.list(ctx)
	if err != nil {
		return nil, URI{}, err
	}
	var errs []error
	for _, uri := range uris {
		a, err := dialOne(ctx, uri, cfg)
		if err == nil {
			return a, uri, nil
		}
		errs = append(errs, err)
		if len(uris) == 1 || ctx.Err() != nil || !worthAnotherAddress(err) {
			break
		}
	}
	if len(errs) == 1 {
		return nil, URI{}, errs[0]
	}
	return nil, URI{}, fmt.Errorf("amqp: no broker reachable: %w", errors.Join(errs...))
}

// worthAnotherAddress reports whether another broker of the list might
// accept what this one refused: not when the credentials or the vhost were
// refused, or the URI is wrong.
func worthAnotherAddress(err error) bool {
	var ue *URIError
	return !errors.Is(err, ErrAccessRefused) && !errors.Is(err, ErrNotAllowed) && !errors.As(err, &ue)
}
