package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// step bounds every wait in these tests: far above what a loopback round
// trip takes, so that reaching it means the behaviour is wrong.
const step = 5 * time.Second

// quiet is how long a test watches for bytes that must not arrive.
const quiet = 200 * time.Millisecond

// echoServer answers every line with prefix and the line; it stops, with
// all its goroutines, when the test ends.
func echoServer(t *testing.T, prefix string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, prefix+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), step)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(line string) {
	c.t.Helper()
	require.NoError(c.t, c.c.SetWriteDeadline(time.Now().Add(step)))
	_, err := io.WriteString(c.c, line+"\n")
	require.NoError(c.t, err)
}

// recv reads one line within d.
func (c *client) recv(d time.Duration) (string, error) {
	require.NoError(c.t, c.c.SetReadDeadline(time.Now().Add(d)))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func (c *client) roundTrip(line string) string {
	c.t.Helper()
	c.send(line)
	got, err := c.recv(step)
	require.NoError(c.t, err)
	return got
}

// requireClosed checks that the connection ends (EOF or reset) promptly.
func (c *client) requireClosed() {
	c.t.Helper()
	_, err := c.recv(step)
	require.Error(c.t, err)
	require.False(c.t, errors.Is(err, os.ErrDeadlineExceeded), "the connection is still open: %v", err)
}

// requireTurnedAway checks that a new connection to p is reset at once:
// either its dial already sees the reset, or its first read does.
func requireTurnedAway(t *testing.T, p *Proxy) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), step)
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET)
		return
	}
	t.Cleanup(func() { _ = c.Close() })
	(&client{t: t, c: c, r: bufio.NewReader(c)}).requireClosed()
}

func TestForwards(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c := dial(t, p)
	require.Equal(t, "a:hello", c.roundTrip("hello"))
	require.Equal(t, "a:again", c.roundTrip("again"))
	require.Equal(t, 1, p.Accepted())
	require.Equal(t, 1, p.Open())
}

func TestCutResetsCurrentConnectionsOnly(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c1, c2 := dial(t, p), dial(t, p)
	require.Equal(t, "a:1", c1.roundTrip("1"))
	require.Equal(t, "a:2", c2.roundTrip("2"))

	p.Cut()
	c1.requireClosed()
	c2.requireClosed()
	require.Equal(t, 0, p.Open())

	c3 := dial(t, p)
	require.Equal(t, "a:3", c3.roundTrip("3"))
	require.Equal(t, 3, p.Accepted())
}

func TestCutSendsReset(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c := dial(t, p)
	require.Equal(t, "a:x", c.roundTrip("x"))
	p.Cut()
	_, err := c.recv(step)
	require.ErrorIs(t, err, syscall.ECONNRESET)
}

func TestBlackholeHoldsBytesUntilLifted(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c := dial(t, p)
	require.Equal(t, "a:before", c.roundTrip("before"))

	p.Blackhole(true)
	c.send("held")
	_, err := c.recv(quiet)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "nothing crosses a blackhole")
	require.Equal(t, 1, p.Open(), "the sockets stay open")

	// A connection made during the blackhole is accepted but silent too.
	c2 := dial(t, p)
	c2.send("new")
	_, err = c2.recv(quiet)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	p.Blackhole(false)
	got, err := c.recv(step)
	require.NoError(t, err)
	require.Equal(t, "a:held", got, "what was held is delivered, as TCP would")
	got, err = c2.recv(step)
	require.NoError(t, err)
	require.Equal(t, "a:new", got)
}

func TestCutEndsABlackholedConnection(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c := dial(t, p)
	require.Equal(t, "a:x", c.roundTrip("x"))
	p.Blackhole(true)
	c.send("held")
	p.Cut()
	c.requireClosed()
	p.Blackhole(false)
}

func TestDelayHoldsEachChunk(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	c := dial(t, p)
	require.Equal(t, "a:warm", c.roundTrip("warm"))

	const d = 100 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	require.Equal(t, "a:slow", c.roundTrip("slow"))
	require.GreaterOrEqual(t, time.Since(start), 2*d, "one delay each way")

	p.Delay(0)
	require.Equal(t, "a:fast", c.roundTrip("fast"))
}

func TestRefuseResetsNewConnections(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	old := dial(t, p)
	require.Equal(t, "a:old", old.roundTrip("old"))

	p.Refuse(true)
	requireTurnedAway(t, p)
	require.Equal(t, 1, p.Refused())
	require.Equal(t, 1, p.Accepted())
	require.Equal(t, "a:still", old.roundTrip("still"), "forwarded connections go on")

	p.Refuse(false)
	c := dial(t, p)
	require.Equal(t, "a:back", c.roundTrip("back"))
	require.Equal(t, 2, p.Accepted())
}

func TestSetTargetMovesNewConnectionsOnly(t *testing.T) {
	p := newProxy(t, echoServer(t, "a:"))
	onA := dial(t, p)
	require.Equal(t, "a:1", onA.roundTrip("1"))

	p.SetTarget(echoServer(t, "b:"))
	onB := dial(t, p)
	require.Equal(t, "b:2", onB.roundTrip("2"))
	require.Equal(t, "a:3", onA.roundTrip("3"))
}

func TestUnreachableTargetResetsTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	p := newProxy(t, addr)
	requireTurnedAway(t, p)
	require.Equal(t, 0, p.Open())
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := New(echoServer(t, "a:"))
	require.NoError(t, err)
	c := dial(t, p)
	require.Equal(t, "a:x", c.roundTrip("x"))
	p.Blackhole(true)
	p.Delay(time.Hour)
	c2 := dial(t, p)
	c2.send("stuck")

	require.NoError(t, p.Close())
	c.requireClosed()
	c2.requireClosed()
	_, err = net.DialTimeout("tcp", p.Addr(), step)
	require.Error(t, err, "the listener is closed")
	// goleak (TestMain) checks that no goroutine of the proxy is left.
}

func TestPartitionKeepsEvenACloseFromCrossing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	p := newProxy(t, ln.Addr().String())
	accept := func() (client, server net.Conn) {
		client, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		server, err = ln.Accept()
		require.NoError(t, err)
		return client, server
	}
	crosses := func(from, to net.Conn) bool {
		_, err := from.Write([]byte("x"))
		require.NoError(t, err)
		require.NoError(t, to.SetReadDeadline(time.Now().Add(quiet)))
		_, err = to.Read(make([]byte, 1))
		if err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		}
		return err == nil
	}
	client, server := accept()
	defer server.Close()
	require.True(t, crosses(client, server))

	p.Partition()
	require.False(t, crosses(client, server), "bytes crossed the partition")
	require.False(t, crosses(server, client), "bytes crossed the partition")
	require.NoError(t, client.Close())
	require.NoError(t, server.SetReadDeadline(time.Now().Add(quiet)))
	_, err = server.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the close crossed the partition")

	// A new connection goes through.
	client2, server2 := accept()
	defer client2.Close()
	defer server2.Close()
	require.True(t, crosses(client2, server2))

	p.Cut()
	require.NoError(t, server.SetReadDeadline(time.Now().Add(step)))
	_, err = server.Read(make([]byte, 1))
	require.Error(t, err)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "Cut ends a partitioned connection")
}
