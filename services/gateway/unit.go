package gateway

import (
	"fmt"
	"slices"
)

// Unit is a logical unit of riders (unit-based, or cell-based, routing): a
// rider belongs to one unit for good, and each unit has one home region
// where its payments run. Name reads lu-<unit number in hex>-<home region>.
type Unit struct {
	Index int
	Name  string
	Home  string
}

// UnitOf returns the unit of a rider: FNV-1a of the rider id modulo units,
// and that unit's home region, unit number modulo the number of regions in
// name order (so the assignment does not depend on the order regions are
// listed in). Every gateway and service computes the same answer.
func UnitOf(riderID string, units int, regions []string) Unit {
	sorted := slices.Sorted(slices.Values(regions))
	return unitAt(int(fnv1a(riderID)%uint32(units)), sorted)
}

// unitAt returns unit idx given the regions sorted by name.
func unitAt(idx int, sorted []string) Unit {
	home := sorted[idx%len(sorted)]
	return Unit{Index: idx, Name: fmt.Sprintf("lu-%04x-%s", idx, home), Home: home}
}

// fnv1a is the 32-bit FNV-1a hash of s, without allocating.
func fnv1a(s string) uint32 {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}
