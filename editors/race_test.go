//go:build linux && race

package editors

func init() { raceEnabled = true }
