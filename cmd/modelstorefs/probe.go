package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/modelstorefs/modelstorefs/cache"
)

// probeStores checks in the background that every store can be reached
// (DNS, TCP connect, and the TLS handshake for https, with the CAs the
// mount uses), and logs one WARN line per store that cannot, with the
// reason: a typo, a wrong port or https to an http server should not wait
// for someone to read error.txt. No HTTP request is sent, so the store's
// request counts and answers are the mount's own. Through a proxy only the
// proxy is dialled. The returned group ends when ctx does.
func probeStores(ctx context.Context, cfg storeConfig, stores []*cache.Store, log *zap.Logger) *sync.WaitGroup {
	var wg sync.WaitGroup
	var roots *x509.CertPool
	if cfg.CACert != "" {
		var err error
		if roots, err = loadCACert(cfg.CACert); err != nil {
			return &wg // openCatalog has refused it already
		}
	}
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err := probeStore(ctx, st.Remote.Base(), roots)
			if err == nil || ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return
			}
			log.Warn("store unreachable at mount time; mounting anyway (its directory shows error.txt until it answers)",
				zap.String("store", st.Name), zap.String("url", st.Remote.Base().String()), zap.Error(err))
		}()
	}
	return &wg
}

// probeStore dials the store at u (or its proxy) and shakes hands for https.
func probeStore(ctx context.Context, u *url.URL, roots *x509.CertPool) error {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	var d net.Dialer
	if proxy != nil {
		conn, err := d.DialContext(ctx, "tcp", proxy.Host)
		if err != nil {
			return fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		return conn.Close()
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if u.Scheme != "https" {
		return nil
	}
	tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return nil
}
