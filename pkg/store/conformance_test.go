package store_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/storetest"
)

// TestConformance runs the backends' suite on SQLite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "oomwatch.db"), logrus.NewEntry(l))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
