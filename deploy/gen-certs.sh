#!/bin/sh
# gen-certs.sh makes a private CA and the certificates oomwatch's mutual TLS
# needs, with openssl, and prints (or, with --apply, runs) the kubectl
# commands that store them as the Secrets deploy/ mounts:
#
#   OUT/aggregator/{ca.crt,tls.crt,tls.key} -> Secret oomwatch-tls
#       server certificate naming the Service (oomwatch-aggregator.NS.svc
#       and its other forms) plus localhost, for `kubectl port-forward`
#   OUT/agent/{ca.crt,tls.crt,tls.key}      -> Secret oomwatch-agent-tls
#       one client certificate (CN oomwatch-agent, O oomwatch:agents: the
#       agent role) shared by every node
#   OUT/oomctl/{ca.crt,tls.crt,tls.key}     -> kept locally, for oomctl and
#       the web UI (O oomwatch:readers: the reader role)
#   OUT/ca.key                              -> keep it offline
#
# Usage: deploy/gen-certs.sh [--apply] OUT [NAMESPACE [CLUSTER_DOMAIN]]
# Defaults: NAMESPACE oomwatch, CLUSTER_DOMAIN cluster.local.
# Leaf certificates last DAYS days (env, default 365); the CA ten years.
# The binaries read their certificates at start: after renewing, run
# `kubectl -n NS rollout restart deployment/oomwatch-aggregator
# daemonset/oomwatch-agent`.
set -eu

apply=false
if [ "${1:-}" = "--apply" ]; then
	apply=true
	shift
fi
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	sed -n '2,22s/^# \{0,1\}//p' "$0" >&2
	exit 2
fi
out=$1
ns=${2:-oomwatch}
domain=${3:-cluster.local}
days=${DAYS:-365}
svc=oomwatch-aggregator

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl not found" >&2; exit 1; }
mkdir -p "$out/aggregator" "$out/agent" "$out/oomctl"
umask 077

# P-256 keys: small, fast, and what Go's crypto/tls handles natively.
newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

if [ ! -f "$out/ca.key" ]; then
	newkey "$out/ca.key"
	openssl req -x509 -new -key "$out/ca.key" -out "$out/ca.crt" -days 3650 \
		-subj "/O=oomwatch/CN=oomwatch CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# issue DIR ORGANIZATION CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
# The Organization of a client certificate is its role at the aggregator:
# oomwatch:agents may send events, oomwatch:readers may read them.
issue() {
	dir=$1 org=$2 cn=$3 eku=$4 san=${5:-}
	newkey "$dir/tls.key"
	openssl req -new -key "$dir/tls.key" -out "$dir/tls.csr" -subj "/O=$org/CN=$cn"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
	} >"$dir/ext.cnf"
	openssl x509 -req -in "$dir/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
		-CAcreateserial -CAserial "$out/ca.srl" -days "$days" \
		-extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
	rm -f "$dir/tls.csr" "$dir/ext.cnf"
	cp "$out/ca.crt" "$dir/ca.crt"
}

issue "$out/aggregator" oomwatch "$svc" serverAuth \
	"DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.$domain,DNS:localhost,IP:127.0.0.1,IP:::1"
issue "$out/agent" oomwatch:agents oomwatch-agent clientAuth
issue "$out/oomctl" oomwatch:readers oomctl clientAuth

set -- \
	"kubectl -n $ns create secret generic oomwatch-tls --from-file=$out/aggregator" \
	"kubectl -n $ns create secret generic oomwatch-agent-tls --from-file=$out/agent"
if $apply; then
	kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
	for c in "$@"; do
		# Create or replace, so that renewing is the same command.
		$c --dry-run=client -o yaml | kubectl apply -f -
	done
else
	echo "Certificates are in $out. Store them in the cluster with:"
	for c in "$@"; do echo "  $c"; done
fi
