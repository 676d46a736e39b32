package transport

import (
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

// HTTPAuth wraps h so that every request is authenticated as gRPC calls
// are, its Principal put in the request's context (Caller), and refused
// unless the caller has the role need. With tokens configured a request
// must carry one, as "Authorization: Bearer <token>" or as the password
// of HTTP Basic authentication (any user name), which a browser asks for
// by itself; others get 401 Unauthorized with a Basic challenge. A caller
// without the role gets 403 Forbidden.
func HTTPAuth(o Options, need Role, h http.Handler) (http.Handler, error) {
	a, err := newAuthenticator(o)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var given []string
		if _, pass, ok := r.BasicAuth(); ok {
			given = append(given, pass)
		} else if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			given = append(given, v)
		}
		p, err := a.authenticate(r.TLS, given)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="oomwatch", charset="UTF-8"`)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "401 Unauthorized: give a reader token of the aggregator as the password (any user name), or send Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		if err := authorize(p, need, "the web UI"); err != nil {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "403 Forbidden: "+err.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), p)))
	}), nil
}
