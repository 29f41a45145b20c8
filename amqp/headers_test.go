package amqp

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInt64(t *testing.T) {
	for _, v := range []any{int8(-7), int16(-7), int32(-7), int64(-7), int(-7)} {
		n, ok := Int64(v)
		require.True(t, ok, "%T", v)
		require.Equal(t, int64(-7), n, "%T", v)
	}
	for _, v := range []any{uint8(200), uint16(200), uint32(200), uint(200), uint64(200)} {
		n, ok := Int64(v)
		require.True(t, ok, "%T", v)
		require.Equal(t, int64(200), n, "%T", v)
	}
	n, ok := Int64(uint32(math.MaxUint32))
	require.True(t, ok)
	require.Equal(t, int64(math.MaxUint32), n)
	for _, v := range []any{uint64(math.MaxUint64), "7", 7.0, nil, Decimal{Value: 7}} {
		_, ok := Int64(v)
		require.False(t, ok, "%T", v)
	}
}

func TestDeathsWithoutHeader(t *testing.T) {
	require.Nil(t, Deaths(nil))
	require.Nil(t, Deaths(Table{"x-death": "not an array"}))
}
