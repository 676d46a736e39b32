package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSocketPath(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock", nil},
		{"unix:/var/run/crio/crio.sock", "/var/run/crio/crio.sock", nil},
		{"/var/run/crio/crio.sock", "/var/run/crio/crio.sock", nil},
		{"tcp://127.0.0.1:1234", "", ErrEndpoint},
		{"npipe:////./pipe/containerd", "", ErrEndpoint},
		{"unix://relative.sock", "", ErrEndpoint},
		{"run/crio.sock", "", ErrEndpoint},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := SocketPath(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("SocketPath(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestDial(t *testing.T) {
	f := &fakeRuntime{name: "fake-runtime"}
	sock := startFake(t, f)
	notSocket := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(notSocket, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.sock")
	tests := []struct {
		name     string
		endpoint string
		err      error
	}{
		{"unix url", "unix://" + sock, nil},
		{"plain path", sock, nil},
		{"missing socket", "unix://" + missing, ErrUnavailable},
		{"not a socket", notSocket, ErrUnavailable},
		{"tcp", "tcp://127.0.0.1:1", ErrEndpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tc.endpoint)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Dial(%q) error = %v, want %v", tc.endpoint, err, tc.err)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if c.RuntimeName != "fake-runtime" || c.Endpoint != tc.endpoint {
				t.Errorf("client: %q at %q", c.RuntimeName, c.Endpoint)
			}
		})
	}
}

func TestDialDefaults(t *testing.T) {
	f := &fakeRuntime{name: "cri-o"}
	sock := startFake(t, f)
	missing := "unix://" + filepath.Join(t.TempDir(), "containerd.sock")
	saved := DefaultEndpoints
	t.Cleanup(func() { DefaultEndpoints = saved })

	DefaultEndpoints = []string{missing, "unix://" + sock}
	c, err := Dial(context.Background(), "")
	if err != nil {
		t.Fatalf("Dial with the second default up: %v", err)
	}
	c.Close()
	if c.Endpoint != "unix://"+sock || c.RuntimeName != "cri-o" {
		t.Errorf("picked %q (%s)", c.Endpoint, c.RuntimeName)
	}

	DefaultEndpoints = []string{missing, missing}
	if _, err := Dial(context.Background(), ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Dial with no default up: %v, want ErrUnavailable", err)
	}
}
