package amqp

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// URI is a parsed AMQP URI, following RabbitMQ's URI specification
// (https://www.rabbitmq.com/docs/uri-spec) and its query parameters
// (https://www.rabbitmq.com/docs/uri-query-parameters).
//
//	amqp[s]://[user[:password]@]host[:port][/vhost][?query]
//
// The user, password and vhost are percent-decoded. An absent or empty path
// ("amqp://host" and "amqp://host/") means the default vhost "/", as most
// clients read it (the spec reads "amqp://host/" as a vhost named "", which
// RabbitMQ cannot have); "/%2f" is also "/". String never shows the
// password.
type URI struct {
	Scheme   string // "amqp" or "amqps"
	Host     string // the broker's host name or IP address ("localhost" when absent)
	Port     int    // 5672 for amqp, 5671 for amqps when absent
	Username string // the user name, unescaped; empty when absent
	Password string // the password, unescaped; empty when absent
	Vhost    string // the virtual host, unescaped; "" and "/" both mean "/"

	// Query parameters; zero when absent.
	Heartbeat         time.Duration // heartbeat=seconds; 0 in the URI disables: see HeartbeatSet
	HeartbeatSet      bool          // the URI has a heartbeat parameter (heartbeat=0 disables)
	FrameMax          uint32        // frame_max
	ChannelMax        uint16        // channel_max
	ConnectionTimeout time.Duration // connection_timeout=milliseconds
	AuthMechanism     []string      // auth_mechanism, repeatable: plain, amqplain, external
	CACertFile        string        // cacertfile
	CertFile          string        // certfile
	KeyFile           string        // keyfile
	Verify            string        // verify: verify_peer (default) or verify_none
	ServerName        string        // server_name_indication
	// Depth is the depth parameter, when DepthSet: at most this many
	// intermediate CA certificates between the broker's certificate and a
	// trusted root.
	Depth    int
	DepthSet bool // the URI has a depth parameter
}

// URIError says which part of a URI is wrong. It never contains the
// password: it quotes nothing of the URI but its scheme, since a password
// with an unescaped "/", "?" or "#" spills into the host, port, path or
// query.
type URIError struct {
	Part string // "scheme", "host", "port", "vhost", a query parameter name, ...
	Text string // what is wrong with it
}

// Error names the part and what is wrong with it.
func (e *URIError) Error() string { return "amqp: invalid URI " + e.Part + ": " + e.Text }

// ParseURI parses an AMQP URI.
func ParseURI(s string) (URI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return URI{}, &URIError{Part: "syntax", Text: redactURLError(err, s)}
	}
	uri := URI{Scheme: strings.ToLower(u.Scheme)}
	switch uri.Scheme {
	case "amqp":
		uri.Port = 5672
	case "amqps":
		uri.Port = 5671
	case "":
		return URI{}, &URIError{Part: "scheme", Text: "missing; use amqp:// or amqps://"}
	default:
		return URI{}, &URIError{Part: "scheme", Text: fmt.Sprintf("%q is not amqp or amqps", u.Scheme)}
	}
	if u.Opaque != "" {
		return URI{}, &URIError{Part: "syntax", Text: "expected // after the scheme"}
	}
	if err := checkSpill(s, u); err != nil {
		return URI{}, err
	}
	uri.Host = u.Hostname()
	if uri.Host == "" {
		uri.Host = "localhost" // the spec's default host
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return URI{}, &URIError{Part: "port", Text: "not a port number " + notShown}
		}
		uri.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return URI{}, &URIError{Part: "port", Text: "empty"}
	}
	if u.User != nil {
		uri.Username = u.User.Username()
		uri.Password, _ = u.User.Password()
	}
	vhost, err := parseVhost(u)
	if err != nil {
		return URI{}, err
	}
	uri.Vhost = vhost
	if err := uri.parseQuery(u.RawQuery); err != nil {
		return URI{}, err
	}
	return uri, nil
}

// parseVhost applies the spec: the path after the first "/" is the vhost,
// percent-decoded; it may not contain an unescaped "/".
func parseVhost(u *url.URL) (string, error) {
	raw := strings.TrimPrefix(u.EscapedPath(), "/")
	if raw == "" {
		return "/", nil
	}
	if strings.Contains(raw, "/") {
		return "", &URIError{Part: "vhost", Text: "contains an unescaped \"/\"; write it as %2f"}
	}
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", &URIError{Part: "vhost", Text: "bad percent-encoding"}
	}
	return v, nil
}

func (uri *URI) parseQuery(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return &URIError{Part: "query", Text: "bad encoding"}
	}
	for key, values := range q {
		v := values[len(values)-1]
		var err error
		switch key {
		case "heartbeat":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 16)
			uri.Heartbeat, uri.HeartbeatSet = time.Duration(n)*time.Second, true
		case "frame_max":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			uri.FrameMax = uint32(n)
		case "channel_max":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 16)
			uri.ChannelMax = uint16(n)
		case "connection_timeout":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			uri.ConnectionTimeout = time.Duration(n) * time.Millisecond
		case "auth_mechanism":
			for _, m := range values {
				switch strings.ToLower(m) {
				case "plain", "amqplain", "external":
					uri.AuthMechanism = append(uri.AuthMechanism, strings.ToUpper(m))
				default:
					return &URIError{Part: "auth_mechanism", Text: "not plain, amqplain or external " + notShown}
				}
			}
		case "cacertfile":
			uri.CACertFile = v
		case "certfile":
			uri.CertFile = v
		case "keyfile":
			uri.KeyFile = v
		case "verify":
			if v != "verify_peer" && v != "verify_none" {
				return &URIError{Part: "verify", Text: "not verify_peer or verify_none " + notShown}
			}
			uri.Verify = v
		case "server_name_indication":
			uri.ServerName = v
		case "depth":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			uri.Depth, uri.DepthSet = int(n), true
		case "fail_if_no_peer_cert":
			// The Erlang client passes it to its TLS options, where it only
			// means something to a server: nothing to do for a client.
		case "password":
			return &URIError{Part: "password", Text: "encrypted private keys are not supported: give keyfile an unencrypted key"}
		default:
			return &URIError{Part: "query", Text: "unknown parameter " + notShown + "; known are " + knownParameters}
		}
		if err != nil {
			return &URIError{Part: key, Text: "not a valid number " + notShown}
		}
	}
	return nil
}

// Addr returns host:port.
func (uri URI) Addr() string { return net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port)) }

// String returns the URI with the password replaced by "xxxxx".
func (uri URI) String() string {
	u := url.URL{Scheme: uri.Scheme, Host: uri.Addr()}
	if uri.Username != "" || uri.Password != "" {
		if uri.Password != "" {
			u.User = url.UserPassword(uri.Username, "xxxxx")
		} else {
			u.User = url.User(uri.Username)
		}
	}
	u.RawPath = "/" + url.PathEscape(uri.Vhost)
	u.Path = "/" + uri.Vhost
	return u.String()
}

// notShown replaces the part of the URI an error is about, which may hold
// the password.
const notShown = "(value not shown: it may hold the password)"

const knownParameters = "heartbeat, frame_max, channel_max, connection_timeout, auth_mechanism, " +
	"cacertfile, certfile, keyfile, verify, server_name_indication, depth, fail_if_no_peer_cert"

// checkSpill rejects the two ways a user name or password with an
// unescaped "/", "?" or "#" gets read as something else without making
// the URI invalid: a "#" starts a fragment (which AMQP URIs do not have),
// and the "@" that should end the user information then stands in the
// path or the query. Both are told without quoting anything.
func checkSpill(s string, u *url.URL) error {
	if strings.Contains(s, "#") {
		return &URIError{Part: "syntax", Text: "an unescaped \"#\"; percent-encode it as %23 (in a password too)"}
	}
	if strings.Contains(u.EscapedPath(), "@") || strings.Contains(u.RawQuery, "@") {
		return &URIError{Part: "syntax", Text: "an unescaped \"@\" after the host; if the user name or password " +
			"holds \"/\" or \"?\", percent-encode it (%2F, %3F), and write any other \"@\" as %40"}
	}
	return nil
}

// GoString hides the password from %#v, as String does.
func (uri URI) GoString() string {
	type fields URI // without the methods, so that %#v prints the fields
	if uri.Password != "" {
		uri.Password = "xxxxx"
	}
	return strings.Replace(fmt.Sprintf("%#v", fields(uri)), "fields", "URI", 1)
}

// redactURLError describes a url.Parse failure without echoing the input,
// which may hold a password.
func redactURLError(err error, s string) string {
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err
	}
	msg := err.Error()
	if u, perr := url.Parse(s); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	// net/url quotes the offending part, which may be the password.
	if i := strings.Index(msg, "\""); i >= 0 {
		msg = msg[:i] + "(value hidden)"
	}
	return msg
}
