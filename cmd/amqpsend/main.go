// Command amqpsend publishes messages to a RabbitMQ broker (AMQP 0-9-1) and
// waits for the broker to confirm them. Run amqpsend --help for its usage,
// flags and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// Exit codes; see the usage text.
const (
	exitOK          = 0
	exitUsage       = 1
	exitConnect     = 2
	exitUndelivered = 3
)

const (
	// interruptGrace is how long amqpsend waits for outstanding confirms
	// after Ctrl-C (within --timeout).
	interruptGrace = 2 * time.Second
	// closeTimeout bounds closing the channel and the connection.
	closeTimeout = 5 * time.Second
	// barInterval is how often the progress bar is redrawn.
	barInterval = 200 * time.Millisecond
)

// errTimeout is the cause of the run's context when --timeout runs out.
var errTimeout = errors.New("--timeout ran out")

// env is the process's surroundings, so that tests can run run in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	stdinTerminal  bool // say that standard input is being read
	stderrTerminal bool // draw the progress bar
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the default action returns: a second Ctrl-C
	// ends amqpsend at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
		stdinTerminal: isTerminal(os.Stdin), stderrTerminal: isTerminal(os.Stderr),
	})
	stop()
	os.Exit(code)
}

// run is amqpsend: it returns the exit code. ctx ends on SIGINT or SIGTERM.
func run(ctx context.Context, args []string, e env) int {
	con := &console{w: e.stderr}
	o, err := parseArgs(args, e.getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	if err != nil {
		con.errorf("%s (see amqpsend --help)", describe(err))
		return exitUsage
	}
	con.password, con.username = o.uri.Password, o.uri.Username
	cfg, err := dialConfig(o)
	if err != nil {
		con.errorf("%v", err)
		return exitUsage
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if o.timeout > 0 {
		runCtx, cancel = context.WithTimeoutCause(ctx, o.timeout, errTimeout)
	}
	defer cancel()
	// cutShort names what ended runCtx: Ctrl-C or --timeout.
	cutShort := func() string {
		if ctx.Err() != nil {
			return "interrupted"
		}
		return fmt.Sprintf("timed out after %v", o.timeout)
	}

	if !o.loadTest && len(o.messages) == 0 && len(o.files) == 0 && e.stdinTerminal {
		if o.lines {
			con.errorf("reading messages from standard input, one a line; end with Ctrl-D")
		} else {
			con.errorf("reading the message from standard input; end it with Ctrl-D")
		}
	}
	src, err := o.source(runCtx, e.stdin)
	if err != nil {
		if runCtx.Err() != nil {
			con.errorf("%s while reading standard input: nothing sent", cutShort())
			return exitUndelivered
		}
		con.errorf("%v", err)
		return exitUsage
	}

	conn, err := amqp.DialConfig(runCtx, o.url, cfg)
	if err != nil {
		var badURI *amqp.URIError
		switch {
		case errors.As(err, &badURI):
			// The library reads the URL's certificate files before it
			// connects: an unreadable one is a usage error.
			con.errorf("%s: %s", o.urlSource, describe(err))
			return exitUsage
		case ctx.Err() != nil:
			con.errorf("interrupted while connecting to %s: nothing sent", o.uri.Addr())
			return exitUndelivered
		case runCtx.Err() != nil:
			con.errorf("connect to %s: %s", o.uri.Addr(), cutShort())
		default:
			con.errorf("connect to %s: %s", o.uri.Addr(), describe(err))
		}
		return exitConnect
	}
	watchDone := make(chan struct{})
	// watchBlocked is owned by run; it exits when the connection ends,
	// which the deferred Close below ensures before run returns.
	go func() {
		defer close(watchDone)
		watchBlocked(conn, con)
	}()
	defer func() {
		cctx, cancel := closingContext(ctx, runCtx)
		defer cancel()
		_ = conn.Close(cctx) // every outcome is known by now
		<-watchDone
	}()

	ch, err := openChannel(runCtx, conn, o)
	if err != nil {
		if runCtx.Err() != nil {
			con.errorf("%s before publishing: nothing sent", cutShort())
		} else {
			con.errorf("%v", err)
		}
		return exitUndelivered
	}
	return publishAll(ctx, runCtx, o, ch, src, e, con)
}

// closingContext bounds closing the channel or the connection: by
// closeTimeout, and by the --timeout, which bounds the whole run (a broker
// that stopped reading would otherwise hold each close for closeTimeout
// past it), but not by Ctrl-C, after which what was published still gets
// its chance to settle.
func closingContext(sigCtx, runCtx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(closeTimeout)
	if dl, ok := runCtx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return context.WithDeadline(context.WithoutCancel(sigCtx), deadline)
}

// watchBlocked reports the broker blocking and unblocking publishers
// (a resource alarm), until the connection ends. Blocked's first value is
// the current state: an unblocked one is news only after a blocked one.
func watchBlocked(conn *amqp.Conn, con *console) {
	wasBlocked := false
	for b := range conn.Blocked() {
		switch {
		case b.Blocked:
			con.errorf("the broker is blocking publishers: %s; waiting", b.Reason)
		case wasBlocked:
			con.errorf("the broker unblocked publishers")
		}
		wasBlocked = b.Blocked
	}
}

// publishAll publishes the messages of src on ch and reports the outcome.
// sigCtx ends on Ctrl-C; runCtx also at the --timeout.
func publishAll(sigCtx, runCtx context.Context, o *options, ch *amqp.Channel, src source, e env, con *console) int {
	template := amqp.Publishing{Exchange: o.exchange, RoutingKey: o.routingKey, Mandatory: o.mandatory, Properties: o.props}
	if o.queue != "" {
		template.RoutingKey = o.queue
	}
	var returns <-chan amqp.Return
	if o.noConfirm && o.mandatory {
		returns = ch.Returns() // with confirms, returns come with their Confirmation
	}
	p := &publisher{publish: channelPublish(ch), template: template, confirms: !o.noConfirm, window: o.window,
		rate: o.rate, onFailure: con.failure, progress: &progress{}, now: time.Now}

	// Waiting for confirms goes on after Ctrl-C for interruptGrace, and
	// ends at the --timeout.
	var (
		waitCtx    context.Context
		cancelWait context.CancelFunc
	)
	if dl, ok := runCtx.Deadline(); ok {
		waitCtx, cancelWait = context.WithDeadline(context.WithoutCancel(runCtx), dl)
	} else {
		waitCtx, cancelWait = context.WithCancel(context.WithoutCancel(runCtx))
	}
	defer cancelWait()
	defer context.AfterFunc(sigCtx, func() { time.AfterFunc(interruptGrace, cancelWait) })()

	stopBar := func() {}
	if o.loadTest && e.stderrTerminal {
		stopBar = drawProgress(con, p.progress, o.count)
	}
	res := p.run(runCtx, waitCtx, src)
	stopBar()

	s := summarize(res, p.confirms)
	s.Interrupted = sigCtx.Err() != nil
	s.TimedOut = !s.Interrupted && runCtx.Err() != nil
	code := exitOK
	if res.publishErr != nil {
		if !con.told(res.publishCause) {
			con.errorf("%v", res.publishErr)
		}
		code = exitUndelivered
	}
	if o.noConfirm {
		cctx, cancel := closingContext(sigCtx, runCtx)
		if !finishUnconfirmed(cctx, ch, returns, res.publishErr == nil, con, &s) {
			code = exitUndelivered
		}
		cancel()
	}
	// A run cut short failed, unless the user ended a stream of lines.
	cutShort := s.TimedOut || (s.Interrupted && !o.lines)
	if s.Nacked+s.Returned+s.Lost+s.Unconfirmed > 0 || (cutShort && !res.complete) {
		code = exitUndelivered
	}
	if res.inputErr != nil {
		con.errorf("%v", res.inputErr)
		if code == exitOK {
			code = exitUsage
		}
	}
	switch {
	case s.Interrupted:
		con.errorf("interrupted: %s", s.counts())
	case s.TimedOut:
		con.errorf("timed out after %v: %s", o.timeout, s.counts())
	case code == exitUndelivered && s.Sent > 1:
		con.errorf("%s", s.counts())
	}
	switch {
	case o.jsonOut:
		fmt.Fprintln(e.stdout, s.json())
	case o.loadTest:
		fmt.Fprintln(e.stdout, s.text())
	}
	return code
}

// finishUnconfirmed ends a run without confirms. A synchronous round trip
// (basic.qos, which changes nothing for a publisher) comes back after the
// broker has handled every publish before it: with the broker's reason if
// it closed the channel (a missing exchange, for example), and after any
// basic.return. (Closing at once would not do: the client discards what
// crosses its channel.close, as the spec requires.) It then closes the
// channel and reports the returned messages, and reports false on failure.
// cctx bounds it all (see closingContext).
func finishUnconfirmed(cctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, report bool, con *console, s *summary) bool {
	ok := true
	if err := ch.Qos(cctx, 0, false); err != nil {
		if report {
			con.errorf("%s; messages may have been dropped", describe(err))
		}
		return false
	}
	if err := ch.Close(cctx); err != nil {
		con.errorf("close the channel: %s; the messages may not have been written", describe(err))
		return false
	}
	if returns == nil {
		return ok
	}
	// Returns is closed once the channel has ended and every return it
	// received was delivered.
	for {
		select {
		case r, open := <-returns:
			if !open {
				return ok
			}
			con.failure(failure{name: "a message", kind: failReturned, ret: &r, sample: true})
			s.Returned++
			ok = false
		case <-cctx.Done():
			return ok
		}
	}
}

// drawProgress redraws the progress bar until the returned function is
// called, which clears it.
func drawProgress(con *console, p *progress, total int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	start := time.Now()
	// The bar's goroutine is owned by the caller of drawProgress; it exits
	// when stop is called, and stop waits for it.
	go func() {
		defer close(done)
		t := time.NewTicker(barInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				con.showBar(progressLine(p.sent.Load(), p.settled.Load(), total, time.Since(start)))
			case <-quit:
				con.showBar("")
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

var errEmptyInput = errors.New("standard input is empty: nothing to send (to send an empty message, give it as an argument: amqpsend [flags] '')")

// source returns the messages the options ask for. A single message from
// standard input is read now, before connecting.
func (o *options) source(ctx context.Context, stdin io.Reader) (source, error) {
	switch {
	case o.loadTest:
		return generatedSource(o.count, o.size), nil
	case len(o.messages) > 0 || len(o.files) > 0:
		return fixedSource(o.messages, o.files)
	case o.lines:
		return linesSource(ctx, stdin), nil
	}
	b, err := readAll(ctx, stdin)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		// Most likely no input was meant to be given (a script with
		// standard input from /dev/null); an empty message is asked for
		// as an argument.
		return nil, errEmptyInput
	}
	return func(yield func(message, error) bool) {
		yield(message{name: "the message", body: b}, nil)
	}, nil
}
