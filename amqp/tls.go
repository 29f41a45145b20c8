package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsConfig returns the TLS configuration for uri: the caller's, or one
// built from the URI's parameters for amqps; nil means plain TCP.
func tlsConfig(uri URI, given *tls.Config) (*tls.Config, error) {
	if given == nil && uri.Scheme != "amqps" {
		return nil, nil
	}
	var cfg *tls.Config
	if given != nil {
		cfg = given.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	noSNI := cfg.ServerName == "" && uri.ServerName == "disable"
	if cfg.ServerName == "" && !noSNI {
		cfg.ServerName = firstNonZero(uri.ServerName, uri.Host)
	}
	if uri.Verify == "verify_none" {
		cfg.InsecureSkipVerify = true
	}
	if uri.DepthSet && !cfg.InsecureSkipVerify {
		cfg.VerifyConnection = chainDepthAtMost(uri.Depth, cfg.VerifyConnection)
	}

	if uri.CACertFile != "" && cfg.RootCAs == nil {
		pem, err := os.ReadFile(uri.CACertFile)
		if err != nil {
			return nil, &URIError{Part: "cacertfile", Text: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &URIError{Part: "cacertfile", Text: "no PEM certificates in " + uri.CACertFile}
		}
		cfg.RootCAs = pool
	}
	if uri.CertFile != "" || uri.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(uri.CertFile, uri.KeyFile)
		if err != nil {
			return nil, &URIError{Part: "certfile", Text: err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
		cfg.GetClientCertificate = nil
	}
	// Always present the configured certificate, as other clients do: Go
	// would otherwise withhold it when its issuer is not among the
	// broker's acceptable CAs, and the connection would go on without one,
	// which hides the misconfiguration.
	if len(cfg.Certificates) > 0 && cfg.GetClientCertificate == nil {
		cfg.GetClientCertificate = presentAlways(cfg.Certificates)
	}
	if noSNI && !cfg.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true // Go would send the name it verifies as SNI
		cfg.VerifyConnection = verifyWithoutSNI(uri.Host, cfg.RootCAs, cfg.VerifyConnection)
	}
	return cfg, nil
}

// presentAlways picks a client certificate as Go does, the first of certs
// that the broker's request accepts, but falls back to the first one
// rather than to none: a certificate the broker will refuse gives a TLS
// error that names the problem, where none at all gives an EXTERNAL
// refusal or a connection without one.
func presentAlways(certs []tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		return &certs[0], nil
	}
}

// verifyWithoutSNI verifies the broker's certificate chain and its name
// against host, for server_name_indication=disable: Go sends as SNI the
// name it verifies, so its own verification is off and this takes its
// place. It then runs next, if any, with the verified chains.
func verifyWithoutSNI(host string, roots *x509.CertPool, next func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the broker sent no certificate")
		}
		intermediates := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			intermediates.AddCert(c)
		}
		chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: intermediates})
		if err != nil {
			return err
		}
		cs.VerifiedChains = chains
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// chainDepthAtMost checks, after the usual verification, that the broker's
// certificate chains to a trusted root through at most depth intermediate
// certificates (the URI's depth parameter), then runs next, if any.
func chainDepthAtMost(depth int, next func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		ok := false
		for _, chain := range cs.VerifiedChains {
			if len(chain)-2 <= depth { // not counting the leaf and the root
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("the broker's certificate chain has more than depth=%d intermediate certificates", depth)
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}
