package sansio

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// RabbitMQ's reply texts start with the code's name; the error says it once.
func TestCloseErrorNamesTheCodeOnce(t *testing.T) {
	for _, e := range []*CloseError{
		{Code: AccessRefused, Reason: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN", Server: true, Connection: true},
		{Code: NotFound, Reason: "no queue 'q' in vhost '/'", Server: true},
		{Code: NotFound},
	} {
		require.Equal(t, 1, strings.Count(e.Error(), e.Code.String()), e.Error())
	}
}
