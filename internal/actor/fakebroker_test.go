package actor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/amqproto/amqproto/internal/fakebroker"
	"github.com/amqproto/amqproto/internal/sansio"
)

// pipeConn dials a Conn over a net.Pipe whose other end the script drives
// in its own goroutine, which must return when done. The Conn is closed and
// the script awaited at the end of the test.
func pipeConn(t *testing.T, cfg Config, script func(b *fakebroker.Broker)) (*Conn, <-chan struct{}) {
	t.Helper()
	client, server := net.Pipe()
	return scriptedConn(t, cfg, client, server, script)
}

// tcpConn is pipeConn over a loopback TCP connection with small socket
// buffers, so that the loop's non-blocking writes fill the socket quickly
// (smaller buffers than these make loopback TCP stall for seconds).
func tcpConn(t *testing.T, cfg Config, script func(b *fakebroker.Broker)) *Conn {
	t.Helper()
	client, server := fakebroker.TCPPair(t)
	if err := client.SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := server.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	c, _ := scriptedConn(t, cfg, client, server, script)
	return c
}

// scriptedConn dials a Conn over client while script plays the broker on
// server; the Conn is closed and the script awaited at the end of the test.
func scriptedConn(t testing.TB, cfg Config, client, server net.Conn, script func(b *fakebroker.Broker)) (*Conn, <-chan struct{}) {
	t.Helper()
	scriptDone := fakebroker.Start(t, server, script)
	if cfg.Core.Auth == nil {
		cfg.Core.Auth = []sansio.Auth{&sansio.PlainAuth{Username: "guest", Password: "guest"}}
	}
	c, err := Dial(context.Background(), client, cfg)
	if err != nil {
		<-scriptDone
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
		<-scriptDone
	})
	return c, scriptDone
}
