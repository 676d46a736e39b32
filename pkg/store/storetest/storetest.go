// Package storetest is the conformance suite of the event database: what
// every store.Backend (SQLite, PostgreSQL) must do alike, asserted on a
// fresh database per case.
package storetest

import (
	"testing"

	"github.com/oomwatch/oomwatch/pkg/store"
)

// Opener opens a fresh, empty backend for one test and closes it when the
// test ends (t.Cleanup).
type Opener func(t *testing.T) store.Backend

// cases are the suite, by name.
var cases = []struct {
	name string
	run  func(t *testing.T, open Opener)
}{
	{"PutGet", testPutGet},
	{"Dedup", testDedup},
	{"UpdateByRevision", testUpdateByRevision},
	{"Filters", testFilters},
	{"ValidateFilter", testValidateFilter},
	{"ReceivedSince", testReceivedSince},
	{"Pagination", testPagination},
	{"PageTokens", testPageTokens},
	{"Incidents", testIncidents},
	{"IncidentPages", testIncidentPages},
	{"IncidentsByLimitedCgroup", testIncidentsByLimitedCgroup},
	{"IncidentsUnknownLimitJoinsItsStorm", testIncidentsUnknownLimitJoinsItsStorm},
	{"IncidentsPlacedVictimsOfUnknownLimits", testIncidentsPlacedVictimsOfUnknownLimits},
	{"IncidentOf", testIncidentOf},
	{"IncidentOfTruncated", testIncidentOfTruncated},
	{"IncidentOfStories", testIncidentOfStories},
	{"Warnings", testWarnings},
	{"WarningRevisions", testWarningRevisions},
	{"WarningsNotIncidents", testWarningsNotIncidents},
	{"OpenWarnings", testOpenWarnings},
	{"Prune", testPrune},
	{"PruneWarnings", testPruneWarnings},
	{"AcknowledgedOnlyCommitted", testAcknowledgedOnlyCommitted},
	{"Concurrent", testConcurrent},
}

// Run runs the suite, each case as a subtest on a database of its own
// from open.
func Run(t *testing.T, open Opener) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}
