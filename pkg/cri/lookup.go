package cri

import (
	"sort"
	"strings"
)

// Container returns the container with the full ID id, or the only one
// whose ID starts with id (at least 4 characters), removed ones within the
// retention included. The pod fields are filled from the sandbox when
// kubelet's labels lack them.
func (c *Cache) Container(id string) (Container, bool) {
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" {
		return Container{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok, ambiguous := byID(c.containers, id)
	switch {
	case ok:
		return c.withPodLocked(e.c), true
	case ambiguous:
		return Container{}, false
	}
	return c.sandboxLocked(id)
}

// byID returns m's entry with the key id, or the only one whose key starts
// with id (at least minPrefix characters); ambiguous tells of a prefix that
// several keys start with.
func byID[V any](m map[string]V, id string) (v V, ok, ambiguous bool) {
	if v, ok := m[id]; ok {
		return v, true, false
	}
	if len(id) < minPrefix {
		return v, false, false
	}
	for full, e := range m {
		if strings.HasPrefix(full, id) {
			if ok {
				var zero V
				return zero, false, true
			}
			v, ok = e, true
		}
	}
	return v, ok, false
}

// sandboxLocked returns the pod sandbox with the ID id (full, or a unique
// prefix of at least 4 characters) as the container the kernel sees: the
// sandbox's pause process runs in a cgroup named by the sandbox ID, beside
// the pod's containers, and kernel reports list it. c.mu is held (read).
func (c *Cache) sandboxLocked(id string) (Container, bool) {
	e, ok, _ := byID(c.pods, id)
	if !ok {
		return Container{}, false
	}
	p := e.p
	x := Container{ID: p.SandboxID, Name: SandboxName, PodSandboxID: p.SandboxID, Sandbox: true,
		PodUID: p.UID, PodNamespace: p.Namespace, PodName: p.Name, CreatedAt: p.CreatedAt, Removed: p.Removed,
		State: StateRunning}
	if p.State != StateReady {
		x.State = StateExited
	}
	return x, true
}

func (c *Cache) withPod(x Container) Container {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.withPodLocked(x)
}

// withPodLocked returns a copy of x with the pod fields filled. c.mu is
// held (read).
func (c *Cache) withPodLocked(x Container) Container {
	x = x.clone()
	x.PodUID = x.Labels[labelPodUID]
	x.PodNamespace = x.Labels[labelPodNamespace]
	x.PodName = x.Labels[labelPodName]
	if e := c.pods[x.PodSandboxID]; e != nil {
		if x.PodUID == "" {
			x.PodUID = e.p.UID
		}
		if x.PodNamespace == "" {
			x.PodNamespace = e.p.Namespace
		}
		if x.PodName == "" {
			x.PodName = e.p.Name
		}
	}
	return x
}

// Pod returns the pod with UID uid: its ready sandbox when it has one, else
// its newest, removed ones within the retention included.
func (c *Cache) Pod(uid string) (Pod, bool) {
	uid = strings.TrimSpace(uid)
	if uid == "" {
		return Pod{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	var cands []*podEntry
	for _, e := range c.pods {
		if e.p.UID == uid {
			cands = append(cands, e)
		}
	}
	if len(cands) == 0 {
		return Pod{}, false
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i].p, cands[j].p
		if ra, rb := a.State == StateReady && a.Removed.IsZero(), b.State == StateReady && b.Removed.IsZero(); ra != rb {
			return ra
		}
		return a.CreatedAt.After(b.CreatedAt)
	})
	return cands[0].p.clone(), true
}

// Len returns how many containers and pods the cache holds, removed ones
// within the retention included.
func (c *Cache) Len() (containers, pods int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.containers), len(c.pods)
}
