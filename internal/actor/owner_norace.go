//go:build !race

package actor

// owner is the goroutine that owns some state; checked in race-enabled
// builds only (see owner_race.go). Here it costs nothing.
type owner struct{}

func (*owner) claim() {}
func (*owner) check() {}
