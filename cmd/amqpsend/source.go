package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
)

// message is one body to publish, with the name that reports its fate.
type message struct {
	name string // "message 2", "file a.json", "line 7"
	body []byte
}

// A source yields the messages to publish in order. An error is an input
// error and ends it. A source that waits for input returns early when its
// context ends.
type source = iter.Seq2[message, error]

// inputError is a failure to read the messages: exit status 1.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// fixedSource yields the message arguments and then the files, read before
// connecting so that an unreadable file fails before anything is sent.
func fixedSource(args, files []string) (source, error) {
	msgs := make([]message, 0, len(args)+len(files))
	for i, a := range args {
		msgs = append(msgs, message{name: "message " + strconv.Itoa(i+1), body: []byte(a)})
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, &inputError{fmt.Errorf("--file: %w", err)}
		}
		msgs = append(msgs, message{name: "file " + f, body: b})
	}
	return func(yield func(message, error) bool) {
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}, nil
}

// generatedSource yields count messages of size bytes, for load tests. They
// share one body: Publish encodes it before returning.
func generatedSource(count, size int) source {
	const pattern = "amqpsend load test "
	body := make([]byte, size)
	for i := range body {
		body[i] = pattern[i%len(pattern)]
	}
	return func(yield func(message, error) bool) {
		for i := range count {
			if !yield(message{name: "message " + strconv.Itoa(i+1), body: body}, nil) {
				return
			}
		}
	}
}

// readAll reads r to the end, giving up when ctx ends. A read blocked in r
// (a terminal, a pipe) cannot be interrupted; the goroutine reading is then
// left to finish with the process.
func readAll(ctx context.Context, r io.Reader) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	// This goroutine is owned by readAll; it exits when r reaches its end
	// or fails (see above), and never blocks on the send (buffered).
	go func() {
		b, err := io.ReadAll(r)
		done <- result{b, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return nil, &inputError{fmt.Errorf("read standard input: %w", res.err)}
		}
		return res.b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// linesSource yields every non-empty line of r as a message, without its
// line ending ("\n" or "\r\n"), as soon as it is read. It returns early when
// ctx ends.
func linesSource(ctx context.Context, r io.Reader) source {
	type line struct {
		n   int
		b   []byte
		err error
	}
	return func(yield func(message, error) bool) {
		lines := make(chan line)
		stop := make(chan struct{})
		defer close(stop)
		// The reader is owned by this iterator. It exits at the end of r,
		// on a read error, or once the iterator has returned (stop) and
		// its current read completes; a read blocked on a terminal or pipe
		// ends with the process.
		go func() {
			defer close(lines)
			br := bufio.NewReaderSize(r, 64<<10)
			for n := 1; ; n++ {
				b, err := br.ReadBytes('\n')
				if err == io.EOF {
					err = nil
					if len(b) == 0 {
						return
					}
				}
				var l line
				if err != nil {
					l = line{err: fmt.Errorf("read standard input: %w", err)}
				} else {
					b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
					if len(b) == 0 {
						continue
					}
					l = line{n: n, b: b}
				}
				select {
				case lines <- l:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
			}
		}()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return
				}
				if l.err != nil {
					yield(message{}, &inputError{l.err})
					return
				}
				if !yield(message{name: "line " + strconv.Itoa(l.n), body: l.b}, nil) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
