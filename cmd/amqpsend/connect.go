package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/amqproto/amqproto/amqp"
)

// dialConfig builds the connection's configuration from the options,
// reading the TLS files.
func dialConfig(o *options) (amqp.Config, error) {
	cfg := amqp.Config{ConnectionName: "amqpsend"}
	tc, err := tlsConfig(o)
	if err != nil {
		return amqp.Config{}, err
	}
	cfg.TLS = tc
	cfg.Auth = authMechanisms(o)
	return cfg, nil
}

// tlsConfig returns the TLS configuration of --cacert, --cert and --key, or
// nil when none is given: the library then follows the URL (amqps: the
// system roots, or its cacertfile, certfile and keyfile parameters).
func tlsConfig(o *options) (*tls.Config, error) {
	if o.cacert == "" && o.cert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.uri.ServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = o.uri.Host
	}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", o.cacert)
		}
		cfg.RootCAs = pool
	}
	if o.cert != "" {
		cert, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// authMechanisms returns the mechanism of --auth, or nil to let the library
// follow the URL (its auth_mechanism parameter, else PLAIN).
func authMechanisms(o *options) []amqp.Auth {
	user, pass := o.uri.Username, o.uri.Password
	if user == "" && pass == "" {
		user, pass = "guest", "guest" // the URI spec's default, as the library does
	}
	switch o.auth {
	case "plain":
		return []amqp.Auth{&amqp.PlainAuth{Username: user, Password: pass}}
	case "amqplain":
		return []amqp.Auth{&amqp.AMQPlainAuth{Username: user, Password: pass}}
	case "external":
		return []amqp.Auth{amqp.ExternalAuth{}}
	}
	return nil
}

// openChannel opens the publishing channel: it checks that --queue exists,
// declaring it with --declare, and turns on publisher confirms.
func openChannel(ctx context.Context, conn *amqp.Conn, o *options) (*amqp.Channel, error) {
	ch, err := conn.Channel(ctx)
	if err != nil {
		return nil, fmt.Errorf("open a channel: %s", describe(err))
	}
	if o.queue != "" {
		// A passive declare first: publishing to a missing queue through
		// the default exchange would be confirmed and dropped.
		_, err := ch.QueueDeclarePassive(ctx, o.queue)
		switch {
		case errors.Is(err, amqp.ErrNotFound) && o.declare:
			// The failed passive declare closed the channel.
			if ch, err = conn.Channel(ctx); err != nil {
				return nil, fmt.Errorf("open a channel: %s", describe(err))
			}
			if _, err := ch.QueueDeclare(ctx, o.queue, amqp.QueueOptions{}); err != nil {
				return nil, fmt.Errorf("declare queue %q: %s", o.queue, describe(err))
			}
		case errors.Is(err, amqp.ErrNotFound):
			return nil, fmt.Errorf("queue %q does not exist (give --declare to create it)", o.queue)
		case err != nil:
			return nil, fmt.Errorf("check queue %q: %s", o.queue, describe(err))
		}
	}
	if !o.noConfirm {
		if err := ch.Confirm(ctx); err != nil {
			return nil, fmt.Errorf("turn on publisher confirms: %s", describe(err))
		}
	}
	return ch, nil
}
