package cri

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// maxInfoSize bounds the verbose info parsed: a container's is a few KiB
// (its OCI spec); anything far larger is not worth holding a poll for.
const maxInfoSize = 4 << 20

// containerInfo is what a ContainerStatus verbose info["info"] tells beyond
// the status itself. Runtimes differ: containerd writes
// {"sandboxID","pid","config":<CRI ContainerConfig>,"runtimeSpec":<OCI spec>,...},
// CRI-O {"sandboxID","pid","runtimeSpec":<OCI spec>,"privileged"}.
type containerInfo struct {
	SandboxID string
	// Spec* come from the OCI runtime spec, Config* from the CRI config.
	SpecMemoryLimit, ConfigMemoryLimit       int64
	HasSpecMemoryLimit, HasConfigMemoryLimit bool
	SpecOOMScoreAdj, ConfigOOMScoreAdj       int64
	HasSpecOOMScoreAdj, HasConfigOOMScoreAdj bool
	CgroupsPath                              string
}

// sandboxInfo is what a PodSandboxStatus verbose info["info"] tells.
// containerd writes {"pid","runtimeHandler","config":<CRI PodSandboxConfig>,
// "runtimeSpec":<OCI spec>,...}; CRI-O {"image","pid","runtimeSpec"}, or
// just {"runtimeSpec":{...}} (or "{}") for a sandbox without an infra
// container.
type sandboxInfo struct {
	RuntimeHandler   string
	OverheadBytes    int64
	MemoryLimitBytes int64
	CgroupParent     string
}

// parseContainerInfo parses a container's verbose info["info"]. Every field
// is optional; keys are accepted in snake_case (Go's encoding/json of CRI
// types, containerd) and lowerCamelCase (protojson), numbers as JSON
// numbers or strings (protojson's int64). It fails only on input that is
// not a JSON object.
func parseContainerInfo(b []byte) (containerInfo, error) {
	root, err := decodeObject(b)
	if err != nil {
		return containerInfo{}, err
	}
	var ci containerInfo
	ci.SandboxID, _ = str(root, "sandboxID", "sandbox_id", "sandboxId")
	if spec := obj(root, "runtimeSpec", "runtime_spec"); spec != nil {
		if mem := dig(spec, "linux", "resources", "memory"); mem != nil {
			if v, ok := num(mem, "limit"); ok {
				ci.SpecMemoryLimit, ci.HasSpecMemoryLimit = max(v, 0), true
			}
		}
		if p := obj(spec, "process"); p != nil {
			ci.SpecOOMScoreAdj, ci.HasSpecOOMScoreAdj = num(p, "oomScoreAdj", "oom_score_adj")
		}
		if l := obj(spec, "linux"); l != nil {
			ci.CgroupsPath, _ = str(l, "cgroupsPath", "cgroups_path")
		}
	}
	if r := dig(obj(root, "config"), "linux", "resources"); r != nil {
		if v, ok := num(r, "memory_limit_in_bytes", "memoryLimitInBytes"); ok {
			ci.ConfigMemoryLimit, ci.HasConfigMemoryLimit = max(v, 0), true
		}
		ci.ConfigOOMScoreAdj, ci.HasConfigOOMScoreAdj = num(r, "oom_score_adj", "oomScoreAdj")
	}
	return ci, nil
}

// parseSandboxInfo parses a sandbox's verbose info["info"], as leniently
// as parseContainerInfo.
func parseSandboxInfo(b []byte) (sandboxInfo, error) {
	root, err := decodeObject(b)
	if err != nil {
		return sandboxInfo{}, err
	}
	var si sandboxInfo
	si.RuntimeHandler, _ = str(root, "runtimeHandler", "runtime_handler")
	if l := dig(obj(root, "config"), "linux"); l != nil {
		if v, ok := num(obj(l, "overhead"), "memory_limit_in_bytes", "memoryLimitInBytes"); ok {
			si.OverheadBytes = max(v, 0)
		}
		if v, ok := num(obj(l, "resources"), "memory_limit_in_bytes", "memoryLimitInBytes"); ok {
			si.MemoryLimitBytes = max(v, 0)
		}
		si.CgroupParent, _ = str(l, "cgroup_parent", "cgroupParent")
	}
	spec := obj(root, "runtimeSpec", "runtime_spec")
	if si.MemoryLimitBytes == 0 {
		// containerd also records the pod limit as a spec annotation.
		if v, ok := str(obj(spec, "annotations"), "io.kubernetes.cri.sandbox-memory"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				si.MemoryLimitBytes = n
			}
		}
	}
	if si.RuntimeHandler == "" {
		// CRI-O records the handler as an infra container annotation.
		si.RuntimeHandler, _ = str(obj(spec, "annotations"), "io.kubernetes.cri-o.RuntimeHandler")
	}
	if si.CgroupParent == "" {
		if cp, ok := str(obj(spec, "linux"), "cgroupsPath", "cgroups_path"); ok && cp != "" {
			si.CgroupParent = cgroupParentOf(cp)
		}
	}
	return si, nil
}

// cgroupParentOf returns the parent of a sandbox's OCI cgroupsPath: the
// slice of a systemd-driver "slice:prefix:name", the directory of a
// cgroupfs path.
func cgroupParentOf(cp string) string {
	if slice, _, ok := strings.Cut(cp, ":"); ok {
		return slice
	}
	if d := path.Dir(cp); d != "." && d != "/" {
		return d
	}
	return ""
}

func decodeObject(b []byte) (map[string]any, error) {
	if len(b) > maxInfoSize {
		return nil, fmt.Errorf("%w: verbose info of %d bytes", ErrBadInfo, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInfo, err)
	}
	if root == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadInfo)
	}
	return root, nil
}

// obj returns m[key] for the first key present that holds an object.
func obj(m map[string]any, keys ...string) map[string]any {
	if m == nil {
		return nil
	}
	for _, k := range keys {
		if v, ok := m[k].(map[string]any); ok {
			return v
		}
	}
	return nil
}

// dig follows a path of single keys through nested objects.
func dig(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = obj(m, k)
	}
	return m
}

// num returns the first of keys holding an integer, as a JSON number or a
// decimal string.
func num(m map[string]any, keys ...string) (int64, bool) {
	if m == nil {
		return 0, false
	}
	for _, k := range keys {
		switch v := m[k].(type) {
		case json.Number:
			if n, err := v.Int64(); err == nil {
				return n, true
			}
			// Floats such as 3.3554432e+07 from some encoders.
			if f, err := v.Float64(); err == nil && f >= -1<<63 && f < 1<<63 {
				return int64(f), true
			}
		case string:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// str returns the first of keys holding a string.
func str(m map[string]any, keys ...string) (string, bool) {
	if m == nil {
		return "", false
	}
	for _, k := range keys {
		if v, ok := m[k].(string); ok {
			return v, true
		}
	}
	return "", false
}
