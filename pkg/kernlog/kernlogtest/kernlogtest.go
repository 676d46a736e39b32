// Package kernlogtest gives tests the kernel logs the project keeps as
// fixtures.
package kernlogtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// Records reads every record of the fixture kernel logs (the analysis
// package's golden logs, and a whole boot's records), by file name. The
// paths are relative to a package directory of pkg/, where tests run.
func Records(t testing.TB) map[string][]kernlog.Record {
	t.Helper()
	var paths []string
	for _, pat := range []string{"../analysis/testdata/*.txt", "../analysis/testdata/*.kmsg", "../kernlog/testdata/*.records"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	if len(paths) < 10 {
		t.Fatalf("only %d fixture logs found", len(paths))
	}
	out := map[string][]kernlog.Record{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		rd := kernlog.NewReader(f)
		for rd.Next() {
			r := *rd.Record()
			r.Message = append([]byte(nil), r.Message...)
			out[filepath.Base(p)] = append(out[filepath.Base(p)], r)
		}
		err = rd.Err()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return out
}
