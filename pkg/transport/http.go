package transport

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"net/http"
	"strings"
)

// HTTPServerTLS returns the TLS configuration of a server for o, the web
// UI's and the one ServerOptions gives gRPC: the server certificate and,
// with o.CAFile, mutual TLS (a browser must then present a client
// certificate the CA signed). It returns nil for o.Insecure: plaintext.
func HTTPServerTLS(o Options) (*tls.Config, error) {
	if err := o.ValidateServer(); err != nil {
		return nil, err
	}
	if o.Insecure {
		return nil, nil
	}
	cert, err := o.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pool, err := certPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// HTTPAuth wraps h so that, when o configures a token, every request must
// carry it, as "Authorization: Bearer <token>" or as the password of HTTP
// Basic authentication (any user name), which a browser asks for by
// itself. Others get 401 Unauthorized with a Basic challenge. The token is
// compared in constant time. Without a token h is returned as it is.
func HTTPAuth(o Options, h http.Handler) (http.Handler, error) {
	tok, err := o.token()
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return h, nil
	}
	sum := sha256.Sum256([]byte(tok))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpTokenOK(r, sum) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="oomwatch", charset="UTF-8"`)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "401 Unauthorized: give the aggregator's token as the password (any user name), or send Authorization: Bearer <token>", http.StatusUnauthorized)
	}), nil
}

// httpTokenOK reports whether the request carries the token whose digest
// is sum.
func httpTokenOK(r *http.Request, sum [sha256.Size]byte) bool {
	var given string
	if _, pass, ok := r.BasicAuth(); ok {
		given = pass
	} else if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		given = v
	} else {
		return false
	}
	// Comparing digests keeps the comparison constant-time in the
	// token's length too.
	got := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(got[:], sum[:]) == 1
}
