package workload

import (
	"errors"
	"os"
	"path"
	"strings"
	"testing"
	"testing/iotest"
)

// Container IDs and pod UIDs below come from /work/shared/kernel-logs and the
// public reports named beside them; the rest follow the same shapes.
const (
	idDebianBurst = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"
	idDebianBE    = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
	idDebianGuar  = "0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff"
	idSapccV2     = "2260b35b008a15bd118e629c0c5d74e7f3a1fe18c724fbac61a54862fea196dc"
	idSapccV1     = "9f02d9fa0049eb2655fc83c765f142362b2cb403b57b70ba3185071015ca3b64"
	idGpudLXC     = "3fc28fa1c647ceede9f6b340d0b16c9f1f663698972d22a52e296f291638e014"
	idCadvisor50  = "ef807430361e6e82b45db92e2e9b6fbec98f419b12c591e655c1a725565e73a8"
	idReport61    = "ed9dcd836d0c7e3e379b2387ef5e15e70f1c932dbce0fce685606bb2f4d62036"
	idDocker48a   = "2e088fe462e25e60be1dafafe2c05c47bda1a97978648d10ad2b7484fc0b8f50"
	idDocker48b   = "6c6fcab8562fd3150854986b78552c732f234fd405b624207b8843528a145e70"
	idMinikube    = "0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0"
	idMinikubeHst = "d6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22"
	idDockerKP    = "abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152"
	idColon       = "79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e"
	idStatic      = "c203a2647ef1ad78e990157c50331f3b6ef0b03336cf08535d6bf7faa5421415"
	idA           = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB           = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	uidGuar = "f0e1d2c3-b4a5-4697-8877-665544332211"
	uidX    = "3902af1e-8ce1-42e1-a2a5-dc04f4240c4f"
	uidXu   = "3902af1e_8ce1_42e1_a2a5_dc04f4240c4f"
)

var fromCgroupTests = []struct {
	name string
	in   string
	want Workload
}{
	// systemd driver (cgroup v2 and v1).
	{
		name: "debian-6.1 v2 systemd burstable container",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e6f7a8b_9c0d_4e1f_a2b3_c4d5e6f7a8b9.slice/cri-containerd-" + idDebianBurst + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", ContainerID: idDebianBurst, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "memory cgroup stats trailing colon and blanks",
		in:   " /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e6f7a8b_9c0d_4e1f_a2b3_c4d5e6f7a8b9.slice/cri-containerd-" + idDebianBurst + ".scope:\n",
		want: Workload{Kind: KindContainer, PodUID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", ContainerID: idDebianBurst, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "debian-6.1 v2 systemd besteffort victim",
		in:   "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_4968_a7b6_c5d4e3f2a1b0.slice/cri-containerd-" + idDebianBE + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0", ContainerID: idDebianBE, Runtime: RuntimeContainerd, QoS: QoSBestEffort, Driver: DriverSystemd},
	},
	{
		name: "debian-6.1 v2 systemd guaranteed directly under kubepods.slice",
		in:   "/kubepods.slice/kubepods-podf0e1d2c3_b4a5_4697_8877_665544332211.slice/cri-containerd-" + idDebianGuar + ".scope",
		want: Workload{Kind: KindContainer, PodUID: uidGuar, ContainerID: idDebianGuar, Runtime: RuntimeContainerd, QoS: QoSGuaranteed, Driver: DriverSystemd},
	},
	{
		name: "guaranteed pod slice",
		in:   "/kubepods.slice/kubepods-podf0e1d2c3_b4a5_4697_8877_665544332211.slice",
		want: Workload{Kind: KindPod, PodUID: uidGuar, QoS: QoSGuaranteed, Driver: DriverSystemd},
	},
	{
		name: "sapcc v2 systemd pod-level oom_memcg",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddfc377c9_c533_4d51_af9e_6e0e0b3db83b.slice",
		want: Workload{Kind: KindPod, PodUID: "dfc377c9-c533-4d51-af9e-6e0e0b3db83b", QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "sapcc v2 systemd container",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddfc377c9_c533_4d51_af9e_6e0e0b3db83b.slice/cri-containerd-" + idSapccV2 + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "dfc377c9-c533-4d51-af9e-6e0e0b3db83b", ContainerID: idSapccV2, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "public-2026 short container id closed by .scope",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c7713fd_2aed_4fa2_a60f_f006ab94b3df.slice/cri-containerd-cabbede.scope",
		want: Workload{Kind: KindContainer, PodUID: "2c7713fd-2aed-4fa2-a60f-f006ab94b3df", ContainerID: "cabbede", Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "public-2026 besteffort global victim",
		in:   "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7145627f_44a7_433c_a896_a8c81a4df533.slice/cri-containerd-914914.scope",
		want: Workload{Kind: KindContainer, PodUID: "7145627f-44a7-433c-a896-a8c81a4df533", ContainerID: "914914", Runtime: RuntimeContainerd, QoS: QoSBestEffort, Driver: DriverSystemd},
	},
	{
		name: "gpud LXC-nested v2 systemd container",
		in:   "/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda8697f49_441d_4d4f_90d2_6d8e1fa3bbe7.slice/cri-containerd-" + idGpudLXC + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "a8697f49-441d-4d4f-90d2-6d8e1fa3bbe7", ContainerID: idGpudLXC, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "gpud LXC-nested pod-level oom_memcg",
		in:   "/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda8697f49_441d_4d4f_90d2_6d8e1fa3bbe7.slice",
		want: Workload{Kind: KindPod, PodUID: "a8697f49-441d-4d4f-90d2-6d8e1fa3bbe7", QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "minikube cri-o inside a docker node, v1",
		in:   "/docker/" + idMinikubeHst + "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice/crio-" + idMinikube + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "2ca4a155-3599-498d-bb9d-4446693fa3ea", ContainerID: idMinikube, Runtime: RuntimeCRIO, QoS: QoSBestEffort, Driver: DriverSystemd},
	},
	{
		name: "cri-o conmon scope in the pod slice",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidXu + ".slice/crio-conmon-" + idA + ".scope",
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, Runtime: RuntimeCRIO, Conmon: true, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "cri-o v2 container sub-cgroup",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidXu + ".slice/crio-" + idA + ".scope/container",
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, Runtime: RuntimeCRIO, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "docker v1 systemd (dockershim or cri-dockerd)",
		in:   "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9692aa0e_748e_11e8_8dfa_76d458035df6.slice/docker-" + idDockerKP + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "9692aa0e-748e-11e8-8dfa-76d458035df6", ContainerID: idDockerKP, Runtime: RuntimeDocker, QoS: QoSBestEffort, Driver: DriverSystemd},
	},
	{
		name: "bare hex scope in pod slice",
		in:   "/kubepods.slice/kubepods-pod" + uidXu + ".slice/" + idB + ".scope",
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idB, QoS: QoSGuaranteed, Driver: DriverSystemd},
	},
	{
		name: "static pod 32-hex uid, systemd",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod187bff14cccb94f179e943eacce55bb3.slice/cri-containerd-" + idStatic + ".scope",
		want: Workload{Kind: KindContainer, PodUID: "187bff14cccb94f179e943eacce55bb3", ContainerID: idStatic, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "kind v2 node: kubelet-kubepods slices",
		in:   "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uidXu + ".slice/cri-containerd-" + idA + ".scope",
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "kind node inside a docker scope, guaranteed",
		in:   "/system.slice/docker-" + idB + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidXu + ".slice/cri-containerd-" + idA + ".scope",
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, Runtime: RuntimeContainerd, QoS: QoSGuaranteed, Driver: DriverSystemd},
	},
	{
		name: "containerd without systemd cgroups under a systemd kubelet (k8s#106514)",
		in:   "/system.slice/containerd.service/kubepods-burstable-pod36b6d6be73b1065af369b3985edafa09.slice:cri-containerd:" + idColon,
		want: Workload{Kind: KindContainer, PodUID: "36b6d6be73b1065af369b3985edafa09", ContainerID: idColon, Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "kubepods.slice root",
		in:   "/kubepods.slice",
		want: Workload{Kind: KindQoS, Driver: DriverSystemd},
	},
	{
		name: "burstable QoS slice",
		in:   "/kubepods.slice/kubepods-burstable.slice",
		want: Workload{Kind: KindQoS, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "truncated systemd pod slice keeps QoS, drops UID",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2c771",
		want: Workload{Kind: KindPod, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "truncated systemd pod name under QoS slice",
		in:   "/kubepods.slice/kubepods-besteffort.slice/kubepods-bes",
		want: Workload{Kind: KindPod, QoS: QoSBestEffort, Driver: DriverSystemd},
	},
	{
		name: "truncated container scope keeps pod and runtime",
		in:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e6f7a8b_9c0d_4e1f_a2b3_c4d5e6f7a8b9.slice/cri-containerd-1a2b3c",
		want: Workload{Kind: KindContainer, PodUID: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", Runtime: RuntimeContainerd, QoS: QoSBurstable, Driver: DriverSystemd},
	},
	{
		name: "unknown child of kubepods.slice",
		in:   "/kubepods.slice/foo",
		want: Workload{Kind: KindOther, Driver: DriverSystemd},
	},

	// cgroupfs driver.
	{
		name: "cadvisor-5.0 v1 cgroupfs container",
		in:   "/kubepods/burstable/podfbdfe8e3-1c87-4ff2-907c-b2ec8e25d012/" + idCadvisor50,
		want: Workload{Kind: KindContainer, PodUID: "fbdfe8e3-1c87-4ff2-907c-b2ec8e25d012", ContainerID: idCadvisor50, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cadvisor-5.0 v1 cgroupfs pod-level oom_memcg",
		in:   "/kubepods/burstable/podfbdfe8e3-1c87-4ff2-907c-b2ec8e25d012",
		want: Workload{Kind: KindPod, PodUID: "fbdfe8e3-1c87-4ff2-907c-b2ec8e25d012", QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "sapcc v1 cgroupfs container",
		in:   "/kubepods/burstable/podd11ab7b0-d6db-4a24-a7de-4a2faf1e6980/" + idSapccV1,
		want: Workload{Kind: KindContainer, PodUID: "d11ab7b0-d6db-4a24-a7de-4a2faf1e6980", ContainerID: idSapccV1, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "report-6.1 v2 cgroupfs oom.group container",
		in:   "/kubepods/burstable/pod" + uidX + "/" + idReport61,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idReport61, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "report-6.1 line cut by the terminal mid-UID",
		in:   "/kubepods/burstable/pod3902af1e-8c>",
		want: Workload{Kind: KindPod, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs path cut before the UID",
		in:   "/kubepods/burstable/pod",
		want: Workload{Kind: KindPod, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs container id cut short",
		in:   "/kubepods/burstable/podd11ab7b0-d6db-4a24-a7de-4a2faf1e6980/9f02d9fa00",
		want: Workload{Kind: KindContainer, PodUID: "d11ab7b0-d6db-4a24-a7de-4a2faf1e6980", QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs besteffort container",
		in:   "/kubepods/besteffort/pod" + uidX + "/" + idA,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, QoS: QoSBestEffort, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs guaranteed container",
		in:   "/kubepods/pod" + uidX + "/" + idA,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, QoS: QoSGuaranteed, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs guaranteed pod",
		in:   "/kubepods/pod" + uidX,
		want: Workload{Kind: KindPod, PodUID: uidX, QoS: QoSGuaranteed, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs cri-o container",
		in:   "/kubepods/burstable/pod" + uidX + "/crio-" + idA,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, Runtime: RuntimeCRIO, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs static pod upper-case hex uid",
		in:   "/kubepods/burstable/pod6B0A3C3F6E4D8E2D1A1B2C3D4E5F6A7B",
		want: Workload{Kind: KindPod, PodUID: "6b0a3c3f6e4d8e2d1a1b2c3d4e5f6a7b", QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "cgroupfs upper-case dashed uid",
		in:   "/kubepods/besteffort/pod3902AF1E-8CE1-42E1-A2A5-DC04F4240C4F",
		want: Workload{Kind: KindPod, PodUID: uidX, QoS: QoSBestEffort, Driver: DriverCgroupfs},
	},
	{
		name: "kubepods cgroupfs root",
		in:   "/kubepods",
		want: Workload{Kind: KindQoS, Driver: DriverCgroupfs},
	},
	{
		name: "besteffort cgroupfs QoS",
		in:   "/kubepods/besteffort",
		want: Workload{Kind: KindQoS, QoS: QoSBestEffort, Driver: DriverCgroupfs},
	},
	{
		name: "kind v1 node: cgroup-root /kubelet",
		in:   "/kubelet/kubepods/burstable/pod" + uidX + "/" + idA,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "kubelet in a docker container, v1 cgroupfs",
		in:   "/docker/" + idB + "/kubepods/besteffort/pod" + uidX + "/" + idA,
		want: Workload{Kind: KindContainer, PodUID: uidX, ContainerID: idA, QoS: QoSBestEffort, Driver: DriverCgroupfs},
	},
	{
		name: "double slashes and trailing slash",
		in:   "//kubepods//burstable/pod" + uidX + "/",
		want: Workload{Kind: KindPod, PodUID: uidX, QoS: QoSBurstable, Driver: DriverCgroupfs},
	},
	{
		name: "unknown child of cgroupfs kubepods",
		in:   "/kubepods/burs",
		want: Workload{Kind: KindOther, Driver: DriverCgroupfs},
	},

	// Outside Kubernetes.
	{
		name: "root",
		in:   "/",
		want: Workload{Kind: KindRoot},
	},
	{
		name: "system service",
		in:   "/system.slice/containerd.service",
		want: Workload{Kind: KindSystemService, Unit: "containerd.service"},
	},
	{
		name: "system service in a sub-slice",
		in:   "/system.slice/system-getty.slice/getty@tty1.service",
		want: Workload{Kind: KindSystemService, Unit: "getty@tty1.service"},
	},
	{
		name: "docker-compose service is not a container scope",
		in:   "/system.slice/docker-compose@web.service",
		want: Workload{Kind: KindSystemService, Unit: "docker-compose@web.service"},
	},
	{
		name: "service under another top-level slice (Bottlerocket, kube-reserved)",
		in:   "/podruntime.slice/containerd.service",
		want: Workload{Kind: KindSystemService, Unit: "containerd.service"},
	},
	{
		name: "scope under another top-level slice",
		in:   "/machine.slice/machine-qemu.scope",
		want: Workload{Kind: KindOther, Unit: "machine-qemu.scope"},
	},
	{
		name: "init.scope",
		in:   "/init.scope",
		want: Workload{Kind: KindSystemService, Unit: "init.scope"},
	},
	{
		name: "plain docker container, systemd",
		in:   "/system.slice/docker-" + idA + ".scope",
		want: Workload{Kind: KindContainer, ContainerID: idA, Runtime: RuntimeDocker},
	},
	{
		name: "cri-o conmon in system.slice",
		in:   "/system.slice/crio-conmon-" + idA + ".scope",
		want: Workload{Kind: KindContainer, ContainerID: idA, Runtime: RuntimeCRIO, Conmon: true},
	},
	{
		name: "cadvisor-4.8 v1 docker cgroupfs",
		in:   "/docker/" + idDocker48a,
		want: Workload{Kind: KindContainer, ContainerID: idDocker48a, Runtime: RuntimeDocker},
	},
	{
		name: "cadvisor-4.8 memory cgroup stats line",
		in:   "/docker/" + idDocker48b + ":",
		want: Workload{Kind: KindContainer, ContainerID: idDocker48b, Runtime: RuntimeDocker},
	},
	{
		name: "v1 docker id cut short",
		in:   "/docker/6c6fca",
		want: Workload{Kind: KindContainer, Runtime: RuntimeDocker},
	},
	{
		name: "rootless podman under the user manager",
		in:   "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + idA + ".scope/container",
		want: Workload{Kind: KindContainer, ContainerID: idA, Runtime: RuntimePodman},
	},
	{
		name: "forum-5.8 user session",
		in:   "/user.slice/user-1000.slice/session-27.scope",
		want: Workload{Kind: KindUserSession, Unit: "session-27.scope"},
	},
	{
		name: "user manager app scope",
		in:   "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-8a2c6e0e-5b0f-4bde-9a8e-1c2d3e4f5a6b.scope",
		want: Workload{Kind: KindUserSession, Unit: "user@1000.service"},
	},
	{
		name: "report-6.1 user path cut by the terminal",
		in:   "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte>",
		want: Workload{Kind: KindUserSession, Unit: "user@1000.service"},
	},
	{
		name: "user slice",
		in:   "/user.slice/user-1000.slice",
		want: Workload{Kind: KindUserSession, Unit: "user-1000.slice"},
	},
	{
		name: "cadvisor-3.13 v1 ad-hoc cgroup",
		in:   "/mem2",
		want: Workload{Kind: KindOther},
	},
	{
		// LXD and Incus (LXC 4+): the container, whatever cgroup of its own.
		name: "LXC payload without kubepods",
		in:   "/lxc.payload.web1/system.slice/foo.service",
		want: Workload{Kind: KindContainer, Runtime: RuntimeLXC, ContainerID: "web1"},
	},
	{
		// Proxmox VE on cgroup v2: the container's own tree is under "ns".
		name: "Proxmox LXC container, a service inside",
		in:   "/lxc/107/ns/system.slice/paperless.service",
		want: Workload{Kind: KindContainer, Runtime: RuntimeLXC, ContainerID: "107"},
	},
	{
		name: "Proxmox LXC container, cgroup v1",
		in:   "/lxc/107",
		want: Workload{Kind: KindContainer, Runtime: RuntimeLXC, ContainerID: "107"},
	},
	{
		name: "docker inside an LXC container",
		in:   "/lxc/107/ns/system.slice/docker-" + idA + ".scope",
		want: Workload{Kind: KindContainer, Runtime: RuntimeDocker, ContainerID: idA},
	},
	{
		name: "LXC container named with capitals",
		in:   "/lxc/VM_A",
		want: Workload{Kind: KindContainer, Runtime: RuntimeLXC, ContainerID: "VM_A"},
	},
	{
		name: "not an LXC name",
		in:   "/lxc/a b",
		want: Workload{Kind: KindOther},
	},
	{
		name: "LXC monitor",
		in:   "/lxc.monitor.web1",
		want: Workload{Kind: KindOther},
	},
	{
		name: "lxc alone",
		in:   "/lxc",
		want: Workload{Kind: KindOther},
	},
	{
		name: "libvirt machine scope",
		in:   `/machine.slice/machine-qemu\x2d1\x2dvm.scope`,
		want: Workload{Kind: KindOther, Unit: `machine-qemu\x2d1\x2dvm.scope`},
	},
	{
		name: "hybrid host memory cgroup of a sandbox",
		in:   "/process_api/4da6712986b2ec9cd2a2b4e3a5b580f4",
		want: Workload{Kind: KindOther},
	},
	{
		name: "relative scope name as in cpuset=",
		in:   "cri-containerd-" + idGpudLXC + ".scope",
		want: Workload{Kind: KindContainer, ContainerID: idGpudLXC, Runtime: RuntimeContainerd},
	},

	// Garbage.
	{name: "empty", in: "", want: Workload{}},
	{name: "blanks and colon", in: " \t:\n", want: Workload{}},
	{name: "words", in: "not a cgroup", want: Workload{Kind: KindOther}},
	{name: "dot", in: ".", want: Workload{Kind: KindOther}},
	{name: "kubepods word inside a name", in: "/xkubepods-pod" + uidXu + ".slice", want: Workload{Kind: KindOther, Unit: "xkubepods-pod" + uidXu + ".slice"}},
	{name: "pod uid with bad separators", in: "/kubepods/pod3902af1e+8ce1+42e1+a2a5+dc04f4240c4f", want: Workload{Kind: KindPod, QoS: QoSGuaranteed, Driver: DriverCgroupfs}},
	{name: "colon form at QoS level", in: "/kubepods-burstable.slice:cri-containerd:" + idA, want: Workload{Kind: KindOther}},
}

func TestFromCgroup(t *testing.T) {
	seen := make(map[string]bool)
	for _, tt := range fromCgroupTests {
		t.Run(tt.name, func(t *testing.T) {
			if seen[tt.in] {
				t.Fatalf("duplicate input %q", tt.in)
			}
			seen[tt.in] = true
			want := tt.want
			want.Cgroup = cleanCgroup(tt.in)
			got := FromCgroup(tt.in)
			if got != want {
				t.Errorf("FromCgroup(%q)\n got %+v\nwant %+v", tt.in, got, want)
			}
		})
	}
}

func TestCleanCgroup(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/mem2:", "/mem2"},
		{" /a/b/ \n", "/a/b"},
		{"/a//b/./c/..", "/a/b"},
		{"/a: :", "/a"},
		{"/a:/", "/a"},
		{"", ""},
		{"::", ""},
		{"/", "/"},
	} {
		if got := cleanCgroup(tt.in); got != tt.want {
			t.Errorf("cleanCgroup(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	ctr := "/kubepods/burstable/pod" + uidX + "/" + idA
	for _, tt := range []struct {
		in, key, podKey, str string
	}{
		{ctr, "container:" + idA, "pod:" + uidX, "pod " + uidX + " container aaaaaaaaaaaa"},
		{"/kubepods/burstable/pod" + uidX, "pod:" + uidX, "pod:" + uidX, "pod " + uidX},
		{"/kubepods/burstable/pod" + uidX + "/abc", "pod:" + uidX, "pod:" + uidX, "pod " + uidX + " container (unknown id)"},
		{"/kubepods/burstable/pod3902af1e-8c>", "cgroup:/kubepods/burstable/pod3902af1e-8c>", "cgroup:/kubepods/burstable/pod3902af1e-8c>", "burstable pod (unknown uid)"},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidXu + ".slice/crio-conmon-" + idB + ".scope", "container:" + idB, "pod:" + uidX, "pod " + uidX + " conmon of container 0123456789ab"},
		{"/kubepods.slice/kubepods-besteffort.slice", "cgroup:/kubepods.slice/kubepods-besteffort.slice", "cgroup:/kubepods.slice/kubepods-besteffort.slice", "besteffort pods"},
		{"/kubepods.slice", "cgroup:/kubepods.slice", "cgroup:/kubepods.slice", "all pods (kubepods.slice)"},
		{"/docker/" + idDocker48a, "container:" + idDocker48a, "container:" + idDocker48a, "docker container 2e088fe462e2"},
		{"/system.slice/containerd.service", "cgroup:/system.slice/containerd.service", "cgroup:/system.slice/containerd.service", "system service containerd.service"},
		{"/user.slice/user-1000.slice/session-27.scope", "cgroup:/user.slice/user-1000.slice/session-27.scope", "cgroup:/user.slice/user-1000.slice/session-27.scope", "user session session-27.scope"},
		{"/", "cgroup:/", "cgroup:/", "root cgroup"},
		{"/mem2:", "cgroup:/mem2", "cgroup:/mem2", "cgroup /mem2"},
		{"", "", "", "no cgroup"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			w := FromCgroup(tt.in)
			if got := w.Key(); got != tt.key {
				t.Errorf("Key() = %q, want %q", got, tt.key)
			}
			if got := w.PodKey(); got != tt.podKey {
				t.Errorf("PodKey() = %q, want %q", got, tt.podKey)
			}
			if got := w.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
		})
	}
}

// Real content of /proc/<pid>/cgroup; the hybrid one is from the host these
// tests were written on, where memory and the unified hierarchy disagree.
var procCgroupTests = []struct {
	name    string
	in      string
	want    string
	wantErr error
}{
	{
		name: "v2 only",
		in:   "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidXu + ".slice/cri-containerd-" + idA + ".scope\n",
		want: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidXu + ".slice/cri-containerd-" + idA + ".scope",
	},
	{
		name: "hybrid: memory in v1 wins over 0::",
		in: "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n" +
			"4:memory:/process_api/4da6712986b2ec9cd2a2b4e3a5b580f4\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n",
		want: "/process_api/4da6712986b2ec9cd2a2b4e3a5b580f4",
	},
	{
		name: "hybrid systemd host, same path everywhere",
		in: "12:memory:/system.slice/containerd.service\n11:cpu,cpuacct:/system.slice/containerd.service\n" +
			"1:name=systemd:/system.slice/containerd.service\n0::/system.slice/containerd.service\n",
		want: "/system.slice/containerd.service",
	},
	{
		name: "v1 only, cgroupfs kubepods, memory not first",
		in: "11:cpuacct,cpu:/kubepods/burstable/pod" + uidX + "/" + idA + "\n" +
			"10:hugetlb:/kubepods/burstable/pod" + uidX + "/" + idA + "\n" +
			"6:memory:/kubepods/burstable/pod" + uidX + "/" + idA + "\n" +
			"1:name=systemd:/kubepods/burstable/pod" + uidX + "/" + idA + "\n",
		want: "/kubepods/burstable/pod" + uidX + "/" + idA,
	},
	{
		name: "v1 without memory controller: first line",
		in:   "3:cpu:/a\n2:pids:/b\n",
		want: "/a",
	},
	{
		name: "v2 removed cgroup of a zombie",
		in:   "0::/kubepods/besteffort/pod" + uidX + "/" + idA + " (deleted)\n",
		want: "/kubepods/besteffort/pod" + uidX + "/" + idA,
	},
	{
		name: "CRLF and blank lines, colon inside the path",
		in:   "\r\n0::/system.slice/containerd.service/kubepods-burstable-pod" + uidXu + ".slice:cri-containerd:" + idA + "\r\n\n",
		want: "/system.slice/containerd.service/kubepods-burstable-pod" + uidXu + ".slice:cri-containerd:" + idA,
	},
	{name: "empty", in: "", wantErr: ErrNoCgroup},
	{name: "garbage", in: "hello\nworld\n:x\n", wantErr: ErrNoCgroup},
	{name: "v2 with empty path", in: "0::\n", wantErr: ErrNoCgroup},
}

func TestParseProcCgroup(t *testing.T) {
	for _, tt := range procCgroupTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcCgroup(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseProcCgroupReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParseProcCgroup(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want wrapping %v", err, boom)
	}
}

func TestParseProcCgroupSelf(t *testing.T) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	defer f.Close()
	p, err := ParseProcCgroup(f)
	if err != nil {
		t.Fatalf("ParseProcCgroup(/proc/self/cgroup): %v", err)
	}
	if !strings.HasPrefix(p, "/") {
		t.Errorf("path %q is not absolute", p)
	}
	if w := FromCgroup(p); w.Kind == KindUnknown {
		t.Errorf("FromCgroup(%q) has no kind", p)
	}
}

func FuzzFromCgroup(f *testing.F) {
	for _, tt := range fromCgroupTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		w := FromCgroup(in)
		if w.PodUID != "" && !wellFormedUID(w.PodUID) {
			t.Errorf("FromCgroup(%q).PodUID = %q, not a complete lower-case UID", in, w.PodUID)
		}
		if w.ContainerID != "" && !isIDChars(w.ContainerID) && !(w.Runtime == RuntimeLXC && isLXCName(w.ContainerID)) {
			t.Errorf("FromCgroup(%q).ContainerID = %q, not [0-9a-z]+ (or an LXC name)", in, w.ContainerID)
		}
		if (w.Cgroup == "") != (w.Key() == "") || (w.Cgroup == "") != (w.Kind == KindUnknown) {
			t.Errorf("FromCgroup(%q) = %+v: cgroup, key and kind disagree on emptiness", in, w)
		}
		if again := FromCgroup(w.Cgroup); again != w {
			t.Errorf("FromCgroup(%q) = %+v, but FromCgroup of its Cgroup = %+v", in, w, again)
		}
		_ = w.String()
		_ = w.PodKey()
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, tt := range procCgroupTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseProcCgroup(strings.NewReader(in))
		if (err == nil) == (p == "") {
			t.Errorf("ParseProcCgroup(%q) = %q, %v: want exactly one of path and error", in, p, err)
		}
	})
}

func wellFormedUID(s string) bool {
	switch len(s) {
	case 32:
		return isHex64(s + s)
	case 36:
		for i := 0; i < 36; i++ {
			switch c := s[i]; i {
			case 8, 13, 18, 23:
				if c != '-' {
					return false
				}
			default:
				if !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
					return false
				}
			}
		}
		return true
	}
	return false
}

func BenchmarkFromCgroup(b *testing.B) {
	for _, bb := range []struct{ name, path string }{
		{"systemd-container", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5e6f7a8b_9c0d_4e1f_a2b3_c4d5e6f7a8b9.slice/cri-containerd-" + idDebianBurst + ".scope"},
		{"cgroupfs-container", "/kubepods/burstable/podfbdfe8e3-1c87-4ff2-907c-b2ec8e25d012/" + idCadvisor50},
		{"lxc-systemd-pod", "/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda8697f49_441d_4d4f_90d2_6d8e1fa3bbe7.slice"},
		{"user-session", "/user.slice/user-1000.slice/session-27.scope"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = FromCgroup(bb.path)
			}
		})
	}
}

// isClean may say false for a clean path (Clean then runs for nothing) but
// must never say true for one that Clean would change.
func TestIsClean(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b", "a", "a/b", "/.a", "/a..", "/...", "a/.b/c"} {
		if !isClean(p) {
			t.Errorf("isClean(%q) = false, want true", p)
		}
	}
	for _, p := range []string{"a/", "/a/", "//", "//a", "/a//b", "/a/./b", "/a/../b", "/a/..", "./a", "/.", "/.."} {
		if isClean(p) {
			t.Errorf("isClean(%q) = true, but path.Clean gives %q", p, path.Clean(p))
		}
	}
	for _, tt := range fromCgroupTests {
		if p := cleanCgroup(tt.in); p != "" && p != "." && !isClean(p) {
			t.Errorf("isClean(%q) = false for a cleaned table path", p)
		}
	}
}

func FuzzIsClean(f *testing.F) {
	for _, tt := range fromCgroupTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if isClean(p) && path.Clean(p) != p {
			t.Errorf("isClean(%q) = true, but path.Clean gives %q", p, path.Clean(p))
		}
	})
}
