package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A curl-style header (-H 'Authorization: Bearer TOKEN') is a likely typo.
// Its error must not repeat the value, which the flag package would do if
// the flag's Set failed.
func TestHeaderErrorsDoNotRepeatTheValue(t *testing.T) {
	const secret = "s3cr3t-T0KEN-zq"
	for _, arg := range []string{
		"Authorization: Bearer " + secret,
		strings.Repeat("k", 300) + "=" + secret,
	} {
		out := runInProcess(t, strings.NewReader(""), nil, "--queue", "q", "-H", arg, "m")
		if out.code != exitUsage {
			t.Fatalf("exit %d, want %d", out.code, exitUsage)
		}
		if strings.Contains(out.stderr, secret) {
			t.Errorf("the error repeats the header value: %s", out.stderr)
		}
	}
}

// An absurd --window or --size is a usage error: both are allocated up
// front, and would crash amqpsend out of memory.
func TestHugeWindowOrSizeIsAUsageError(t *testing.T) {
	brokerURL(t)
	q := uniqueName("huge")
	t.Cleanup(func() { deleteQueue(t, q) })
	for _, args := range [][]string{
		{"--window", fmt.Sprint(int64(1) << 50)},
		{"--size", fmt.Sprint(int64(1) << 50)},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("amqpsend %v panicked: %v", args, r)
				}
			}()
			out := runInProcess(t, strings.NewReader(""), map[string]string{"AMQP_URL": brokerURL(t)},
				append([]string{"--queue", q, "--declare", "--count", "1"}, args...)...)
			if out.code != exitUsage {
				t.Errorf("amqpsend %v: exit %d, want %d (usage)", args, out.code, exitUsage)
			}
		}()
	}
}

// A --rate so low that the wait overflows time.Duration still waits.
func TestTinyRateStillPaces(t *testing.T) {
	start := time.Unix(1000, 0)
	pc := pacer{rate: 1e-10, start: start}
	if d := pc.delay(1, start); d <= 0 {
		t.Errorf("delay before the 2nd message at --rate 1e-10 = %v, want > 0 (messages go out unpaced)", d)
	}
}

// An unreadable cacertfile in the URL is a usage error (README: exit 1 for
// "malformed URL, unreadable file"), as the same file given to --cacert is,
// not a connection failure.
func TestUnreadableCertificateFileInTheURLIsAUsageError(t *testing.T) {
	url := "amqps://guest:guest@127.0.0.1:1/?cacertfile=/nonexistent/zz-ca.pem"
	out := runInProcess(t, strings.NewReader(""), map[string]string{"AMQP_URL": url}, "--queue", "q", "m")
	if out.code != exitUsage {
		t.Errorf("exit %d, want %d; stderr: %s", out.code, exitUsage, out.stderr)
	}
	out = runInProcess(t, strings.NewReader(""), nil, "--url", "amqps://127.0.0.1:1/", "--cacert", "/nonexistent/zz-ca.pem", "--queue", "q", "m")
	if out.code != exitUsage {
		t.Errorf("--cacert: exit %d, want %d", out.code, exitUsage)
	}
}
