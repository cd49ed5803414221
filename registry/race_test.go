//go:build race

package registry_test

// raceEnabled: the race detector slows the registry several times over;
// long tests shorten their runs by it.
const raceEnabled = true
