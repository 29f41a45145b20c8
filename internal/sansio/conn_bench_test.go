package sansio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkReceiveDeliveries feeds an open Conn (frame_max 131072) a
// pre-encoded buffer of deliveries, each a basic.deliver, a content header
// and one body frame, and drains the events. One op is one delivery; the
// bytes per op are the body's.
func BenchmarkReceiveDeliveries(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		n    int // deliveries per buffer, as in one large read
	}{
		{"100B", 100, 1000},
		{"64KiB", 64 << 10, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, p := openConnWith(b, Config{Auth: []Auth{guest()}}, &ConnectionTune{ChannelMax: 2047, FrameMax: 131072})
			ch := openChannel(b, c, p)
			body := make([]byte, bc.size)
			props := &Properties{ContentType: "application/json", DeliveryMode: 2}
			var buf []byte
			ends := make([]int, bc.n+1) // ends[k]: the length of the first k deliveries
			for i := range bc.n {
				buf = append(buf, p.content(ch, &BasicDeliver{ConsumerTag: "amq.ctag-K2f8dX3M1lYzV0Vx0cQ4ZQ",
					DeliveryTag: uint64(i + 1), Exchange: "amq.direct", RoutingKey: "orders.created"},
					props, body, 131072)...)
				ends[i+1] = len(buf)
			}
			// One warm-up round fills the interner and grows the event queue.
			require.Equal(b, len(buf), c.Receive(t0, buf))
			require.Len(b, drain(c), bc.n)

			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			total := 0
			for done := 0; done < b.N; {
				k := min(bc.n, b.N-done)
				in := buf[:ends[k]]
				if c.Receive(t0, in) != len(in) {
					b.Fatal("input not used")
				}
				for {
					ev, ok := c.NextEvent()
					if !ok {
						break
					}
					if ev.Kind != EventDelivery {
						b.Fatalf("unexpected %v: %v", ev.Kind, ev.Err)
					}
					total += len(ev.Message.Body)
				}
				done += k
			}
			b.StopTimer()
			if total != b.N*bc.size {
				b.Fatalf("received %d body bytes, want %d", total, b.N*bc.size)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
