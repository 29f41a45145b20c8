package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amqproto/amqproto/amqp"
)

// describe turns a library error into the text of an error line: without
// the "amqp: " prefix, and with a broker's close as "the broker closed the
// channel: 404 NOT_FOUND - no exchange 'x' in vhost '/'".
func describe(err error) string {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		text := ae.Reason
		// RabbitMQ starts its reasons with the code's name.
		if name := ae.Code.String(); !strings.HasPrefix(text, name) {
			text = strings.TrimSuffix(name+" - "+text, " - ")
		}
		text = fmt.Sprintf("%d %s", uint16(ae.Code), text)
		switch {
		case !ae.Server:
			// The client closed because the peer broke the protocol.
			return "protocol error (is this an AMQP 0-9-1 port?): " + text
		case ae.Connection:
			return "the broker closed the connection: " + text
		}
		return "the broker closed the channel: " + text
	}
	var de *amqp.DialError
	if errors.As(err, &de) {
		return strings.TrimPrefix(de.Err.Error(), "amqp: ")
	}
	return strings.TrimPrefix(err.Error(), "amqp: ")
}

// redact hides password in s. Every error text is built without the
// password (amqp.URI.String and amqp.URIError hide it); this is a second
// line of defence, skipped for passwords so short or so common (the user
// name) that hiding them would garble the message.
func redact(s, password, username string) string {
	if len(password) < 4 || password == username {
		return s
	}
	return strings.ReplaceAll(s, password, "xxxxx")
}

// console writes error lines and the progress bar to standard error,
// keeping them apart. Its methods are safe for concurrent use.
type console struct {
	mu       sync.Mutex
	w        io.Writer
	password string
	username string
	bar      string // the progress line on screen, "" if none
	failures int    // failure lines shown
	// lost holds the descriptions of the errors shown for lost messages,
	// so that the same channel or connection failure is told once.
	lost map[string]bool
}

// maxFailureLines bounds the failure lines printed; the final counts
// cover the rest.
const maxFailureLines = 10

func (c *console) errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.printLocked("amqpsend: " + fmt.Sprintf(format, args...))
}

// printLocked prints one line, lifting the progress bar over it.
func (c *console) printLocked(line string) {
	line = redact(strings.ReplaceAll(line, "\n", " "), c.password, c.username)
	if c.bar != "" {
		fmt.Fprint(c.w, "\r\x1b[K")
	}
	fmt.Fprintln(c.w, line)
	if c.bar != "" {
		fmt.Fprint(c.w, c.bar)
	}
}

// failure reports a message the broker did not take: the first ones,
// skipping repeats of the same error (every message lost to one closed
// channel).
func (c *console) failure(f failure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !f.sample {
		return
	}
	if f.kind == failLost {
		if c.lost == nil {
			c.lost = map[string]bool{}
		}
		c.lost[describe(f.err)] = true
	}
	c.failures++
	switch {
	case c.failures < maxFailureLines:
		c.printLocked("amqpsend: " + f.String())
	case c.failures == maxFailureLines:
		c.printLocked("amqpsend: more messages failed; not showing them")
	}
}

// told reports whether err was already shown as the reason messages were
// lost.
func (c *console) told(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost[describe(err)]
}

// showBar draws the progress line; "" clears it.
func (c *console) showBar(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprint(c.w, "\r"+line+"\x1b[K")
	c.bar = line
	if line == "" {
		fmt.Fprint(c.w, "\r\x1b[K")
	}
}

// progressLine renders the progress bar: the share of messages settled
// (confirmed or failed; sent, without confirms).
func progressLine(sent, settled int64, total int, elapsed time.Duration) string {
	const width = 30
	frac := 0.0
	if total > 0 {
		frac = min(float64(settled)/float64(total), 1)
	}
	filled := int(frac * width)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(settled) / elapsed.Seconds()
	}
	return fmt.Sprintf("[%s%s] %3d%% %d/%d sent, %d settled, %.0f msgs/s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), int(frac*100), sent, total, settled, rate)
}

// summary is the report of a run; --json prints it as is.
type summary struct {
	// Messages is the number the rates count: confirmed, or sent with
	// --no-confirm.
	Messages    int     `json:"messages"`
	Sent        int     `json:"sent"`
	Confirmed   int     `json:"confirmed"`
	Nacked      int     `json:"nacked"`
	Returned    int     `json:"returned"`
	Lost        int     `json:"lost"` // channel or connection ended before the confirm
	Unconfirmed int     `json:"unconfirmed"`
	Confirms    bool    `json:"confirms"`
	Bytes       int64   `json:"bytes"` // of the counted messages' bodies
	Seconds     float64 `json:"seconds"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"` // 10^6 bytes of bodies a second
	// Latency is the confirm latency, publish to confirm; absent without
	// confirms or confirmed messages.
	Latency     *latency `json:"confirm_latency_ms,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
	TimedOut    bool     `json:"timed_out,omitempty"`
}

// latency holds confirm latency percentiles in milliseconds.
type latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(r result, confirms bool) summary {
	s := summary{Sent: r.sent, Confirmed: r.confirmed, Nacked: r.nacked, Returned: r.returned, Lost: r.lost,
		Unconfirmed: r.unconfirmed, Confirms: confirms, Messages: r.confirmed, Bytes: r.confirmedBytes}
	if !confirms {
		s.Messages, s.Bytes = r.sent, r.sentBytes
	}
	if d := r.end.Sub(r.start); d > 0 {
		s.Seconds = d.Seconds()
		s.MsgsPerSec = float64(s.Messages) / s.Seconds
		s.MBPerSec = float64(s.Bytes) / 1e6 / s.Seconds
	}
	if confirms && len(r.latencies) > 0 {
		l := slices.Clone(r.latencies)
		slices.Sort(l)
		s.Latency = &latency{P50: ms(percentile(l, 50)), P99: ms(percentile(l, 99)), Max: ms(l[len(l)-1])}
	}
	return s
}

// percentile returns the p-th percentile (nearest rank) of sorted, which
// must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// counts is the one-line account of what happened to the messages.
func (s summary) counts() string {
	if !s.Confirms {
		return fmt.Sprintf("sent %d (without confirms)", s.Sent)
	}
	out := fmt.Sprintf("sent %d, confirmed %d", s.Sent, s.Confirmed)
	if f := s.Nacked + s.Returned + s.Lost; f > 0 {
		out += fmt.Sprintf(", failed %d", f)
	}
	return out + fmt.Sprintf(", unconfirmed %d", s.Unconfirmed)
}

// text is the human-readable summary of a load test.
func (s summary) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages in %.3fs: %.0f msgs/s, %.2f MB/s", s.Messages, s.Seconds, s.MsgsPerSec, s.MBPerSec)
	if s.Latency != nil {
		fmt.Fprintf(&b, ", confirm latency p50 %.3fms p99 %.3fms", s.Latency.P50, s.Latency.P99)
	}
	if s.Messages != s.Sent || s.Unconfirmed > 0 {
		fmt.Fprintf(&b, " (%s)", s.counts())
	}
	return b.String()
}

func (s summary) json() string {
	b, _ := json.Marshal(s) // summary has only numbers and bools
	return string(b)
}
