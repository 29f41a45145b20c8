package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

const (
	defaultURL    = "amqp://guest:guest@localhost:5672/"
	defaultWindow = 1000
	defaultSize   = 1024

	// Bounds on the load flags: the window and a generated body are
	// allocated up front. RabbitMQ refuses messages over 512 MiB.
	maxWindow = 1 << 20
	maxSize   = 512 << 20
)

// usage is the text of --help. TestUsageNamesEveryFlag keeps it in step with
// the flags defined in newFlagSet.
const usage = `Usage: amqpsend [flags] [--] [MESSAGE ...]

amqpsend publishes messages to a RabbitMQ (AMQP 0-9-1) broker and, unless
--no-confirm is given, waits until the broker has confirmed every one.

Messages (the first that applies):
  MESSAGE ...               each argument is one message ('' for an empty
                            one)
  --file PATH               the file is one message (repeatable; sent after
                            the arguments, in the order given)
  --count N                 N generated messages of --size bytes (load test)
  standard input            otherwise: all of it is one message (empty is
                            an error), or one message per line with --lines

Destination:
  --queue NAME              send to the queue through the default exchange;
                            the queue must exist, unless --declare is given
  --declare                 with --queue: declare the queue when it does not
                            exist, non-durable (it does not survive a broker
                            restart), not exclusive, not auto-delete
  --exchange NAME           publish to this exchange (default: the default
                            exchange, which routes by queue name)
  --routing-key KEY         the routing key

Connection:
  --url URL                 the broker (default: $AMQP_URL, else
                            amqp://guest:guest@localhost:5672/); the form is
                            amqp[s]://user:password@host:port/vhost, with the
                            vhost "/" written %2f or left out
  --cacert FILE             PEM CA certificates to verify the broker with
                            (default: the system's); needs amqps://
  --cert FILE, --key FILE   PEM client certificate and key; needs amqps://
  --auth MECHANISM          plain (default), amqplain, or external: the
                            broker authenticates the TLS client certificate
  --timeout DURATION        bound the whole run, such as 30s or 2m (default:
                            none)

Message properties:
  --content-type TYPE       such as text/plain or application/json
  --content-encoding ENC    such as gzip
  --persistent              delivery mode 2: durable queues keep the message
                            on disk
  -H, --header KEY=VALUE    a header (repeatable). The value is sent as an
                            int64 when it is a decimal integer written
                            plainly (42, -7; not 007 or +7), as a bool when
                            it is true or false, else as a string.
                            KEY:=VALUE always sends a string: -H zip:=01234
  --message-id ID
  --correlation-id ID
  --reply-to QUEUE
  --expiration TTL          per-message TTL in milliseconds (60000) or as a
                            duration (1m)
  --priority N              0 to 255
  --app-id ID
  --type TYPE               the message type name

Delivery:
  --no-confirm              do not ask for publisher confirms: succeed once
                            the messages are written and the channel closed
                            cleanly (a broker may still drop them)
  --mandatory               fail when no queue takes a message: the broker
                            returns it, with its reason
  --lines                   one message per line of standard input (without
                            the line ending; empty lines are skipped)
  --rate R                  publish at most R messages a second
  --window N                messages awaiting confirmation at most (default
                            1000, at most 1048576)

Load test:
  --count N                 publish N generated messages
  --size BYTES              their body size (default 1024, at most 512 MiB)
  --json                    print the summary as JSON on standard output
  With --count, a progress bar is drawn on standard error when it is a
  terminal, and a summary (messages, msgs/s, MB/s, confirm latency p50 and
  p99) is printed on standard output.

  -h, --help                show this help

Flags may come before or after the messages; "--" ends the flags, so that a
message may start with "-". Prefer AMQP_URL to --url when the URL holds a
password: other users can see command lines.

Exit status:
  0  every message was sent and confirmed by the broker (with --no-confirm:
     written, and the channel closed cleanly)
  1  usage error: a bad flag or value, a malformed URL, an unreadable file
     or standard input
  2  connection failure: network, TLS, authentication, unknown vhost
  3  a message was not delivered: nacked, returned (--mandatory), its queue
     or exchange does not exist, the channel or connection failed, or the
     --timeout ran out first.
  On Ctrl-C (SIGINT) or SIGTERM, amqpsend stops publishing, waits briefly
  for outstanding confirms and reports "sent N, confirmed M, unconfirmed K".
  It exits 3 if a message it sent is unconfirmed or, except with --lines,
  if messages were left unsent; 0 otherwise. A second Ctrl-C ends it at
  once.

Examples:
  amqpsend --queue hello --declare 'Hello, world'
  amqpsend --queue jobs --persistent --content-type application/json \
      --file job1.json --file job2.json
  tail -n 100 app.log | amqpsend --exchange logs --routing-key app --lines
  amqpsend --exchange amq.topic --routing-key orders.created --mandatory \
      -H version=2 -H retry=false -H zip:=01234 --message-id o-17 '{"id":17}'
  amqpsend --url amqps://broker.example.com/ --cacert ca.pem \
      --cert client.pem --key client-key.pem --auth external --queue q msg
  amqpsend --queue bench --declare --count 100000 --size 512 --rate 20000
  amqpsend --queue bench --count 10000 --json --timeout 1m | jq .msgs_per_sec
`

// options is the parsed and checked command line.
type options struct {
	url        string
	urlSource  string // where url came from, for error messages: "--url", "AMQP_URL", "default URL"
	uri        amqp.URI
	exchange   string
	routingKey string
	queue      string
	declare    bool

	messages []string // the positional arguments
	files    []string
	lines    bool

	props      amqp.Properties
	persistent bool
	headers    headerFlag
	expiration string
	priority   uint

	noConfirm bool
	mandatory bool
	timeout   time.Duration
	rate      float64
	window    int

	count     int
	size      int
	sizeSet   bool
	windowSet bool
	jsonOut   bool
	loadTest  bool

	cacert, cert, key string
	auth              string
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// headerFlag collects -H flags; check parses them into a table, where a
// later flag for the same key replaces an earlier one. They are parsed
// there rather than in Set because the flag package would quote the whole
// argument, which may hold a secret, in its error.
type headerFlag struct {
	raw   []string
	table amqp.Table
}

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(s string) error {
	h.raw = append(h.raw, s)
	return nil
}

func (h *headerFlag) parse() error {
	for _, s := range h.raw {
		key, value, err := parseHeader(s)
		if err != nil {
			return err
		}
		if h.table == nil {
			h.table = amqp.Table{}
		}
		h.table[key] = value
	}
	return nil
}

// parseHeader parses KEY=VALUE, typing the value (see headerValue), or
// KEY:=VALUE, which keeps VALUE a string. Its errors never repeat the value,
// which may be a secret.
func parseHeader(s string) (key string, value any, err error) {
	key, raw, ok := strings.Cut(s, "=")
	if !ok {
		return "", nil, errors.New("a -H header is not KEY=VALUE or KEY:=VALUE (not repeated here: it may hold a secret)")
	}
	forceString := strings.HasSuffix(key, ":")
	key = strings.TrimSuffix(key, ":")
	switch {
	case key == "":
		return "", nil, errors.New("header with an empty key: want KEY=VALUE")
	case len(key) > 255:
		return "", nil, fmt.Errorf("header key %.20q...: longer than 255 bytes", key)
	}
	if forceString {
		return key, raw, nil
	}
	return key, headerValue(raw), nil
}

// headerValue types a header value: int64 for an integer written the way
// strconv.FormatInt writes it (so "007", "+7" and "1e3" stay strings, and
// nothing is lost in the conversion), bool for "true" and "false", else the
// string itself.
func headerValue(raw string) any {
	switch raw {
	case "true":
		return true
	case "false":
		return false
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil && strconv.FormatInt(n, 10) == raw {
		return n
	}
	return raw
}

// newFlagSet defines every flag on a new FlagSet that writes nothing: run
// reports errors itself, in one line.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("amqpsend", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	fs.StringVar(&o.url, "url", "", "")
	fs.StringVar(&o.exchange, "exchange", "", "")
	fs.StringVar(&o.routingKey, "routing-key", "", "")
	fs.StringVar(&o.queue, "queue", "", "")
	fs.BoolVar(&o.declare, "declare", false, "")

	fs.Var((*stringsFlag)(&o.files), "file", "")
	fs.BoolVar(&o.lines, "lines", false, "")

	fs.StringVar(&o.props.ContentType, "content-type", "", "")
	fs.StringVar(&o.props.ContentEncoding, "content-encoding", "", "")
	fs.BoolVar(&o.persistent, "persistent", false, "")
	fs.Var(&o.headers, "H", "")
	fs.Var(&o.headers, "header", "")
	fs.StringVar(&o.props.MessageID, "message-id", "", "")
	fs.StringVar(&o.props.CorrelationID, "correlation-id", "", "")
	fs.StringVar(&o.props.ReplyTo, "reply-to", "", "")
	fs.StringVar(&o.expiration, "expiration", "", "")
	fs.UintVar(&o.priority, "priority", 0, "")
	fs.StringVar(&o.props.AppID, "app-id", "", "")
	fs.StringVar(&o.props.Type, "type", "", "")

	fs.BoolVar(&o.noConfirm, "no-confirm", false, "")
	fs.BoolVar(&o.mandatory, "mandatory", false, "")
	fs.DurationVar(&o.timeout, "timeout", 0, "")
	fs.Float64Var(&o.rate, "rate", 0, "")
	fs.IntVar(&o.window, "window", defaultWindow, "")

	fs.IntVar(&o.count, "count", 0, "")
	fs.IntVar(&o.size, "size", defaultSize, "")
	fs.BoolVar(&o.jsonOut, "json", false, "")

	fs.StringVar(&o.cacert, "cacert", "", "")
	fs.StringVar(&o.cert, "cert", "", "")
	fs.StringVar(&o.key, "key", "", "")
	fs.StringVar(&o.auth, "auth", "", "")
	return fs
}

// parseArgs parses and checks the command line (without the program name).
// getenv reads the environment (AMQP_URL). It returns flag.ErrHelp for
// -h and --help.
func parseArgs(args []string, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o)
	msgs, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	o.messages = msgs
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.sizeSet, o.windowSet = set["size"], set["window"]
	o.loadTest = set["count"]
	switch {
	case set["url"]:
		o.urlSource = "--url"
	case getenv("AMQP_URL") != "":
		o.url, o.urlSource = getenv("AMQP_URL"), "AMQP_URL"
	default:
		o.url, o.urlSource = defaultURL, "default URL"
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// parseInterspersed parses flags wherever they are among the positional
// arguments, which it returns; "--" ends the flags. (The flag package alone
// stops at the first positional argument.)
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// check validates the options and fills in the derived fields (uri, props).
func (o *options) check() error {
	uri, err := amqp.ParseURI(o.url)
	if err != nil {
		return fmt.Errorf("%s: %s", o.urlSource, describe(err))
	}
	o.uri = uri

	// Destination.
	switch {
	case o.queue != "" && (o.exchange != "" || o.routingKey != ""):
		return errors.New("--queue sends through the default exchange: drop --exchange and --routing-key, or --queue")
	case o.declare && o.queue == "":
		return errors.New("--declare needs --queue")
	case o.queue == "" && o.exchange == "" && o.routingKey == "":
		return errors.New("no destination: give --queue, or --exchange and/or --routing-key")
	}

	// Bodies.
	switch {
	case o.loadTest && (len(o.messages) > 0 || len(o.files) > 0 || o.lines):
		return errors.New("--count generates the messages: drop the message arguments, --file and --lines")
	case o.lines && (len(o.messages) > 0 || len(o.files) > 0):
		return errors.New("--lines reads standard input: drop the message arguments and --file")
	case o.loadTest && o.count < 0:
		return fmt.Errorf("--count %d: must be 0 or more", o.count)
	case o.sizeSet && !o.loadTest:
		return errors.New("--size needs --count")
	case o.size < 0 || o.size > maxSize:
		return fmt.Errorf("--size %d: must be from 0 to %d", o.size, maxSize)
	}
	if o.loadTest && o.count == 0 {
		return errors.New("--count 0: nothing to send")
	}

	// Properties.
	if o.priority > math.MaxUint8 {
		return fmt.Errorf("--priority %d: must be 0 to 255", o.priority)
	}
	o.props.Priority = uint8(o.priority)
	if o.persistent {
		o.props.DeliveryMode = amqp.Persistent
	}
	if o.expiration != "" {
		ms, err := parseExpiration(o.expiration)
		if err != nil {
			return err
		}
		o.props.Expiration = ms
	}
	if err := o.headers.parse(); err != nil {
		return err
	}
	o.props.Headers = o.headers.table

	// Delivery.
	switch {
	case o.timeout < 0:
		return fmt.Errorf("--timeout %v: must not be negative", o.timeout)
	case o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return fmt.Errorf("--rate %v: must be a positive number of messages a second", o.rate)
	case o.window < 1 || o.window > maxWindow:
		return fmt.Errorf("--window %d: must be from 1 to %d", o.window, maxWindow)
	case o.windowSet && o.noConfirm:
		return errors.New("--window bounds unconfirmed messages: drop it or --no-confirm")
	}

	// TLS and authentication.
	tlsFlags := o.cacert != "" || o.cert != "" || o.key != ""
	switch {
	case tlsFlags && uri.Scheme != "amqps":
		return errors.New("--cacert, --cert and --key need an amqps:// URL")
	case (o.cert == "") != (o.key == ""):
		return errors.New("--cert and --key go together")
	}
	switch o.auth {
	case "", "plain", "amqplain":
	case "external":
		if uri.Scheme != "amqps" || (o.cert == "" && uri.CertFile == "") {
			return errors.New("--auth external needs TLS with a client certificate: an amqps:// URL and --cert/--key")
		}
	default:
		return fmt.Errorf("--auth %q: want plain, amqplain or external", o.auth)
	}
	return nil
}

// parseExpiration turns a TTL given in milliseconds ("60000") or as a
// duration ("1m") into the decimal milliseconds AMQP expects.
func parseExpiration(s string) (string, error) {
	if n, err := strconv.ParseUint(s, 10, 63); err == nil {
		return strconv.FormatUint(n, 10), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d%time.Millisecond != 0 {
		return "", fmt.Errorf("--expiration %q: want whole milliseconds (60000) or a duration (1m)", s)
	}
	return strconv.FormatInt(d.Milliseconds(), 10), nil
}
