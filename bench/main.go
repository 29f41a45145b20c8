// Command bench compares github.com/amqproto/amqproto with
// github.com/rabbitmq/amqp091-go against a running RabbitMQ.
//
// Each scenario runs for both clients in alternation (ours, theirs, ours,
// theirs, ...) for -rounds rounds, every run on a fresh connection and a
// fresh non-durable queue that is purged and deleted afterwards. Dialing,
// declaring, opening channels, confirm.select, basic.qos and preloading
// happen outside the measured window; what is measured is wall time,
// process CPU time (getrusage user+sys), and bytes and objects allocated
// (runtime.MemStats TotalAlloc and Mallocs). The table gives the median of
// each figure over the rounds. Rows h and i also record each message's
// latency (p50, p99); rows g-100 and g-1000 dial that many idle connections
// and report the heap, stacks and goroutines each holds. Ours runs with
// automatic recovery on, its default (-recovery=false turns it off).
//
//	cd bench && go run . [-rounds 3] [-only a,b] [-scale 0.1] [-json out.json]
//	make bench BENCHFLAGS='-only d -scale 0.1'
//
// To profile one client in one scenario:
//
//	go run . -only d -client ours -cpuprofile /tmp/p -memprofile /tmp/p
//	go tool pprof -top /tmp/p-d-ours-r1.cpu.pprof
//	go tool pprof -top -sample_index=alloc_objects -base /tmp/p-d-ours-r1.mem.pprof.base /tmp/p-d-ours-r1.mem.pprof
//
// On a virtual machine the dearest thing a client does is wake a sleeping
// thread (the switches column). To see which goroutine wakes which, and how
// often, trace a window and count the goroutines' Waiting->Runnable
// transitions, grouped by the stack of the goroutine that made them
// (./wakes does it, per message; its second argument is the run's message
// count, from the report):
//
//	go run . -only b -client ours -trace /tmp/t
//	go run ./wakes /tmp/t-b-ours-r1.trace 100000
//	go tool trace -d=parsed /tmp/t-b-ours-r1.trace   # every event, to read
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	pollInterval = time.Millisecond // passive-declare polling for unconfirmed publishes

	confirmWindow = 1000 // b, and preloading
	prefetch      = 1000 // d
	ackEvery      = 100  // d
	bigPrefetch   = 100  // e-con
	bigAckEvery   = 10   // e-con
	channelsF     = 50   // f
	prefetchJ     = 300  // h and j
	pacedRate     = 4000 // h, messages per second (-rate)
)

// A scenario is one line of the comparison, run once per client and round.
type scenario struct {
	ID   string
	Desc string
	N    int // messages at scale 1
	Body int // body size in bytes
	Rows []string
	// RowN, when set, is each row's own count at scale 1 (connections, for
	// the idle rows), in place of N.
	RowN map[string]int
}

var scenarios = []scenario{
	{ID: "a", Desc: "publish without confirms, then poll passive declare until the queue holds them all", N: 200_000, Body: kib},
	{ID: "b", Desc: fmt.Sprintf("publish with confirms, at most %d outstanding", confirmWindow), N: 100_000, Body: kib},
	{ID: "c", Desc: "publish and wait for each confirm", N: 5_000, Body: kib},
	{ID: "d", Desc: fmt.Sprintf("consume preloaded messages, prefetch %d, multiple ack every %d", prefetch, ackEvery), N: 200_000, Body: kib},
	{ID: "e", Desc: "1 MiB messages: publish without confirms and poll as in (a) (e-pub), then consume them, " +
		fmt.Sprintf("prefetch %d, multiple ack every %d (e-con)", bigPrefetch, bigAckEvery), N: 500, Body: mib,
		Rows: []string{"e-pub", "e-con"}},
	{ID: "f", Desc: "", N: 100_000, Body: kib}, // Desc set in main from -fwindow
	{ID: "g", Desc: "idle connections, each with one channel: dialled one after another (msgs/s, CPU, B and allocs are per dial), " +
		"then held idle for a second; heap, stack and goroutines are what they hold after a garbage collection",
		Rows: []string{"g-100", "g-1000"}, RowN: map[string]int{"g-100": 100, "g-1000": 1000}},
	{ID: "h", Desc: "", N: 40_000, Body: 512}, // Desc set in main from -rate
	{ID: "i", Desc: "request/reply round trips on one connection: a requester channel publishes each request (reply-to, correlation id) " +
		"and waits for its reply; a responder channel consumes the requests and publishes the replies; both consume with auto-ack",
		N: 10_000, Body: 512},
	{ID: "j", Desc: fmt.Sprintf("consume preloaded messages, prefetch %d, ack each", prefetchJ), N: 100_000, Body: kib},
	{ID: "k", Desc: "publish without confirms, then poll as in (a)", N: 200_000, Body: 512},
}

// countFor returns how many messages (or connections) row runs at scale.
func (s scenario) countFor(row string, scale float64) int {
	n := s.N
	if rn, ok := s.RowN[row]; ok {
		n = rn
	}
	return max(1, int(float64(n)*scale+0.5))
}

func (s scenario) rows() []string {
	if s.Rows != nil {
		return s.Rows
	}
	return []string{s.ID}
}

type options struct {
	url        string
	rounds     int
	scale      float64
	only       map[string]bool
	clients    []client
	jsonPath   string
	cpuProfile string
	tracePath  string
	memProfile string
	timeout    time.Duration
	pause      time.Duration
	fWindow    int
	retries    int
	rate       float64
	idleFor    time.Duration
}

var runSeq atomic.Int64

var errBlocked = errors.New("the broker blocked the connection (resource alarm) during the run")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	url := os.Getenv("AMQP_BENCH_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/%2f"
	}
	flag.StringVar(&o.url, "url", url, "broker URI (default from $AMQP_BENCH_URL)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario and client")
	flag.Float64Var(&o.scale, "scale", 1, "multiply every message count by this")
	only := flag.String("only", "", "comma-separated scenarios to run (a to k); empty runs all")
	which := flag.String("client", "both", "clients to run: both, ours or theirs")
	flag.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.tracePath, "trace", "", "write an execution trace of every measured window to PREFIX-<row>-<client>-r<round>.trace\n(who wakes whom, per message: go run ./wakes FILE MESSAGES)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of every measured window to PREFIX-<row>-<client>-r<round>.cpu.pprof")
	flag.StringVar(&o.memProfile, "memprofile", "", "write allocation profiles around every measured window to PREFIX-<row>-<client>-r<round>.mem.pprof{.base,}")
	memRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate while profiling (0 keeps the default)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one run after this long")
	flag.DurationVar(&o.pause, "pause", time.Second, "pause between runs, to let the broker settle")
	flag.IntVar(&o.retries, "retries", 2, "run again a run that failed (for example a connection closed by someone else, or blocked by a resource alarm) up to this many times")
	flag.IntVar(&o.fWindow, "fwindow", confirmWindow/channelsF, "f: outstanding confirms per channel")
	flag.Float64Var(&o.rate, "rate", pacedRate, "h: messages per second")
	flag.DurationVar(&o.idleFor, "idle", time.Second, "g: how long the connections stay idle before their memory is read")
	recovery := flag.Bool("recovery", true, "ours: automatic recovery (on by default in amqproto; amqp091-go has none)")
	flag.Parse()

	if o.rounds < 1 || o.scale <= 0 || o.fWindow < 1 || o.rate <= 0 {
		return fmt.Errorf("-rounds, -scale, -fwindow and -rate must be positive")
	}
	for i := range scenarios {
		switch scenarios[i].ID {
		case "f":
			scenarios[i].Desc = fmt.Sprintf("%d channels on one connection publishing with confirms from %d goroutines, "+
				"at most %d outstanding per channel (%d in all)", channelsF, channelsF, o.fWindow, o.fWindow*channelsF)
		case "h":
			scenarios[i].Desc = fmt.Sprintf("paced end to end: one connection publishes at %g msg/s without confirms, "+
				"each message stamped with its send time; a second connection consumes them, prefetch %d, ack each; "+
				"p50 and p99 are the send-to-receive latencies", o.rate, prefetchJ)
		}
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, id := range strings.Split(*only, ",") {
			id = strings.TrimSpace(id)
			if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.ID == id }) {
				return fmt.Errorf("-only: unknown scenario %q", id)
			}
			o.only[id] = true
		}
	}
	us := ours{noRecovery: !*recovery}
	switch *which {
	case "both":
		o.clients = []client{us, theirs{}}
	case "ours":
		o.clients = []client{us}
	case "theirs":
		o.clients = []client{theirs{}}
	default:
		return fmt.Errorf("-client: want both, ours or theirs")
	}
	if *memRate > 0 && o.memProfile != "" {
		runtime.MemProfileRate = *memRate
	}

	rep, err := runAll(&o)
	if err != nil {
		return err
	}
	rep.writeMarkdown(os.Stdout)
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nJSON written to %s\n", o.jsonPath)
	}
	return nil
}

func runAll(o *options) (*report, error) {
	rep := &report{
		Date:      time.Now().Format(time.RFC3339),
		NumCPU:    runtime.NumCPU(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		GoVersion: runtime.Version(),
		Theirs:    "github.com/rabbitmq/amqp091-go " + depVersion("github.com/rabbitmq/amqp091-go"),
		Ours:      oursRevision(),
		LoadAvg:   loadAvg(),
		Rounds:    o.rounds,
		Scale:     o.scale,
		Recovery:  slices.ContainsFunc(o.clients, func(c client) bool { u, ok := c.(ours); return ok && !u.noRecovery }),
	}

	// The broker's version, from a throwaway connection of each client.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cl := range o.clients {
		s, err := cl.Dial(ctx, o.url)
		if err != nil {
			return nil, fmt.Errorf("%s: dial %s: %w", cl.Name(), o.url, err)
		}
		rep.Broker = "RabbitMQ " + s.ServerVersion()
		s.Close(ctx)
	}

	for _, sc := range scenarios {
		if o.only != nil && !o.only[sc.ID] {
			continue
		}
		n := sc.countFor(sc.rows()[0], o.scale)
		res := make(map[string]*rowResult) // by row, then client
		for _, row := range sc.rows() {
			r := &rowResult{Row: row, Scenario: sc.ID, Desc: sc.Desc, Messages: sc.countFor(row, o.scale), BodySize: sc.Body,
				Idle: sc.RowN != nil, Clients: map[string]*clientResult{}}
			for _, cl := range o.clients {
				r.Clients[cl.Name()] = &clientResult{}
			}
			res[row] = r
			rep.Rows = append(rep.Rows, r)
		}
		for round := 1; round <= o.rounds; round++ {
			for _, cl := range o.clients {
				var samples map[string]sample
				var err error
				for try := 0; try <= o.retries; try++ {
					if try > 0 {
						fmt.Fprintf(os.Stderr, " error: %v; again\n", err)
						res[sc.rows()[0]].Clients[cl.Name()].Retried = append(res[sc.rows()[0]].Clients[cl.Name()].Retried,
							fmt.Sprintf("round %d: %v", round, err))
						time.Sleep(o.pause)
					}
					fmt.Fprintf(os.Stderr, "%s round %d/%d %-10s ", sc.ID, round, o.rounds, cl.Name())
					if sc.ID == "g" {
						samples, err = runIdle(o, cl, sc, round)
					} else {
						samples, err = runOne(o, cl, sc, n, round)
					}
					if err == nil {
						break
					}
				}
				for _, row := range sc.rows() {
					s, ok := samples[row]
					if !ok {
						continue
					}
					res[row].Clients[cl.Name()].Runs = append(res[row].Clients[cl.Name()].Runs, s)
					fmt.Fprintf(os.Stderr, " %s: %.0f msg/s %.1f µs/msg %.2f allocs/msg", row, s.msgsPerSec(), s.cpuMicrosPerMsg(), s.allocsPerMsg())
					if s.P50 > 0 {
						fmt.Fprintf(os.Stderr, " p50 %v p99 %v", s.P50, s.P99)
					}
					if res[row].Idle {
						fmt.Fprintf(os.Stderr, " %.1f KiB heap %.2f goroutines per conn", s.HeapPerConn/kib, s.GoroutinesPerConn)
					}
					fmt.Fprint(os.Stderr, ";")
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, " error: %v", err)
					for _, row := range sc.rows() {
						if _, ok := samples[row]; !ok {
							cr := res[row].Clients[cl.Name()]
							cr.Errors = append(cr.Errors, fmt.Sprintf("round %d: %v", round, err))
						}
					}
				}
				fmt.Fprintln(os.Stderr)
				time.Sleep(o.pause)
			}
		}
	}
	rep.finish()
	return rep, nil
}

// runOne runs scenario sc once for cl on a fresh connection and queue. It
// returns the samples of the rows it measured, and the first error.
func runOne(o *options, cl client, sc scenario, n, round int) (map[string]sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sess, err := cl.Dial(ctx, o.url)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		sess.Close(cctx)
	}()
	// A name never used before, even by a retried run whose queue could not
	// be deleted.
	queue := fmt.Sprintf("amqproto-bench-%s-%s-r%d-%d-%d", sc.ID, cl.Name(), round, os.Getpid(), runSeq.Add(1))
	if err := sess.Declare(ctx, queue); err != nil {
		return nil, fmt.Errorf("declare: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := sess.Delete(cctx, queue); err != nil {
			// The run's connection may be gone: try a fresh one.
			if s2, derr := cl.Dial(cctx, o.url); derr == nil {
				err = s2.Delete(cctx, queue)
				s2.Close(cctx)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, " (deleting %s: %v)", queue, err)
			}
		}
	}()

	body := make([]byte, sc.Body)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	out := map[string]sample{}
	one := func(row string, prep func() (prepared, error)) error {
		p, err := prep()
		if err != nil {
			return fmt.Errorf("%s: preparing: %w", row, err)
		}
		// Shortly before the run's deadline, record where every goroutine
		// waits, to diagnose a hang.
		var dump atomic.Value
		watchdog := time.AfterFunc(o.timeout-min(o.timeout/10, 10*time.Second), func() {
			dump.Store(dumpGoroutines(row, cl, round))
		})
		s, err := measure(ctx, p, n, sc.Body, o.profiling(row, cl, round))
		if err == nil && p.Lat != nil {
			s.P50, s.P99 = p.Lat.percentile(50), p.Lat.percentile(99)
		}
		watchdog.Stop()
		if name, ok := dump.Load().(string); ok && err != nil {
			err = fmt.Errorf("%w (goroutines before the deadline: %s)", err, name)
		}
		if err == nil && sess.Blocked() {
			err = errBlocked
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		p.Cleanup(cctx)
		ccancel()
		if err != nil {
			return fmt.Errorf("%s: %w", row, err)
		}
		out[row] = s
		return nil
	}

	switch sc.ID {
	case "a":
		err = one("a", func() (prepared, error) { return sess.PreparePublish(ctx, queue, n, body) })
	case "b":
		err = one("b", func() (prepared, error) { return sess.PrepareConfirmed(ctx, queue, n, body, confirmWindow) })
	case "c":
		err = one("c", func() (prepared, error) { return sess.PrepareWaitEach(ctx, queue, n, body) })
	case "d":
		if err := sess.Preload(ctx, queue, n, body); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		err = one("d", func() (prepared, error) { return sess.PrepareConsume(ctx, queue, n, prefetch, ackEvery) })
	case "e":
		err = one("e-pub", func() (prepared, error) { return sess.PreparePublish(ctx, queue, n, body) })
		if err == nil {
			err = one("e-con", func() (prepared, error) { return sess.PrepareConsume(ctx, queue, n, bigPrefetch, bigAckEvery) })
		}
	case "f":
		err = one("f", func() (prepared, error) {
			return sess.PrepareConcurrent(ctx, queue, n, body, channelsF, o.fWindow)
		})
	case "h":
		err = one("h", func() (prepared, error) {
			lat := newLatencies(n)
			p, err := sess.PreparePaced(ctx, queue, n, body, o.rate, prefetchJ, lat)
			p.Lat = lat
			return p, err
		})
	case "i":
		replies := queue + "-reply"
		if err := sess.Declare(ctx, replies); err != nil {
			return nil, fmt.Errorf("declare: %w", err)
		}
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
			defer ccancel()
			_ = sess.Delete(cctx, replies)
		}()
		err = one("i", func() (prepared, error) {
			lat := newLatencies(n)
			p, err := sess.PrepareRPC(ctx, queue, replies, n, body, lat)
			p.Lat = lat
			return p, err
		})
	case "j":
		if err := sess.Preload(ctx, queue, n, body); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
		err = one("j", func() (prepared, error) { return sess.PrepareConsume(ctx, queue, n, prefetchJ, 1) })
	case "k":
		err = one("k", func() (prepared, error) { return sess.PreparePublish(ctx, queue, n, body) })
	}
	return out, err
}

func (o *options) profiling(row string, cl client, round int) profiling {
	var p profiling
	name := fmt.Sprintf("-%s-%s-r%d", row, cl.Name(), round)
	if o.cpuProfile != "" {
		p.cpu = o.cpuProfile + name + ".cpu.pprof"
	}
	if o.memProfile != "" {
		p.mem = o.memProfile + name + ".mem.pprof"
	}
	if o.tracePath != "" {
		p.trace = o.tracePath + name + ".trace"
	}
	return p
}

// dumpGoroutines writes every goroutine's stack to a file, to diagnose a
// run that hung, and returns the file's name.
func dumpGoroutines(row string, cl client, round int) string {
	name := filepath.Join(os.TempDir(), fmt.Sprintf("amqproto-bench-hang-%s-%s-r%d-%d.txt", row, cl.Name(), round, os.Getpid()))
	f, err := os.Create(name)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	pprof.Lookup("goroutine").WriteTo(f, 2)
	return name
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "?"
}

// oursRevision describes the library's working tree (the replace
// directive builds it from ..): commit, and the files changed since.
func oursRevision() string {
	// The library's source is the parent of this file's directory.
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "unknown revision"
	}
	root := filepath.Dir(filepath.Dir(file))
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown revision"
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", ":!bench", ":!Makefile").Output()
	if err == nil && len(st) > 0 {
		rev += fmt.Sprintf(" + %d uncommitted files", strings.Count(string(st), "\n"))
	}
	return rev
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
