// Command wakes counts the goroutine wake-ups in an execution trace written
// by the bench's -trace flag: every Waiting->Runnable transition, per
// message, grouped by who made it (the first frame of the waker's stack
// outside the runtime and the standard library, or "runtime" for the
// network poller, timers and the scheduler) and where the goroutine woken
// had blocked.
//
//	go run ./wakes /tmp/t-h-ours-r1.trace 8000
//
// The second argument is the number of messages of the run (the bench's
// report gives it); the counts are divided by it.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wakes:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 3 {
		return errors.New("usage: wakes TRACE MESSAGES")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		return fmt.Errorf("MESSAGES: want a positive count, got %q", os.Args[2])
	}
	cmd := exec.Command("go", "tool", "trace", "-d=parsed", os.Args[1])
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	counts, total, err := count(out)
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	fmt.Printf("%d wake-ups, %.3f per message\n", total, float64(total)/float64(n))
	for _, c := range counts {
		fmt.Printf("%8.3f %8d  %s -> %s\n", float64(c.n)/float64(n), c.n, c.waker, c.woken)
	}
	return nil
}

// pair is who woke whom, and how often.
type pair struct {
	waker, woken string
	n            int
}

// count reads the text of go tool trace -d=parsed: one event per line,
// followed by its stacks, one tab-indented frame per line (the file of each
// frame indented twice).
func count(r io.Reader) ([]pair, int, error) {
	blockedAt := map[string]string{} // goroutine -> where it last blocked
	byPair := map[[2]string]int{}
	total := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev string          // the event the stacks below belong to
	var stack, tr []string // its stack, and its transition stack
	var cur *[]string
	flush := func() {
		if ev != "" {
			if n, ok := note(ev, stack, tr, blockedAt, byPair); ok {
				total += n
			}
		}
		ev, stack, tr, cur = "", nil, nil, nil
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "M="):
			flush()
			ev = line
		case line == "Stack=":
			cur = &stack
		case line == "TransitionStack=":
			cur = &tr
		case strings.HasPrefix(line, "\t\t"): // a frame's file
		case strings.HasPrefix(line, "\t") && cur != nil:
			*cur = append(*cur, strings.TrimSpace(line))
		}
	}
	flush()
	counts := make([]pair, 0, len(byPair))
	for k, n := range byPair {
		counts = append(counts, pair{waker: k[0], woken: k[1], n: n})
	}
	slices.SortFunc(counts, func(a, b pair) int { return cmp.Compare(b.n, a.n) })
	return counts, total, sc.Err()
}

// note records a goroutine state transition: where a goroutine blocks, and
// who wakes it. It reports 1 for a wake-up.
func note(ev string, stack, tr []string, blockedAt map[string]string, byPair map[[2]string]int) (int, bool) {
	if !strings.Contains(ev, " StateTransition ") {
		return 0, false
	}
	g := field(ev, "GoID=")
	if g == "" {
		return 0, false // a P's transition
	}
	switch {
	case strings.Contains(ev, " Running->Waiting "):
		if len(tr) == 0 {
			tr = stack
		}
		blockedAt[g] = frame(tr)
	case strings.Contains(ev, " Waiting->Runnable "):
		waker := "runtime"
		if field(ev, "G=") != "-1" {
			waker = frame(stack)
		}
		woken := cmp.Or(blockedAt[g], "?")
		byPair[[2]string{waker, woken}]++
		return 1, true
	}
	return 0, false
}

// field returns the value of key in an event line.
func field(ev, key string) string {
	i := strings.Index(ev, " "+key)
	if i < 0 {
		return ""
	}
	v := ev[i+1+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// frame returns the first function of stack outside the runtime and the
// standard library's plumbing, shortened.
func frame(stack []string) string {
	for _, f := range stack {
		name, _, _ := strings.Cut(f, " @ ")
		if plumbing(name) {
			continue
		}
		name = strings.TrimPrefix(name, "github.com/amqproto/amqproto/")
		return strings.Replace(name, "github.com/rabbitmq/amqp091-go", "amqp091", 1)
	}
	if len(stack) > 0 {
		name, _, _ := strings.Cut(stack[0], " @ ")
		return name
	}
	return "?"
}

func plumbing(name string) bool {
	for _, p := range []string{"runtime.", "runtime/", "sync.", "internal/", "time.", "context.", "syscall.", "net.", "os."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
